//! Prometheus metrics of inference, by model: queue depth, sequences running, tokens in and out,
//! time to first token, time between tokens, decode speed, sequences per batched decode step,
//! and requests by outcome.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: String,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Cancelled,
    Failed,
    Rejected,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(
            encoder,
            match self {
                Self::Completed => "completed",
                Self::Cancelled => "cancelled",
                Self::Failed => "failed",
                Self::Rejected => "rejected",
            },
        )
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    model: String,
    outcome: Outcome,
}

type Histograms = Family<ModelLabel, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn batch_histogram() -> Histogram {
    // 1 to 64 sequences.
    Histogram::new(exponential_buckets(1.0, 2.0, 7))
}

/// Handles to the inference metrics; clones share them.
#[derive(Debug, Clone)]
pub struct InferenceMetrics {
    pub queue_depth: Family<ModelLabel, Gauge>,
    pub active_sequences: Family<ModelLabel, Gauge>,
    pub prompt_tokens: Family<ModelLabel, Counter>,
    pub completion_tokens: Family<ModelLabel, Counter>,
    pub time_to_first_token: Histograms,
    pub inter_token: Histograms,
    /// Decode tokens per second over the last second of work (all sequences together).
    pub tokens_per_second: Family<ModelLabel, Gauge<f64, AtomicU64>>,
    /// Sequences stepped together by each decode pass.
    pub decode_batch: Histograms,
    requests: Family<OutcomeLabels, Counter>,
}

impl Default for InferenceMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl InferenceMetrics {
    /// Metrics that no registry exports (for tools that run models without serving them).
    pub fn new() -> Self {
        Self {
            queue_depth: Family::default(),
            active_sequences: Family::default(),
            prompt_tokens: Family::default(),
            completion_tokens: Family::default(),
            time_to_first_token: Family::new_with_constructor(seconds_histogram),
            inter_token: Family::new_with_constructor(seconds_histogram),
            tokens_per_second: Family::default(),
            decode_batch: Family::new_with_constructor(batch_histogram),
            requests: Family::default(),
        }
    }

    /// Creates the metrics and registers them in `registry` (its root) as `aicoin_inference_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::new();
        let r = registry.sub_registry_with_prefix("aicoin_inference");
        r.register(
            "queue_depth",
            "Requests waiting for a model",
            metrics.queue_depth.clone(),
        );
        r.register(
            "active_sequences",
            "Sequences being generated",
            metrics.active_sequences.clone(),
        );
        r.register(
            "prompt_tokens",
            "Prompt tokens processed",
            metrics.prompt_tokens.clone(),
        );
        r.register(
            "completion_tokens",
            "Tokens generated",
            metrics.completion_tokens.clone(),
        );
        r.register(
            "time_to_first_token_seconds",
            "From a request's arrival to its first generated token",
            metrics.time_to_first_token.clone(),
        );
        r.register(
            "inter_token_seconds",
            "Between consecutive tokens of one sequence",
            metrics.inter_token.clone(),
        );
        r.register(
            "tokens_per_second",
            "Generated tokens per second, all sequences of a model together",
            metrics.tokens_per_second.clone(),
        );
        r.register(
            "decode_batch_size",
            "Sequences stepped together by one decode pass",
            metrics.decode_batch.clone(),
        );
        r.register(
            "requests",
            "Generation requests by outcome",
            metrics.requests.clone(),
        );
        metrics
    }

    pub fn request(&self, model: &str, outcome: Outcome) {
        self.requests
            .get_or_create(&OutcomeLabels {
                model: model.to_string(),
                outcome,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported() {
        let mut registry = Registry::default();
        let metrics = InferenceMetrics::register(&mut registry);
        let label = ModelLabel { model: "m".into() };
        metrics.tokens_per_second.get_or_create(&label).set(2.5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("aicoin_inference_tokens_per_second{model=\"m\"} 2.5"),
            "{text}"
        );
    }
}
