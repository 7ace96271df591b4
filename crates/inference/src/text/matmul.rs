//! A model's weight matrices and the kernel that multiplies each: our Q4_1 and Q8_0 kernels
//! ([`super::q4_1`], [`super::q8_0`]) where the file ships those formats, candle's quantized
//! matmul for every other; and matrices of the same input stacked into one ([`Projections`]).

use candle_core::{
    D, Device, Module, Tensor,
    quantized::{QMatMul, QTensor},
};
use candle_nn::Embedding;

use super::{q4_1::Q4_1Matrix, q8_0::Q8_0Matrix};
use crate::Result;

/// One weight matrix, `x · Wᵀ`.
#[derive(Debug, Clone)]
pub(super) enum Matmul {
    Q4_1(Q4_1Matrix),
    Q8_0(Q8_0Matrix),
    Candle(QMatMul),
}

impl Matmul {
    pub(super) fn new(weights: QTensor) -> Result<Self> {
        if let Some(matrix) = Q4_1Matrix::new(&weights)? {
            return Ok(Self::Q4_1(matrix));
        }
        Ok(match Q8_0Matrix::new(&weights)? {
            Some(matrix) => Self::Q8_0(matrix),
            None => Self::Candle(QMatMul::from_qtensor(weights)?),
        })
    }

    /// Whether each output row is the same floats at any row count, so that a sequence's
    /// logits do not depend on the batch it runs in. Our kernels take each row's dot products
    /// alone. candle picks its kernel by row count: gemm blocks f32 and f16 sums by it, on x86
    /// Q6_K runs another kernel above one row (and Q4_K another on AMX from 32), on aarch64 and
    /// CUDA every format switches between a one-row and a tiled kernel.
    pub(super) fn batch_invariant(&self) -> bool {
        match self {
            Self::Q4_1(_) | Self::Q8_0(_) => true,
            Self::Candle(_) => false,
        }
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Q4_1(matrix) => matrix.forward(x)?,
            Self::Q8_0(matrix) => matrix.forward(x)?,
            Self::Candle(matrix) => matrix.forward(x)?,
        })
    }
}

/// The token embedding table. A Q8_0 table (SmolLM2's) stays quantized: a lookup dequantizes
/// only its rows, and a tied head multiplies by the same bytes. Any other format is
/// dequantized to f32 once, as candle's models do.
#[derive(Debug, Clone)]
pub(super) enum Embeddings {
    Q8_0(Q8_0Matrix),
    Dense(Embedding),
}

impl Embeddings {
    pub(super) fn new(table: QTensor, device: &Device) -> Result<Self> {
        if device.is_cpu()
            && let Some(matrix) = Q8_0Matrix::new(&table)?
        {
            return Ok(Self::Q8_0(matrix));
        }
        let hidden = table.shape().dims2()?.1;
        Ok(Self::Dense(Embedding::new(
            table.dequantize(device)?,
            hidden,
        )))
    }

    /// The hidden states `[batch, seq, hidden]` of token ids `[batch, seq]`.
    pub(super) fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Q8_0(matrix) => matrix.embed(ids)?,
            Self::Dense(embedding) => embedding.forward(ids)?,
        })
    }

    /// The head of a model whose output matrix is this table, if the table can be it as it is.
    pub(super) fn as_head(&self) -> Option<Matmul> {
        match self {
            Self::Q8_0(matrix) => Some(Matmul::Q8_0(matrix.clone())),
            Self::Dense(_) => None,
        }
    }
}

/// Matrices that multiply the same input. Where it changes no output, they are one matmul of
/// their stacked rows: the input is quantized once and the thread pool runs once instead of
/// once per matrix (candle's quantized matmul computes each output column from its weight row
/// alone, in groups of 4 columns, or 16 in its repacked x86 kernels; parts whose row counts are
/// multiples of 16 keep those groups, so every output is bit for bit the unfused one; our Q4_1
/// kernel computes every output from its row alone). Measured
/// on SmolLM2 (Q8_0, 2 threads): a decode step of 8 sequences 136 against 132 tokens/s unfused;
/// one sequence within the noise (65-80 tokens/s either way).
#[derive(Debug, Clone)]
pub(super) enum Projections {
    /// The stacked matrix, and each part's rows.
    Fused(Matmul, Vec<usize>),
    Separate(Vec<Matmul>),
}

