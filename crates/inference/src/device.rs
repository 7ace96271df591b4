//! Where models run: `cpu`, or `cuda` / `cuda:N` when built with the `cuda` feature.

pub use candle_core::Device;

use crate::{InferenceError, Result};

/// How many times a worker of candle's thread pool spins after a parallel section before it
/// parks, unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` says otherwise. candle's default of 25,000
/// spins is about a millisecond of a core after every section; where anything else wants that
/// core (the calling thread's serial work between sections on two cores that share one physical
/// core, the network threads of a pipeline shard, another shard or node on the machine), the
/// spinning takes it. Measured on SmolLM2 (2 threads, release, `aicoin bench pipeline --rounds
/// 5 --tokens 128`, two runs each): 2 shards beside one node 0.80 and 0.80x at 25,000, 0.83 and
/// 0.96x at 1,000, 0.99 and 1.01x at 200; one node's own decode rate did not drop (92.3 / 86.5
/// against 97.4 / 85.7 tokens/s), nor 1 or 8 streams' in `aicoin bench inference`.
pub const POOL_SPIN_LIMIT: u32 = 200;

/// Sets the spin limit of candle's thread pool to [`POOL_SPIN_LIMIT`], unless the environment
/// sets `CANDLE_BARRIER_POOL_SPIN_LIMIT` already; candle reads it when its pool starts.
///
/// # Safety
///
/// It sets an environment variable: call it before the process starts any other thread.
pub unsafe fn set_pool_spin_limit() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        // SAFETY: the caller runs it while this is the process's only thread.
        unsafe { std::env::set_var(VAR, POOL_SPIN_LIMIT.to_string()) };
    }
}

/// Threads CPU inference uses (`RAYON_NUM_THREADS`, else every core).
pub fn cpu_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// The device `name` names.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
            let ordinal = cuda
                .strip_prefix("cuda:")
                .map(str::parse::<usize>)
                .transpose()
                .map_err(|_| {
                    InferenceError::InvalidRequest(format!("bad device {name:?}: expected cuda:N"))
                })?
                .unwrap_or(0);
            Device::new_cuda(ordinal).map_err(|e| {
                InferenceError::InvalidRequest(format!(
                    "cannot use {name}: {e} (build with `--features cuda` on a machine with the CUDA toolkit)"
                ))
            })
        }
        other => Err(InferenceError::InvalidRequest(format!(
            "unknown device {other:?}: expected cpu, cuda or cuda:N"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(matches!(device("cpu"), Ok(Device::Cpu)));
        assert!(device("tpu").is_err());
        assert!(device("cuda:x").is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(
            device("cuda")
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
