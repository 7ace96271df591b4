//! The compute score's arithmetic, in integers so every node computes the same number: medians
//! over the validators' reports, each part of the score in basis points, and the weighted sum
//! times the hardware factor.
//!
//! ```text
//! utilization = 10,000 × tokens / most tokens of any provider that passed its audits
//! throughput  = 10,000 × rate / best rate of any provider that passed   (rate: tokens/s × units)
//! uptime      = 10,000 × log2(1 + min(up blocks, cap)) / log2(1 + cap)
//! completion  = 10,000 × answered / jobs, over the completion window
//! score       = (wU·utilization + wT·throughput + wUp·uptime + wC·completion) / 10,000
//!               × factor / 10,000          (factor: 10,000 for a GPU the rate backs, else cpuFactorBps)
//! ```

const BPS: u64 = 10_000;

/// The median of `values` (for an even count, the floor of the middle two's mean); 0 for none.
pub fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => 0,
        _ if n % 2 == 1 => values[n / 2],
        _ => ((values[n / 2 - 1] as u128 + values[n / 2] as u128) / 2) as u64,
    }
}

/// `part / whole` in basis points, at most 10,000; 0 when `whole` is 0.
pub fn ratio_bps(part: u128, whole: u128) -> u64 {
    if whole == 0 {
        return 0;
    }
    (part.min(whole) * BPS as u128 / whole) as u64
}

/// `log2(x)` in fixed point with 32 fractional bits (`x` ≥ 1), by the digit-by-digit method:
/// exact integer steps, so it is the same on every machine.
pub fn log2_fixed(x: u64) -> u64 {
    debug_assert!(x >= 1);
    let integer = 63 - x.leading_zeros() as u64;
    // The mantissa in [1, 2) as a 1.62 fixed-point number.
    let mut m: u128 = (x as u128) << (62 - integer);
    let one: u128 = 1 << 62;
    let mut fraction = 0u64;
    for bit in (0..32).rev() {
        m = (m * m) >> 62;
        if m >= 2 * one {
            m >>= 1;
            fraction |= 1 << bit;
        }
    }
    (integer << 32) | fraction
}

/// Uptime's part: log-scaled, full at `cap` blocks.
pub fn uptime_bps(up_blocks: u64, cap: u64) -> u64 {
    if cap == 0 || up_blocks == 0 {
        return 0;
    }
    let up = log2_fixed(1 + up_blocks.min(cap)) as u128;
    let full = log2_fixed(1 + cap) as u128;
    (up * BPS as u128 / full) as u64
}

/// The score's weights and factors, all chain parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub utilization: u64,
    pub throughput: u64,
    pub uptime: u64,
    pub completion: u64,
    pub cpu_factor: u64,
    /// Least rate for a GPU claim to earn the full factor.
    pub gpu_min_rate: u64,
}

/// A provider's score parts, each 0–10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parts {
    pub utilization: u64,
    pub throughput: u64,
    pub uptime: u64,
    pub completion: u64,
}

/// The score, 0–10,000, of `parts` for a provider of `gpu` class measured at `rate`.
pub fn score(parts: &Parts, weights: &Weights, gpu: bool, rate: u64) -> u64 {
    let sum = weights.utilization as u128 * parts.utilization as u128
        + weights.throughput as u128 * parts.throughput as u128
        + weights.uptime as u128 * parts.uptime as u128
        + weights.completion as u128 * parts.completion as u128;
    let weighted = (sum / BPS as u128).min(BPS as u128);
    let factor = if gpu && rate >= weights.gpu_min_rate {
        BPS
    } else {
        weights.cpu_factor.min(BPS)
    };
    (weighted * factor as u128 / BPS as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ignore_one_outlier() {
        assert_eq!(median(&mut [5, 1_000_000, 7]), 7);
        assert_eq!(median(&mut [5, 8]), 6);
        assert_eq!(median(&mut [u64::MAX, u64::MAX]), u64::MAX);
        assert_eq!(median(&mut []), 0);
    }

    #[test]
    fn log2_is_exact_at_powers_and_close_between() {
        assert_eq!(log2_fixed(1), 0);
        assert_eq!(log2_fixed(1024), 10 << 32);
        for x in [3u64, 10, 101, 864_001, u64::MAX / 3] {
            let got = log2_fixed(x) as f64 / (1u64 << 32) as f64;
            assert!((got - (x as f64).log2()).abs() < 1e-8, "{x}: {got}");
        }
    }

    #[test]
    fn uptime_grows_with_the_log_and_stops_at_the_cap() {
        let cap = 864_000;
        assert_eq!(uptime_bps(0, cap), 0);
        assert_eq!(uptime_bps(cap, cap), 10_000);
        assert_eq!(uptime_bps(10 * cap, cap), 10_000);
        let day = uptime_bps(28_800, cap);
        assert!((7_500..7_600).contains(&day), "{day}");
        assert!(uptime_bps(100, cap) < day);
    }

    #[test]
    fn the_score_weights_its_parts_and_cpus_earn_the_factor() {
        let weights = Weights {
            utilization: 3_000,
            throughput: 3_000,
            uptime: 2_000,
            completion: 2_000,
            cpu_factor: 3_000,
            gpu_min_rate: 1_000,
        };
        let full = Parts {
            utilization: 10_000,
            throughput: 10_000,
            uptime: 10_000,
            completion: 10_000,
        };
        assert_eq!(score(&full, &weights, true, 1_000), 10_000);
        // A GPU claim the measured rate does not back is scored as CPU.
        assert_eq!(score(&full, &weights, true, 999), 3_000);
        assert_eq!(score(&full, &weights, false, 1_000_000), 3_000);
        let half = Parts {
            utilization: 5_000,
            throughput: 10_000,
            uptime: 2_500,
            completion: 10_000,
        };
        // (3000·5000 + 3000·10000 + 2000·2500 + 2000·10000) / 10000 = 7000; × 0.3 = 2100.
        assert_eq!(score(&half, &weights, false, 0), 2_100);
        assert_eq!(ratio_bps(3, 0), 0);
        assert_eq!(ratio_bps(5, 4), 10_000);
    }
}
