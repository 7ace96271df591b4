//! One decode step's grouped-query attention, read straight from the KV cache.
//!
//! candle's models repeat each KV head for its group of query heads (`Tensor::cat`) and copy
//! V contiguous before the two matmuls: every decode step copies the whole cache `group + 1`
//! times per layer. Measured on SmolLM2 (2 threads, 16-token prompt, 256 tokens): those copies
//! were 5% of all samples, a tenth of a decode step's time, and growing with the context.
//!
//! [`decode_attention`] computes the same thing without a copy: for each query head the same
//! gemm calls candle makes per batch element (`q · Kᵀ`, then `weights · V`, one row each, on
//! the same strides, which gemm runs single-threaded at any setting) on its KV head's rows in
//! the cache, with candle's own scaling and softmax arithmetic in between. Every output is
//! bit for bit what the repeated-KV path gives, so no answer changes (a unit test checks it).
//! A decode step's sequences attend in one pass of candle's pool over every (sequence, query
//! head) pair, each to its own cache.

use std::sync::Mutex;

use candle_core::{CpuStorage, Layout, Storage, StorageRef, Tensor, bail, cpu::kernels::VecOps};

/// One sequence's cached K or V as the kernel reads it: the storage, where head 0 starts,
/// how far apart heads are, and the positions it holds.
struct CacheRows<'a> {
    data: &'a [f32],
    start: usize,
    head_stride: usize,
    len: usize,
}

impl<'a> CacheRows<'a> {
    /// The rows of a `[1, kv_heads, len, dim]` view of a cache (each head's rows contiguous,
    /// heads any distance apart), checked to hold what the kernel reads.
    fn new(
        (storage, layout): &'a (StorageRef<'a>, &'a Layout),
        (kv_heads, dim): (usize, usize),
        what: &str,
    ) -> candle_core::Result<Self> {
        let Storage::Cpu(CpuStorage::F32(data)) = &**storage else {
            bail!("decode attention: {what} must be f32 on the cpu")
        };
        let (one, heads, len, d) = layout.shape().dims4()?;
        let stride = layout.stride();
        if one != 1
            || heads != kv_heads
            || d != dim
            || stride[3] != 1
            || (len > 1 && stride[2] != dim)
        {
            bail!(
                "decode attention: {what} {:?} is not {kv_heads} heads of {dim}-value rows of a cache",
                layout.shape()
            )
        }
        let (start, head_stride) = (layout.start_offset(), stride[1]);
        if data.len() < start + (kv_heads - 1) * head_stride + len * dim {
            bail!("decode attention: {what} is shorter than its layout")
        }
        Ok(Self {
            data,
            start,
            head_stride,
            len,
        })
    }

    /// The rows of KV head `h`.
    fn head(&self, h: usize) -> *const f32 {
        self.data[self.start + h * self.head_stride..].as_ptr()
    }
}

