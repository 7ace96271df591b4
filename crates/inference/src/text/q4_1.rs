//! The matmul of Q4_1 weights (the format SmolLM2's GGUF ships in) with f32 activations, bit for
//! bit what candle's quantized matmul gives on the same tensors, several times faster.
//!
//! candle's Q4_1 dot product is scalar (`vec_dot_unopt`), and it streams every weight row once
//! per activation row. This kernel keeps candle's arithmetic and changes only how it is
//! scheduled:
//! - the activations are quantized to Q8_1 here, step for step as candle's `from_float`;
//! - each block's integer dot product runs in AVX2 for eight weight rows at once (integer sums
//!   are exact in any order): the rows' nibbles are repacked so that one 32-byte vector holds
//!   four consecutive weights of each of the eight rows, and each multiply takes four
//!   activations broadcast to every row, so the eight rows' sums come out one per lane with no
//!   horizontal adds;
//! - the per-block float steps run the eight rows at once, one per SIMD lane, in candle's
//!   order and without fused multiply-adds, so each output is the same float as candle's;
//! - one pass over a weight row serves every activation row, so a batch of sequences reads the
//!   weights once.
//!
//! Without AVX2 and F16C at compile time, the same loop runs in scalar code.

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, Layout, Shape, Tensor,
    quantized::{GgmlDType, QTensor},
};

use super::matmul::{SharedOut, matmul_cpu_fwd};

/// Weights per Q4_1 (and Q8_1) block.
const BLOCK: usize = 32;
/// Weight rows interleaved in one group: one per lane of an AVX2 f32 vector.
const ROWS: usize = 8;
/// Bytes of one block of a group: its rows' nibbles (16 bytes a row) as four runs of 32 bytes,
/// run `k` holding bytes `4k..4k + 4` of row 0, then of row 1, and so on (see [`nibble_at`]);
/// then the rows' scales `d`, then their minimums `m` (f16 each).
const GROUP_BLOCK: usize = ROWS * 16 + ROWS * 2 + ROWS * 2;

/// Where byte `j` of row `r`'s 16 bytes of nibbles lies in a group block. A byte holds
/// weight `j` in its low nibble and weight `j + 16` in its high one, as in GGUF.
const fn nibble_at(r: usize, j: usize) -> usize {
    j / 4 * ROWS * 4 + r * 4 + j % 4
}
/// Bytes of one GGUF Q4_1 block: `d`, `m`, 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
/// Activation rows computed per pass over a group's weights (8 measured the same: 8 streams of
/// SmolLM2 on 2 threads total 167 against 163 tokens/s, within the noise).
const TILE: usize = 4;

/// A Q4_1 matrix of `rows` × `cols`, repacked in groups of eight rows.
#[derive(Debug, Clone)]
pub(super) struct Q4_1Matrix {
    rows: usize,
    cols: usize,
    packed: Arc<[u8]>,
}

impl Q4_1Matrix {
    /// The matrix of a Q4_1 tensor whose rows come in groups of eight; `None` for any other.
    pub(super) fn new(tensor: &QTensor) -> candle_core::Result<Option<Self>> {
        let (rows, cols) = tensor.shape().dims2()?;
        if tensor.dtype() != GgmlDType::Q4_1 || rows % ROWS != 0 || cols % BLOCK != 0 {
            return Ok(None);
        }
        let data = tensor.data()?;
        let blocks = cols / BLOCK;
        let mut packed = vec![0u8; rows * blocks * GROUP_BLOCK / ROWS];
        for (g, group) in packed.chunks_exact_mut(blocks * GROUP_BLOCK).enumerate() {
            for (b, out) in group.chunks_exact_mut(GROUP_BLOCK).enumerate() {
                for r in 0..ROWS {
                    let block = &data[((g * ROWS + r) * blocks + b) * Q4_1_BYTES..][..Q4_1_BYTES];
                    for (j, &byte) in block[4..].iter().enumerate() {
                        out[nibble_at(r, j)] = byte;
                    }
                    out[ROWS * 16 + r * 2..][..2].copy_from_slice(&block[0..2]);
                    out[ROWS * 18 + r * 2..][..2].copy_from_slice(&block[2..4]);
                }
            }
        }
        Ok(Some(Self {
            rows,
            cols,
            packed: packed.into(),
        }))
    }

