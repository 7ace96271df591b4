//! A Q8_0 matrix (the format of SmolLM2's tied embedding and output head): its matmul with f32
//! activations, bit for bit what candle's quantized matmul gives, and token embedding lookups
//! from the same bytes.
//!
//! candle computes each output with a separate call of its AVX2 `vec_dot_q8_0_q8_0`, which
//! converts both scales from f16 and takes the absolute value of the weights again for every
//! activation row. This kernel runs the same instructions in the same order per output (an
//! eight-lane fused multiply-add per block, the same horizontal sum at the end), and shares
//! what depends only on the weights among a tile of activation rows. Measured with
//! `aicoin bench inference --model smollm2 --streams 1,4,8` on 2 threads, this kernel for the
//! head took SmolLM2 from 96.8 / 156.9 / 147.8 to 108.5 / 208.5 / 215.7 tok/s in total at
//! 1 / 4 / 8 streams: candle's head re-read its 28 MB per sequence.
//!
//! The lookup dequantizes only the rows asked for, as candle's `to_float` does the whole table,
//! so the model no longer keeps an f32 copy of the embedding (113 MB for SmolLM2): the peak RSS
//! of 8 SmolLM2 streams went from 274 to 186 MiB.
//!
//! Without AVX2, FMA and F16C at compile time there is no kernel ([`Q8_0Matrix::new`] says
//! `None`) and candle's matmul runs instead.

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, Device, Layout, Shape, Tensor, bail,
    quantized::{GgmlDType, QTensor},
};

use super::matmul::{SharedOut, matmul_cpu_fwd};

/// Weights per block.
const BLOCK: usize = 32;
/// Bytes of one GGUF Q8_0 block: the scale `d` (f16), then 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// Activation rows computed per pass over a weight row: a weight block, its absolute value and
/// four accumulators stay in registers.
const TILE: usize = 4;
/// Weight rows per work item of the thread pool: a tile's activations and these rows stay in
/// L1 while the tile walks them.
const ROWS_PER_TASK: usize = 16;

/// A Q8_0 matrix of `rows` × `cols` in GGUF's own block layout.
#[derive(Debug, Clone)]
pub(super) struct Q8_0Matrix {
    rows: usize,
    cols: usize,
    data: Arc<[u8]>,
}

impl Q8_0Matrix {
    /// The matrix of a Q8_0 tensor; `None` for any other format, or where there is no kernel.
    pub(super) fn new(tensor: &QTensor) -> candle_core::Result<Option<Self>> {
        let (rows, cols) = tensor.shape().dims2()?;
        if !KERNEL || tensor.dtype() != GgmlDType::Q8_0 || cols % BLOCK != 0 {
            return Ok(None);
        }
        Ok(Some(Self {
            rows,
            cols,
            data: tensor.data()?.into_owned().into(),
        }))
    }

