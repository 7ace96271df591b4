//! One decode step's grouped-query attention, read straight from the KV cache.
//!
//! candle's models repeat each KV head for its group of query heads (`Tensor::cat`) and copy
//! V contiguous before the two matmuls: every decode step copies the whole cache `group + 1`
//! times per layer. Measured on SmolLM2 (2 threads, 16-token prompt, 256 tokens): those copies
//! were 5% of all samples, a tenth of a decode step's time, and growing with the context.
//!
//! [`DecodeAttention`] computes the same thing without a copy: for each query head the same
//! gemm calls candle makes per batch element (`q · Kᵀ`, then `weights · V`, one row each, on
//! the same strides, which gemm runs single-threaded at any setting) on its KV head's rows in
//! the cache, with candle's own scaling and softmax arithmetic in between. Every output is
//! bit for bit what the repeated-KV path gives, so no answer changes (a unit test checks it).
//! Query heads run in parallel on candle's pool.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, bail, cpu::kernels::VecOps};

/// Attention of one new token per sequence over `kv_len` cached positions:
/// `q` `[1, heads, 1, head_dim]` (contiguous), `k` and `v` `[1, kv_heads, kv_len, head_dim]`
/// (views of the cache: each head's rows contiguous, heads any distance apart).
/// The output is `[1, heads, 1, head_dim]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct DecodeAttention;

/// The strides of a `[1, heads, len, head_dim]` operand, checked: where head 0 starts and how
/// far apart heads are.
fn heads_of(layout: &Layout, what: &str) -> candle_core::Result<(usize, usize, usize, usize)> {
    let (one, heads, len, dim) = layout.shape().dims4()?;
    let stride = layout.stride();
    if one != 1 || stride[3] != 1 || (len > 1 && stride[2] != dim) {
        bail!(
            "decode attention: {what} {:?} is not rows of a cache",
            layout.shape()
        )
    }
    Ok((layout.start_offset(), stride[1], heads, len))
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (q, k, v) else {
            bail!("decode attention: q, k and v must be f32")
        };
        let dim = q_layout.shape().dims4()?.3;
        let (q_at, q_head, heads, one) = heads_of(q_layout, "q")?;
        let (k_at, k_head, kv_heads, kv_len) = heads_of(k_layout, "k")?;
        let (v_at, v_head, v_heads, v_len) = heads_of(v_layout, "v")?;
        if one != 1
            || q_head != dim
            || (kv_heads, kv_len) != (v_heads, v_len)
            || kv_heads == 0
            || heads % kv_heads != 0
            || k_layout.shape().dims()[3] != dim
            || v_layout.shape().dims()[3] != dim
        {
            bail!(
                "decode attention: q {:?} against k {:?} and v {:?}",
                q_layout.shape(),
                k_layout.shape(),
                v_layout.shape()
            )
        }
        let last = |at: usize, head: usize| at + (kv_heads - 1) * head + kv_len * dim;
        if q.len() < q_at + heads * dim
            || k.len() < last(k_at, k_head)
            || v.len() < last(v_at, v_head)
        {
            bail!("decode attention: an operand is shorter than its layout")
        }
        let group = heads / kv_heads;
        // candle's `scores / sqrt(head_dim)`: an affine map by the f64 reciprocal, as f32.
        let scale = (1.0 / (dim as f64).sqrt()) as f32;
        let mut out = vec![0f32; heads * dim];
        let rows: Vec<Mutex<&mut [f32]>> = out.chunks_mut(dim).map(Mutex::new).collect();
        let head = |h: usize| {
            let kvh = h / group;
            let mut weights = vec![0f32; kv_len];
            // SAFETY: each operand's extent was checked above: q's row h, and kv_len rows of
            // `dim` from each KV head's start in k and v; `weights` holds kv_len values.
            unsafe {
                gemm::gemm(
                    1,
                    kv_len,
                    dim,
                    weights.as_mut_ptr(),
                    1,
                    kv_len as isize,
                    false,
                    q[q_at + h * dim..].as_ptr(),
                    1,
                    dim as isize,
                    k[k_at + kvh * k_head..].as_ptr(),
                    dim as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
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
            let mut row = rows[h]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // SAFETY: as above; the output row holds `dim` values.
            unsafe {
                gemm::gemm(
                    1,
                    dim,
                    kv_len,
                    row.as_mut_ptr(),
                    1,
                    dim as isize,
                    false,
                    weights.as_ptr(),
                    1,
                    kv_len as isize,
                    v[v_at + kvh * v_head..].as_ptr(),
                    1,
                    dim as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            };
        };
        candle_core::utils::barrier_pool().execute_chunked(heads, |range| range.for_each(head));
        drop(rows);
        Ok((CpuStorage::F32(out), Shape::from((1, heads, 1, dim))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// candle's path, as our forward runs it before a prefill: K/V repeated for each query
    /// head's group, `q · Kᵀ / √d`, softmax, `· V`.
    fn repeated(q: &Tensor, k: &Tensor, v: &Tensor, group: usize) -> Tensor {
        let (b, kv_heads, len, dim) = k.dims4().unwrap();
        let repeat = |t: &Tensor| {
            Tensor::cat(&vec![t; group], 2)
                .unwrap()
                .reshape((b, kv_heads * group, len, dim))
                .unwrap()
        };
        let scores = (q.matmul(&repeat(k).t().unwrap()).unwrap() / (dim as f64).sqrt()).unwrap();
        let weights = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        weights.matmul(&repeat(v).contiguous().unwrap()).unwrap()
    }

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
            let ours = q.apply_op3_no_bwd(&k, &v, &DecodeAttention).unwrap();
            let theirs = repeated(&q, &k, &v, heads / kv_heads);
            assert_eq!(
                ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{heads} heads over {kv_heads}, {len} positions"
            );
        }
    }

    #[test]
    fn shapes_it_cannot_attend_are_errors() {
        let device = Device::Cpu;
        let q = Tensor::zeros((1, 9, 1, 64), candle_core::DType::F32, &device).unwrap();
        let k = Tensor::zeros((1, 2, 5, 64), candle_core::DType::F32, &device).unwrap();
        // 9 query heads cannot share 2 KV heads.
        assert!(q.apply_op3_no_bwd(&k, &k, &DecodeAttention).is_err());
        let k = Tensor::zeros((1, 3, 5, 32), candle_core::DType::F32, &device).unwrap();
        assert!(q.apply_op3_no_bwd(&k, &k, &DecodeAttention).is_err());
    }
}
