//! Where models run: `cpu`, or `cuda` / `cuda:N` when built with the `cuda` feature.

pub use candle_core::Device;

use crate::{InferenceError, Result};

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
