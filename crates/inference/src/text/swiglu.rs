//! The MLP's gated activation, `silu(gate) · up`, in one pass over the rows on candle's pool.
//!
//! candle runs it as two ops, `silu` then `*`, each on the calling thread below 64k values (and
//! a decode step of 8 SmolLM2 sequences has 12,288), while the pool's other threads wait: the
//! `exp`s alone were 1.6% of all samples and the two ops 3%, all of it serial. [`swiglu`]
//! computes each value with candle's own expressions (`v / (1 + exp(-v))`, the same `exp`, then
//! one product), so every output is the same float.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, bail};

use super::matmul::SharedOut;

/// `silu(gate) · up` of two tensors of one shape: on the CPU in one pass of the pool where
/// both are f32 rows ([`RowsOf`]), else as candle's two ops.
pub(super) fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if gate.device().is_cpu() && gate.dtype() == candle_core::DType::F32 {
        gate.apply_op2_no_bwd(up, &SwiGlu)
    } else {
        candle_nn::ops::silu(gate)? * up
    }
}

#[derive(Debug, Clone, Copy)]
struct SwiGlu;

/// A tensor's values as rows of its last dimension: where row 0 starts and how far apart rows
/// are. The fused gate·up projection's halves are such views, each row half of the output's.
struct RowsOf {
    start: usize,
    stride: usize,
}

impl RowsOf {
    fn new(layout: &Layout, what: &str) -> candle_core::Result<Self> {
        let (dims, strides) = (layout.dims(), layout.stride());
        let Some((&width, leading)) = dims.split_last() else {
            bail!("swiglu: {what} is a scalar")
        };
        // Row r starts at r × the stride of the innermost leading dimension longer than 1, if
        // each dimension out from it steps over whole runs of the one inside it.
        let mut sized = leading
            .iter()
            .zip(strides)
            .rev()
            .filter(|&(&dim, _)| dim > 1);
        let (mut step, row_stride) = match sized.next() {
            Some((&dim, &stride)) => (stride * dim, stride),
            None => (0, width),
        };
        let mut rows_of_leading = true;
        for (&dim, &stride) in sized {
            rows_of_leading &= stride == step;
            step *= dim;
        }
        if strides.last() != Some(&1) || !rows_of_leading {
            bail!("swiglu: {what} {:?} is not rows of values", layout.shape())
        }
        Ok(Self {
            start: layout.start_offset(),
            stride: row_stride,
        })
    }

    fn row<'a>(&self, data: &'a [f32], r: usize, width: usize) -> candle_core::Result<&'a [f32]> {
        let at = self.start + r * self.stride;
        match data.get(at..at + width) {
            Some(row) => Ok(row),
            None => bail!("swiglu: an operand is shorter than its layout"),
        }
    }
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(gate), CpuStorage::F32(up)) = (gate, up) else {
            bail!("swiglu: gate and up must be f32")
        };
        let shape = gate_layout.shape();
        if up_layout.shape() != shape {
            bail!("swiglu: gate {shape:?} against up {:?}", up_layout.shape())
        }
        let (gate_rows, up_rows) = (
            RowsOf::new(gate_layout, "gate")?,
            RowsOf::new(up_layout, "up")?,
        );
        let width = shape.dims().last().copied().unwrap_or(1);
        let rows = shape.elem_count() / width.max(1);
        // Check every row before the pool runs, so that its workers cannot fail.
        let operands = (0..rows)
            .map(|r| Ok((gate_rows.row(gate, r, width)?, up_rows.row(up, r, width)?)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut out = super::matmul::zeroed_by_writing(rows * width);
        let shared = SharedOut(out.as_mut_ptr());
        candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
            let mut values = vec![0f32; width];
            for r in range {
                let (gate, up) = operands[r];
                for ((value, &g), &u) in values.iter_mut().zip(gate).zip(up) {
                    // candle's `Silu` on f32, then its product.
                    *value = g / (1.0 + (-g).exp()) * u;
                }
                // SAFETY: row r alone is written here, and it lies within `rows × width`.
                unsafe { shared.write(r * width, &values) };
            }
        });
        Ok((CpuStorage::F32(out), shape.clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device};

    use super::*;

    fn values(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn the_halves_of_a_fused_projection_give_candles_floats() {
        let device = Device::Cpu;
        for rows in [1, 3, 8] {
            let all = Tensor::randn(0f32, 4.0, (rows, 1, 96), &device).unwrap();
            let (gate, up) = (
                all.narrow(D::Minus1, 0, 48).unwrap(),
                all.narrow(D::Minus1, 48, 48).unwrap(),
            );
            let candle = (candle_nn::ops::silu(&gate).unwrap() * &up).unwrap();
            let ours = swiglu(&gate, &up).unwrap();
            assert_eq!(ours.dims(), &[rows, 1, 48]);
            assert_eq!(values(&ours), values(&candle), "{rows} rows");
        }
    }

    #[test]
    fn operands_it_cannot_read_as_rows_are_errors() {
        let device = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (4, 6), &device).unwrap();
        assert!(
            swiglu(&a, &a.narrow(1, 0, 3).unwrap()).is_err(),
            "shapes differ"
        );
        // A transposed operand's last dimension is not contiguous.
        let t = a.t().unwrap();
        assert!(swiglu(&t, &t).is_err());
        let ints = Tensor::zeros((4, 6), candle_core::DType::U32, &device).unwrap();
        assert!(swiglu(&a, &ints).is_err());
    }
}