impl Projections {
    pub(super) fn new(parts: Vec<QTensor>, device: &Device) -> Result<Self> {
        let dtype = parts[0].dtype();
        let columns = parts[0].shape().dims2()?.1;
        let mut rows = Vec::with_capacity(parts.len());
        let mut fusable = dtype.block_size() > 1;
        for part in &parts {
            let (n, k) = part.shape().dims2()?;
            fusable &= part.dtype() == dtype && k == columns && n % 16 == 0;
            rows.push(n);
        }
        if !fusable {
            return Ok(Self::Separate(
                parts.into_iter().map(Matmul::new).collect::<Result<_>>()?,
            ));
        }
        // Quantized rows are whole blocks, so the stacked matrix is the parts' bytes in turn.
        let mut bytes = Vec::new();
        for part in &parts {
            bytes.extend_from_slice(&part.data()?);
        }
        let stacked = candle_core::quantized::ggml_file::qtensor_from_ggml(
            dtype,
            &bytes,
            vec![rows.iter().sum(), columns],
            device,
        )?;
        Ok(Self::Fused(Matmul::new(stacked)?, rows))
    }

    pub(super) fn batch_invariant(&self) -> bool {
        match self {
            Self::Fused(stacked, _) => stacked.batch_invariant(),
            Self::Separate(parts) => parts.iter().all(Matmul::batch_invariant),
        }
    }

    /// Each matrix's product with `x`, in order.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Self::Separate(parts) => {
                Ok(parts.iter().map(|m| m.forward(x)).collect::<Result<_>>()?)
            }
            Self::Fused(stacked, rows) => {
                let all = stacked.forward(x)?;
                let mut start = 0;
                rows.iter()
                    .map(|&n| {
                        let part = all.narrow(D::Minus1, start, n)?;
                        start += n;
                        Ok(part)
                    })
                    .collect()
            }
        }
    }
}

/// An output buffer the pool's workers write at disjoint places.
pub(super) struct SharedOut(pub(super) *mut f32);
// SAFETY: each kernel's writes say why no two workers touch the same element.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Writes `values` at `at`.
    ///
    /// # Safety
    /// `at..at + values.len()` lies within the buffer, and no other thread touches it meanwhile.
    pub(super) unsafe fn write(&self, at: usize, values: &[f32]) {
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.0.add(at), values.len()) }
    }
}

/// `len` zeros, written by this thread rather than asked of the allocator. jemalloc answers a
/// zeroed request of a large size (`vec![0f32; len]`, 16 KiB and up) from a reused extent by
/// `madvise(MADV_DONTNEED)` and fresh pages, so every matmul's output faulted its pages in
/// again: 8 streams of SmolLM2 took 344k page faults in 128 steps, 70% of them in our two
/// kernels' writes, and a tenth of the inference threads' time in the kernel. A `memset` of
/// warm memory costs a few microseconds. (`black_box` keeps the compiler from folding the
/// allocation and its zeroing back into one zeroed allocation, as LLVM can.)
pub(super) fn zeroed_by_writing(len: usize) -> Vec<f32> {
    let mut values = std::hint::black_box(Vec::with_capacity(len));
    values.resize(len, 0.0);
    values
}

/// The `cpu_fwd` of our matmul custom ops: `x · Wᵀ` over the last dimension of the contiguous
/// f32 activations in `storage`, with `W` a `rows` × `cols` matrix that `matmul` multiplies
/// (`m` activation rows into `m` × `rows` outputs).
pub(super) fn matmul_cpu_fwd(
    name: &str,
    (rows, cols): (usize, usize),
    storage: &candle_core::CpuStorage,
    layout: &candle_core::Layout,
    matmul: impl FnOnce(&[f32], usize, &mut [f32]) -> candle_core::Result<()>,
) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
    use candle_core::{CpuStorage, bail};
    let CpuStorage::F32(x) = storage else {
        bail!("{name}: activations must be f32")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{name}: activations must be contiguous")
    };
    let mut dims = layout.shape().dims().to_vec();
    if dims.last() != Some(&cols) {
        bail!("{name}: activations {dims:?} against a {rows}x{cols} matrix")
    }
    let m = (end - start) / cols;
    let mut out = zeroed_by_writing(m * rows);
    matmul(&x[start..end], m, &mut out)?;
    if let Some(last) = dims.last_mut() {
        *last = rows;
    }
    Ok((CpuStorage::F32(out), candle_core::Shape::from(dims)))
}