    /// `x · Wᵀ` over the last dimension of `x`.
    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// Rows `ids` (`[batch, seq]`) of the matrix as f32, `[batch, seq, cols]`: the token
    /// embeddings, each value its byte times its block's scale, as candle dequantizes them.
    pub(super) fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let ids = ids.flatten_all()?.to_vec1::<u32>()?;
        let row_bytes = self.cols / BLOCK * Q8_0_BYTES;
        let mut out = Vec::with_capacity(ids.len() * self.cols);
        for id in ids {
            let id = id as usize;
            if id >= self.rows {
                bail!("token id {id} is outside the vocabulary of {}", self.rows)
            }
            for block in self.data[id * row_bytes..][..row_bytes].chunks_exact(Q8_0_BYTES) {
                let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                out.extend(block[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        Tensor::from_vec(out, (batch, seq, self.cols), &Device::Cpu)
    }

    /// `out[j][i]` = row `i` of the weights · activation row `j`, for `m` rows of `x`.
    fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) -> candle_core::Result<()> {
        if !KERNEL {
            bail!("this build has no Q8_0 kernel: it needs AVX2, FMA and F16C")
        }
        // candle's own Q8_0 quantization of the activations, as its matmul does it.
        let q8 = QTensor::quantize(
            &Tensor::from_slice(x, (m, self.cols), &Device::Cpu)?,
            GgmlDType::Q8_0,
        )?;
        let acts = q8.data()?;
        let blocks = self.cols / BLOCK;
        let row_bytes = blocks * Q8_0_BYTES;
        let (rows, out) = (self.rows, SharedOut(out.as_mut_ptr()));
        let tasks = rows.div_ceil(ROWS_PER_TASK);
        candle_core::utils::barrier_pool().execute_chunked(tasks, |range| {
            for task in range {
                let first_row = task * ROWS_PER_TASK;
                let task_rows = first_row..rows.min(first_row + ROWS_PER_TASK);
                for first in (0..m).step_by(TILE) {
                    let tile_rows = TILE.min(m - first);
                    let tile = &acts[first * row_bytes..][..tile_rows * row_bytes];
                    for row in task_rows.clone() {
                        let weights = &self.data[row * row_bytes..][..row_bytes];
                        let sums = dot_tile(weights, tile, blocks);
                        for (t, sum) in sums[..tile_rows].iter().enumerate() {
                            // SAFETY: this task alone writes its rows' columns of `out`, and
                            // `(first + t, row)` lies within its `m` × `rows`.
                            unsafe {
                                out.write((first + t) * rows + row, std::slice::from_ref(sum))
                            };
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

impl CustomOp1 for Q8_0Matrix {
    fn name(&self) -> &'static str {
        "q8_0-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, cols) = (self.rows, self.cols);
        matmul_cpu_fwd("q8_0 matmul", (rows, cols), storage, layout, |x, m, out| {
            self.matmul(x, m, out)
        })
    }
}

/// Whether this build has the kernel.
const KERNEL: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
));

/// One weight row's dot products with each activation row of `tile` (1 to [`TILE`] rows of
/// Q8_0 blocks); entries past the tile's rows are 0.
fn dot_tile(weights: &[u8], tile: &[u8], blocks: usize) -> [f32; TILE] {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    // SAFETY: the target features it needs are enabled at compile time, and every slice holds
    // whole rows of `blocks` blocks.
    return unsafe { avx2::dot_tile(weights, tile, blocks) };
    // Never reached: `Q8_0Matrix::new` makes no matrix without the kernel, and `matmul` refuses.
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    )))]
    {
        let _ = (weights, tile, blocks);
        [0.0; TILE]
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Q8_0_BYTES, TILE};

    /// The f16 scale at `p`, as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scale(p: *const u8) -> f32 {
        half::f16::from_bits(unsafe { p.cast::<u16>().read_unaligned() }).to_f32()
    }

    /// candle's `hsum_float_8`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(x: __m256) -> f32 {
        let res = _mm256_extractf128_ps(x, 1);
        let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
        let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
        let res = _mm_add_ss(res, _mm_movehdup_ps(res));
        _mm_cvtss_f32(res)
    }

    /// [`super::dot_tile`]: per output, candle's `vec_dot_q8_0_q8_0` step for step.
    ///
    /// # Safety
    /// `weights` holds `blocks` blocks and `tile` whole rows of `blocks` blocks, at most
    /// [`TILE`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_tile(weights: &[u8], tile: &[u8], blocks: usize) -> [f32; TILE] {
        let rows = tile.len() / (blocks * Q8_0_BYTES);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); TILE];
        let (w, y) = (weights.as_ptr(), tile.as_ptr());
        for b in 0..blocks {
            // SAFETY: block b of the weights, and of each of the tile's rows, is in bounds.
            unsafe {
                let wb = w.add(b * Q8_0_BYTES);
                let dx = scale(wb);
                let x = _mm256_loadu_si256(wb.add(2).cast());
                let ax = _mm256_sign_epi8(x, x);
                for (t, acc) in acc[..rows].iter_mut().enumerate() {
                    let yb = y.add((t * blocks + b) * Q8_0_BYTES);
                    let sy = _mm256_sign_epi8(_mm256_loadu_si256(yb.add(2).cast()), x);
                    let q =
                        _mm256_cvtepi32_ps(_mm256_madd_epi16(ones, _mm256_maddubs_epi16(ax, sy)));
                    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dx * scale(yb)), q, *acc);
                }
            }
        }
        acc.map(|lanes| hsum(lanes))
    }
}

#[cfg(all(
    test,
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod tests {
    use candle_core::{Module, quantized::QMatMul};
    use candle_nn::Embedding;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let values: Vec<f32> = (0..shape.iter().product())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        values.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn every_output_is_candles_bit_for_bit_at_every_batch_size() {
        // Row counts that leave partial tasks, and SmolLM2's width.
        for (rows, cols) in [(1, 32), (37, 64), (100, 576)] {
            let q =
                QTensor::quantize(&random(&[rows, cols], rows as u64), GgmlDType::Q8_0).unwrap();
            let ours = Q8_0Matrix::new(&q).unwrap().unwrap();
            let candle = QMatMul::from_qtensor(q).unwrap();
            for m in [1, 2, 3, 4, 5, 8, 17] {
                let x = random(&[m, cols], 7 + m as u64);
                assert_eq!(
                    bits(&ours.forward(&x).unwrap()),
                    bits(&candle.forward(&x).unwrap()),
                    "{rows}x{cols}, {m} rows"
                );
            }
        }
    }

    #[test]
    fn a_lookup_is_candles_dequantized_embedding_row() {
        let q = QTensor::quantize(&random(&[50, 64], 3), GgmlDType::Q8_0).unwrap();
        let ours = Q8_0Matrix::new(&q).unwrap().unwrap();
        let candle = Embedding::new(q.dequantize(&Device::Cpu).unwrap(), 64);
        let ids = Tensor::new(&[[0u32, 49, 7], [7, 1, 0]], &Device::Cpu).unwrap();
        let got = ours.embed(&ids).unwrap();
        assert_eq!(got.dims(), &[2, 3, 64]);
        assert_eq!(bits(&got), bits(&candle.forward(&ids).unwrap()));
        let outside = Tensor::new(&[[50u32]], &Device::Cpu).unwrap();
        let err = ours.embed(&outside).unwrap_err().to_string();
        assert!(err.contains("token id 50"), "{err}");
    }

    #[test]
    fn batched_leading_dimensions_keep_their_shape_and_bad_input_is_refused() {
        let q = QTensor::quantize(&random(&[16, 64], 5), GgmlDType::Q8_0).unwrap();
        let ours = Q8_0Matrix::new(&q).unwrap().unwrap();
        assert_eq!(
            ours.forward(&random(&[2, 3, 64], 6)).unwrap().dims(),
            &[2, 3, 16]
        );
        assert!(ours.forward(&random(&[2, 32], 6)).is_err());
        let other = QTensor::quantize(&random(&[16, 64], 1), GgmlDType::Q4_1).unwrap();
        assert!(Q8_0Matrix::new(&other).unwrap().is_none());
    }
}