    /// `x · Wᵀ` over the last dimension of `x`.
    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `out[j][i]` = row `i` of the weights · activation row `j`, for `m` rows of `x`.
    fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) -> candle_core::Result<()> {
        let blocks = self.cols / BLOCK;
        let acts = Activations::quantize(x, blocks);
        let groups = self.rows / ROWS;
        let out = SharedOut(out.as_mut_ptr());
        let rows = self.rows;
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            for g in range {
                let weights = &self.packed[g * blocks * GROUP_BLOCK..][..blocks * GROUP_BLOCK];
                for first in (0..m).step_by(TILE) {
                    let tile = TILE.min(m - first);
                    let sums = dot_group(weights, &acts, first, tile);
                    for (t, sums) in sums[..tile].iter().enumerate() {
                        // SAFETY: group g alone writes columns g*8..g*8+8 of every row, and
                        // those lie within `out` (m rows of `rows`).
                        unsafe { out.write((first + t) * rows + g * ROWS, sums) };
                    }
                }
            }
        });
        Ok(())
    }
}

impl CustomOp1 for Q4_1Matrix {
    fn name(&self) -> &'static str {
        "q4_1-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, cols) = (self.rows, self.cols);
        matmul_cpu_fwd("q4_1 matmul", (rows, cols), storage, layout, |x, m, out| {
            self.matmul(x, m, out)
        })
    }
}

/// Q8_1 activation rows, split for the kernel: each block's 32 values, and its `d` and `s` as
/// f32 (the conversion is exact, as candle's `f16::to_f32` in its dot product).
struct Activations {
    blocks: usize,
    values: Vec<[i8; BLOCK]>,
    d: Vec<f32>,
    s: Vec<f32>,
}

impl Activations {
    /// `x` (rows of `blocks` blocks) quantized as candle's `BlockQ8_1::from_float` does it,
    /// step for step, straight into the kernel's form. Through candle (a tensor of `x`, a
    /// `QTensor`, its bytes, then this form) the quantization was 3% of all samples of 8
    /// SmolLM2 streams, all of it on the calling thread while the pool's other threads waited.
    fn quantize(x: &[f32], blocks: usize) -> Self {
        let n = x.len() / BLOCK;
        let mut acts = Self {
            blocks,
            values: Vec::with_capacity(n),
            d: Vec::with_capacity(n),
            s: Vec::with_capacity(n),
        };
        for block in x.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |amax, x| amax.max(x.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let (values, sum) = round_block(block, id);
            let d = half::f16::from_f32(d);
            acts.d.push(d.to_f32());
            acts.s.push((half::f16::from_f32(sum as f32) * d).to_f32());
            acts.values.push(values);
        }
        acts
    }
}

/// A block's values `x · id` rounded half away from zero (`f32::round`) as i8 (`as i8`: NaN is
/// 0, beyond the range the nearest end), and their sum. `id` is 127 over the block's largest
/// magnitude, so where it is finite no value is beyond ±127 and the vector loop runs; it is
/// infinite for a block of values all below about 1e-36, which the scalar loop takes.
fn round_block(block: &[f32], id: f32) -> ([i8; BLOCK], i32) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if id.is_finite() {
        // SAFETY: the target feature it needs is enabled at compile time.
        return unsafe { avx2::round_block(block, id) };
    }
    scalar_round_block(block, id)
}