/// `out` (1 × `n`) = `lhs` (1 × `k`) · B (`k` × `n`), with B's element (r, c) at
/// `rhs + r · row_stride + c · col_stride`: one single-threaded gemm call, on the strides
/// candle's matmul passes for a row of a batched product, so the floats are candle's.
///
/// # Safety
/// `out` holds `n` values, `lhs` `k`, and every element of B lies within its allocation.
unsafe fn row_times_matrix(
    out: *mut f32,
    lhs: *const f32,
    rhs: *const f32,
    (k, n): (usize, usize),
    (row_stride, col_stride): (isize, isize),
) {
    // SAFETY: the caller's.
    unsafe {
        gemm::gemm(
            1,
            n,
            k,
            out,
            1,
            n as isize,
            false,
            lhs,
            1,
            k as isize,
            rhs,
            col_stride,
            row_stride,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Grouped-query attention as candle's models compute it, for a prefill (and a decode step
/// off the CPU): each KV head repeated for its group of query heads, `q · Kᵀ / √d`, `mask`
/// added, softmax, `· V`. `q` is `[b, heads, seq, head_dim]`, `k` and `v` `[b, kv_heads, len,
/// head_dim]`, `mask` `[seq, len]`; the output is `[b, heads, seq, head_dim]`.
///
/// Multiplying a KV head with its group of query heads as rows of one matrix (no copy) was
/// tried: exact on the tiny model, but its other rounding, through the next layer's
/// re-quantized activations, changed SmolLM2's greedy answer at the 7th token, and answers
/// must not change.
pub(super) fn repeated_kv_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (b, heads, _, dim) = q.dims4()?;
    let (_, kv_heads, len, _) = k.dims4()?;
    if kv_heads == 0 || heads % kv_heads != 0 {
        bail!("attention: {heads} query heads cannot share {kv_heads} KV heads")
    }
    let repeat =
        |t: &Tensor| Tensor::cat(&vec![t; heads / kv_heads], 2)?.reshape((b, heads, len, dim));
    let scores = (q.matmul(&repeat(k)?.t()?)? / (dim as f64).sqrt())?;
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    candle_nn::ops::softmax_last_dim(&scores)?.matmul(&repeat(v)?.contiguous()?)
}

/// Attention of one new token for each of a batch of sequences over its own cache: `q`
/// `[n, heads, 1, head_dim]`, and `caches[i]` sequence i's K and V, `[1, kv_heads, len_i,
/// head_dim]` views of its cache. The output is `[n, heads, 1, head_dim]`. Off the CPU each
/// sequence takes [`repeated_kv_attention`].
pub(super) fn decode_attention(
    q: &Tensor,
    caches: &[(Tensor, Tensor)],
) -> candle_core::Result<Tensor> {
    if !q.device().is_cpu() {
        let each = caches
            .iter()
            .enumerate()
            .map(|(i, (k, v))| repeated_kv_attention(&q.narrow(0, i, 1)?, k, v, None))
            .collect::<candle_core::Result<Vec<_>>>()?;
        return Tensor::cat(&each, 0);
    }
    let (n, heads, one, dim) = q.dims4()?;
    let Some((k0, _)) = caches.first() else {
        bail!("decode attention: no sequence to attend")
    };
    let kv_heads = k0.dim(1)?;
    if n != caches.len() || one != 1 || kv_heads == 0 || heads % kv_heads != 0 {
        bail!(
            "decode attention: q {:?} against {} caches of {kv_heads} heads",
            q.shape(),
            caches.len()
        )
    }
    let q = q.contiguous()?;
    let (q_storage, q_layout) = q.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(q_data)) = &*q_storage else {
        bail!("decode attention: q must be f32 on the cpu")
    };
    let q_data = &q_data[q_layout.start_offset()..];
    if q_data.len() < n * heads * dim {
        bail!("decode attention: q is shorter than its layout")
    }
    let guards: Vec<_> = caches
        .iter()
        .map(|(k, v)| (k.storage_and_layout(), v.storage_and_layout()))
        .collect();
    let sequences = guards
        .iter()
        .map(|(k, v)| {
            let k = CacheRows::new(k, (kv_heads, dim), "k")?;
            let v = CacheRows::new(v, (kv_heads, dim), "v")?;
            if k.len != v.len || k.len == 0 {
                bail!(
                    "decode attention: k holds {} positions and v {}",
                    k.len,
                    v.len
                )
            }
            Ok((k, v))
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let group = heads / kv_heads;
    // candle's `scores / sqrt(head_dim)`: an affine map by the f64 reciprocal, as f32.
    let scale = (1.0 / (dim as f64).sqrt()) as f32;
    let mut out = vec![0f32; n * heads * dim];
    let rows: Vec<Mutex<&mut [f32]>> = out.chunks_mut(dim).map(Mutex::new).collect();
    let attend = |item: usize| {
        let (k, v) = &sequences[item / heads];
        let (kv_len, kvh) = (k.len, item % heads / group);
        let mut weights = vec![0f32; kv_len];
        // SAFETY: q holds row `item` of `dim` values, and each cache kv_len rows of `dim` from
        // each KV head's start (checked above); `weights` holds kv_len values.
        unsafe {
            row_times_matrix(
                weights.as_mut_ptr(),
                q_data[item * dim..].as_ptr(),
                k.head(kvh),
                (dim, kv_len),
                (1, dim as isize),
            )
        };
        // candle_nn's `softmax_last_dim`, after the affine map's `v * mul + add`.
        weights.iter_mut().for_each(|w| *w = *w * scale + 0.0);
        let mut max = f32::NEG_INFINITY;
        // SAFETY: kv_len values.
        unsafe { f32::vec_reduce_max(weights.as_ptr(), &mut max, kv_len) };
        weights.iter_mut().for_each(|w| *w = (*w - max).exp());
        let mut sum = 0f32;
        // SAFETY: kv_len values.
        unsafe { f32::vec_reduce_sum(weights.as_ptr(), &mut sum, kv_len) };
        weights.iter_mut().for_each(|w| *w /= sum);
        let mut row = rows[item]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: as above; the output row holds `dim` values.
        unsafe {
            row_times_matrix(
                row.as_mut_ptr(),
                weights.as_ptr(),
                v.head(kvh),
                (kv_len, dim),
                (dim as isize, 1),
            )
        };
    };
    candle_core::utils::barrier_pool().execute_chunked(n * heads, |range| range.for_each(attend));
    drop(rows);
    drop(sequences);
    drop(guards);
    Tensor::from_vec(out, (n, heads, 1, dim), q.device())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn it_gives_the_repeated_kv_paths_floats_reading_the_cache_in_place() {
        let device = Device::Cpu;
        // 256 keys and fewer take gemm's small-matrix kernel, more its matrix-vector one.
        for (heads, kv_heads, len) in [(9, 3, 1), (9, 3, 17), (4, 4, 256), (8, 2, 300)] {
            let dim = 64;
            let q = Tensor::randn(0f32, 1.0, (1, heads, 1, dim), &device).unwrap();
            // The cache holds more positions than are filled, as a KvCache does.
            let cache = |scale: f64| {
                (Tensor::randn(0f32, 1.0, (1, kv_heads, len + 40, dim), &device).unwrap() * scale)
                    .unwrap()
                    .narrow(2, 0, len)
                    .unwrap()
            };
            let (k, v) = (cache(2.0), cache(1.0));
            let ours = decode_attention(&q, &[(k.clone(), v.clone())]).unwrap();
            let theirs = repeated_kv_attention(&q, &k, &v, None).unwrap();
            assert_eq!(
                ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{heads} heads over {kv_heads}, {len} positions"
            );
        }
    }

    #[test]
    fn each_sequence_of_a_batch_gets_what_it_gets_alone() {
        let device = Device::Cpu;
        let (heads, kv_heads, dim) = (9, 3, 64);
        let caches: Vec<(Tensor, Tensor)> = [1, 17, 300, 5]
            .into_iter()
            .map(|len| {
                let cache = || {
                    Tensor::randn(0f32, 1.0, (1, kv_heads, len + 7, dim), &device)
                        .unwrap()
                        .narrow(2, 0, len)
                        .unwrap()
                };
                (cache(), cache())
            })
            .collect();
        let q = Tensor::randn(0f32, 1.0, (caches.len(), heads, 1, dim), &device).unwrap();
        let batch = decode_attention(&q, &caches).unwrap();
        for (i, kv) in caches.iter().enumerate() {
            let alone = decode_attention(&q.narrow(0, i, 1).unwrap(), std::slice::from_ref(kv));
            assert_eq!(
                batch
                    .get(i)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
                alone
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
                "sequence {i}"
            );
        }
    }

    #[test]
    fn shapes_it_cannot_attend_are_errors() {
        let device = Device::Cpu;
        let zeros = |shape: (usize, usize, usize, usize)| {
            Tensor::zeros(shape, candle_core::DType::F32, &device).unwrap()
        };
        let q = zeros((1, 9, 1, 64));
        // 9 query heads cannot share 2 KV heads.
        let k = zeros((1, 2, 5, 64));
        assert!(decode_attention(&q, &[(k.clone(), k)]).is_err());
        // Rows of another width, and K and V of different lengths.
        let k = zeros((1, 3, 5, 32));
        assert!(decode_attention(&q, &[(k.clone(), k)]).is_err());
        let (k, v) = (zeros((1, 3, 5, 64)), zeros((1, 3, 4, 64)));
        assert!(decode_attention(&q, &[(k, v)]).is_err());
        // One cache for two queries, and none at all.
        let k = zeros((1, 3, 5, 64));
        assert!(decode_attention(&zeros((2, 9, 1, 64)), &[(k.clone(), k)]).is_err());
        assert!(decode_attention(&q, &[]).is_err());
    }
}
