//! Prometheus metrics of the RPC server: calls and their latency by method and outcome.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    RateLimited,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(
            encoder,
            match self {
                Self::Ok => "ok",
                Self::Error => "error",
                Self::RateLimited => "rate_limited",
            },
        )
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// The method name when the server knows it, `unknown` otherwise (so arbitrary names sent
    /// by clients cannot grow the label set).
    method: &'static str,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// Handles to the RPC metrics; clones share them.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    calls: Family<CallLabels, Counter>,
    latency: Family<MethodLabel, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl RpcMetrics {
    /// Creates the metrics and registers them in `registry` under `aicoin_rpc_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        let rpc = registry.sub_registry_with_prefix("rpc");
        rpc.register(
            "calls",
            "JSON-RPC calls by method and outcome",
            metrics.calls.clone(),
        );
        rpc.register(
            "call_duration_seconds",
            "JSON-RPC call latency by method",
            metrics.latency.clone(),
        );
        metrics
    }

    pub(crate) fn record(&self, method: &'static str, outcome: Outcome, seconds: Option<f64>) {
        self.calls
            .get_or_create(&CallLabels { method, outcome })
            .inc();
        if let Some(seconds) = seconds {
            self.latency
                .get_or_create(&MethodLabel { method })
                .observe(seconds);
        }
    }
}