/// [`round_block`] one value at a time. (The compiler does not vectorize it: a saturating
/// float-to-int cast is a branchy sequence per value; this loop was 3% of 8 streams' samples.)
fn scalar_round_block(block: &[f32], id: f32) -> ([i8; BLOCK], i32) {
    let values: [i8; BLOCK] = std::array::from_fn(|j| (block[j] * id).round() as i8);
    (values, values.iter().map(|&q| q as i32).sum())
}

/// The sums of one group's eight weight rows with activation rows `first..first + tile`.
fn dot_group(weights: &[u8], acts: &Activations, first: usize, tile: usize) -> [[f32; ROWS]; TILE] {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "f16c"
    ))]
    // SAFETY: the target features it needs are enabled at compile time.
    return unsafe { avx2::dot_group(weights, acts, first, tile) };
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "f16c"
    )))]
    return scalar_dot_group(weights, acts, first, tile);
}

/// The kernel's arithmetic one lane at a time: candle's `vec_dot_unopt` for Q4_1 × Q8_1.
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "f16c"
    ),
    allow(dead_code)
)]
fn scalar_dot_group(
    weights: &[u8],
    acts: &Activations,
    first: usize,
    tile: usize,
) -> [[f32; ROWS]; TILE] {
    let mut sums = [[0f32; ROWS]; TILE];
    for (b, block) in weights.chunks_exact(GROUP_BLOCK).enumerate() {
        let f16 = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
        for (t, sums) in sums[..tile].iter_mut().enumerate() {
            let a = (first + t) * acts.blocks + b;
            let y = &acts.values[a];
            for (r, sum) in sums.iter_mut().enumerate() {
                let mut sumi = 0i32;
                for j in 0..16 {
                    let q = block[nibble_at(r, j)];
                    sumi += (q & 0x0F) as i32 * y[j] as i32 + (q >> 4) as i32 * y[j + 16] as i32;
                }
                *sum += sumi as f32 * f16(ROWS * 16 + r * 2) * acts.d[a]
                    + f16(ROWS * 18 + r * 2) * acts.s[a];
            }
        }
    }
    sums
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "f16c"
))]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Activations, BLOCK, GROUP_BLOCK, ROWS, TILE};

    /// [`super::scalar_round_block`] eight values at a time, for a finite `id` (so every
    /// value is within ±127 or NaN): `f32::round` as the compiler lowers it
    /// (`trunc(v + copysign(0.49999997, v))`, exact for every |v| below 2²³), then NaN lanes
    /// zeroed, as `as i8` makes them.
    #[target_feature(enable = "avx2")]
    pub(super) fn round_block(block: &[f32], id: f32) -> ([i8; BLOCK], i32) {
        let (ids, just_below_half, sign) = (
            _mm256_set1_ps(id),
            _mm256_set1_ps(0.49999997),
            _mm256_set1_ps(-0.0),
        );
        let mut rounded = [0i32; BLOCK];
        let mut sums = _mm256_setzero_si256();
        for (x, out) in block.chunks_exact(8).zip(rounded.chunks_exact_mut(8)) {
            // SAFETY: eight f32s in, eight i32s out.
            unsafe {
                let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr()), ids);
                let nudge = _mm256_or_ps(just_below_half, _mm256_and_ps(v, sign));
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(
                    _mm256_add_ps(v, nudge),
                );
                let numbers = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
                let q = _mm256_and_si256(_mm256_cvttps_epi32(r), numbers);
                sums = _mm256_add_epi32(sums, q);
                _mm256_storeu_si256(out.as_mut_ptr().cast(), q);
            }
        }
        let mut lanes = [0i32; 8];
        // SAFETY: eight i32s.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sums) };
        (rounded.map(|q| q as i8), lanes.iter().sum())
    }

    /// [`super::scalar_dot_group`] eight lanes at a time.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn dot_group(
        weights: &[u8],
        acts: &Activations,
        first: usize,
        tile: usize,
    ) -> [[f32; ROWS]; TILE] {
        let (nibbles, ones) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi16(1));
        let mut acc = [_mm256_setzero_ps(); TILE];
        for (b, block) in weights.chunks_exact(GROUP_BLOCK).enumerate() {
            let p = block.as_ptr();
            // SAFETY: a group block holds 4 runs of 32 bytes of nibbles, then 8 f16 `d`, then
            // 8 f16 `m`.
            let (runs, d, m): ([__m256i; 4], _, _) = unsafe {
                (
                    std::array::from_fn(|k| _mm256_loadu_si256(p.add(k * 32).cast())),
                    _mm256_cvtph_ps(_mm_loadu_si128(p.add(ROWS * 16).cast())),
                    _mm256_cvtph_ps(_mm_loadu_si128(p.add(ROWS * 18).cast())),
                )
            };
            // w[i]: weights 4i..4i + 4 of each row (the low nibbles of run i for i < 4, the
            // high nibbles of run i - 4 after), the ones activations 4i..4i + 4 multiply.
            let w: [__m256i; 8] = std::array::from_fn(|i| match i {
                0..4 => _mm256_and_si256(runs[i], nibbles),
                _ => _mm256_and_si256(_mm256_srli_epi16(runs[i - 4], 4), nibbles),
            });
            for (t, acc) in acc[..tile].iter_mut().enumerate() {
                let a = (first + t) * acts.blocks + b;
                let y = acts.values[a].as_ptr();
                // SAFETY: i < 8, so the four bytes at 4i lie within the block's 32 values.
                let four = |i: usize| unsafe {
                    _mm256_set1_epi32(y.add(4 * i).cast::<i32>().read_unaligned())
                };
                // Each i16 lane sums 2 products per step, each at most 15 × 127 in size: after
                // eight steps at most 30,480, so no lane saturates.
                let mut pairs = _mm256_maddubs_epi16(w[0], four(0));
                for (i, w) in w.iter().enumerate().skip(1) {
                    pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(*w, four(i)));
                }
                // Lanes 2r and 2r + 1 are row r's.
                let sumi = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                // candle's order: sumi · d_x · d_y + m_x · s_y, added to the running sum.
                let scaled = _mm256_mul_ps(_mm256_mul_ps(sumi, d), _mm256_set1_ps(acts.d[a]));
                let offset = _mm256_mul_ps(m, _mm256_set1_ps(acts.s[a]));
                *acc = _mm256_add_ps(*acc, _mm256_add_ps(scaled, offset));
            }
        }
        let mut sums = [[0f32; ROWS]; TILE];
        for (sums, acc) in sums.iter_mut().zip(acc) {
            // SAFETY: eight f32s into eight f32s.
            unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), acc) };
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, quantized::QMatMul};
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Bytes of one Q8_1 block: `d`, `s` (the scaled sum of its values), 32 signed bytes.
    const Q8_1_BYTES: usize = 36;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let values: Vec<f32> = (0..shape.iter().product())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// A Q4_1 matrix of random weights, and its candle matmul.
    fn matrix(rows: usize, cols: usize, seed: u64) -> (QTensor, Q4_1Matrix) {
        let w = random(&[rows, cols], seed);
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let ours = Q4_1Matrix::new(&q).unwrap().unwrap();
        (q, ours)
    }

    #[test]
    fn every_output_is_candles_bit_for_bit_at_every_batch_size() {
        for (rows, cols) in [(8, 64), (64, 128), (192, 576)] {
            let (q, ours) = matrix(rows, cols, rows as u64);
            let candle = QMatMul::from_qtensor(q).unwrap();
            for m in [1, 2, 3, 4, 5, 8, 17] {
                let x = random(&[m, cols], 7 + m as u64);
                let expected: Vec<f32> = candle
                    .forward(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let got: Vec<f32> = ours
                    .forward(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&expected), "{rows}x{cols}, {m} rows");
            }
        }
    }

    #[test]
    fn the_largest_sums_a_block_can_have_are_exact() {
        // Every weight but each block's first at nibble 15, every activation at ±127.
        let (rows, cols) = (16, 128);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| if i % BLOCK == 0 { 0.0 } else { 1.0 })
            .collect();
        let w = Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let ours = Q4_1Matrix::new(&q).unwrap().unwrap();
        let candle = QMatMul::from_qtensor(q).unwrap();
        for sign in [1f32, -1.0] {
            let x = Tensor::full(sign, (3, cols), &Device::Cpu).unwrap();
            let expected = candle.forward(&x).unwrap().flatten_all().unwrap();
            let got = ours.forward(&x).unwrap().flatten_all().unwrap();
            assert_eq!(
                got.to_vec1::<f32>().unwrap(),
                expected.to_vec1::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn activations_are_quantized_as_candle_quantizes_them() {
        let mut x: Vec<f32> = random(&[4, 96], 9)
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // A block of zeros, one of a single value, halves that round away from zero, blocks
        // holding a NaN and an infinity, and a block so small that 127 over its largest value
        // is infinite, with an odd count of values that are not zero.
        x[32..64].fill(0.0);
        x[64..96].fill(-3.5);
        x[100] = 127.0;
        x[101] = 0.5;
        for (j, v) in x[128..160].iter_mut().enumerate() {
            *v = (j as f32 - 16.0) / 32.0 * 127.0;
        }
        x[200] = f32::NAN;
        x[300] = f32::INFINITY;
        x[320..352].fill(0.0);
        x[320..325].fill(1e-38);
        let candle = QTensor::quantize(
            &Tensor::from_slice(&x, (4, 96), &Device::Cpu).unwrap(),
            GgmlDType::Q8_1,
        )
        .unwrap();
        let candle = candle.data().unwrap();
        let ours = Activations::quantize(&x, 3);
        for (b, block) in candle.chunks_exact(Q8_1_BYTES).enumerate() {
            let f16 = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
            assert_eq!(ours.d[b].to_bits(), f16(0).to_bits(), "block {b}: d");
            assert_eq!(ours.s[b].to_bits(), f16(2).to_bits(), "block {b}: s");
            let values: Vec<i8> = block[4..].iter().map(|&q| q as i8).collect();
            assert_eq!(ours.values[b].as_slice(), values, "block {b}");
        }
        // The vector rounding against the scalar one, at the ids a block can be given (127 over
        // its largest magnitude, or 0) and smaller ones.
        for block in x.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |amax, x| amax.max(x.abs()));
            for id in [127.0 / amax, 127.0 / amax * 0.999, 1.0 / amax, 0.0] {
                assert_eq!(
                    round_block(block, id),
                    scalar_round_block(block, id),
                    "id {id}"
                );
            }
        }
    }

    #[test]
    fn the_scalar_loop_is_the_same_arithmetic() {
        let (_, ours) = matrix(16, 64, 3);
        let x = random(&[3, 64], 4);
        let x: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let acts = Activations::quantize(&x, 2);
        let weights = &ours.packed[..2 * GROUP_BLOCK];
        assert_eq!(
            dot_group(weights, &acts, 0, 3),
            scalar_dot_group(weights, &acts, 0, 3)
        );
    }

    #[test]
    fn batched_leading_dimensions_keep_their_shape_and_bad_input_is_refused() {
        let (_, ours) = matrix(16, 64, 5);
        let x = random(&[2, 3, 64], 6);
        assert_eq!(ours.forward(&x).unwrap().dims(), &[2, 3, 16]);
        let wrong = random(&[2, 32], 6);
        assert!(ours.forward(&wrong).is_err());
        let other = QTensor::quantize(&random(&[16, 64], 1), GgmlDType::Q8_0).unwrap();
        assert!(Q4_1Matrix::new(&other).unwrap().is_none());
        let odd = QTensor::quantize(&random(&[12, 64], 1), GgmlDType::Q4_1).unwrap();
        assert!(Q4_1Matrix::new(&odd).unwrap().is_none());
    }
}
