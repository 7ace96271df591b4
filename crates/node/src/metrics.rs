//! The node's Prometheus metrics, served at `GET /metrics` on `--metrics-port`: chain height and
//! pool sizes (read at scrape time), block build and import times, the RPC's calls and latency
//! by method, and the inference API's queue, tokens and latencies when the node serves models.

use std::{net::SocketAddr, sync::Arc};

use aicoin_inference::InferenceMetrics;
use aicoin_rpc::RpcMetrics;
use aicoin_storage::Store;
use aicoin_txpool::TxPool;
use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::sync::watch;

/// Every metric of one node.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Arc<Registry>,
    pub rpc: RpcMetrics,
    /// The inference API's metrics, when the node serves models.
    pub inference: InferenceMetrics,
    /// Seconds to build, seal and commit a produced block.
    pub block_build: Histogram,
    /// Seconds to verify, re-execute and commit an imported block.
    pub block_import: Histogram,
}

/// Height and pool sizes, read when Prometheus scrapes.
#[derive(Debug)]
struct LiveGauges {
    store: Store,
    pool: Arc<TxPool>,
}

impl Collector for LiveGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let height = self
            .store
            .reader()
            .and_then(|r| r.head_number())
            .unwrap_or_default();
        let pool = self.pool.status();
        let gauges = [
            (
                "aicoin_chain_height",
                "Number of the newest block",
                height as i64,
            ),
            (
                "aicoin_txpool_pending",
                "Executable transactions in the pool",
                pool.pending as i64,
            ),
            (
                "aicoin_txpool_queued",
                "Nonce-gapped transactions in the pool",
                pool.queued as i64,
            ),
            (
                "aicoin_txpool_bytes",
                "Encoded size of the pooled transactions",
                pool.bytes as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

fn block_time_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl NodeMetrics {
    pub fn new(store: Store, pool: Arc<TxPool>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(LiveGauges { store, pool }));
        let inference = InferenceMetrics::register(&mut registry);
        let aicoin = registry.sub_registry_with_prefix("aicoin");
        let (block_build, block_import) = (block_time_histogram(), block_time_histogram());
        aicoin.register(
            "block_build_seconds",
            "Time to build, seal and commit a produced block",
            block_build.clone(),
        );
        aicoin.register(
            "block_import_seconds",
            "Time to verify, re-execute and commit an imported block",
            block_import.clone(),
        );
        let rpc = RpcMetrics::register(aicoin);
        Self {
            registry: Arc::new(registry),
            rpc,
            inference,
            block_build,
            block_import,
        }
    }

    /// Every metric of the node, for servers that render it.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown` turns true; returns the bound address.
pub async fn serve(
    metrics: Arc<NodeMetrics>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
                    .into_response()
            }
        }),
    );
    aicoin_http::listen("metrics", addr, app, shutdown).await
}
