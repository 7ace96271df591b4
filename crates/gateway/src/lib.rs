//! The paid inference gateway: OpenAI's `/v1` API sold by the API-access module's tiers and
//! served by the compute providers.
//!
//! - [`keys`]: what a user's API key is, and how any gateway checks it without a database;
//! - [`chain`]: what the gateway reads from the chain (offers, tiers, subscriptions);
//! - [`count`]: a request's prompt tokens, counted as the provider will count them;
//! - [`quota`]: requests per minute and tokens per day, reserved before forwarding;
//! - [`route`]: picking a provider by latency, load and its circuit breaker;
//! - [`proxy`]: the signed, streaming forward with fallback before the first token;
//! - [`server`]: the HTTP layers and endpoints;
//! - [`usage`]: the tokens each provider served, reported on chain per epoch;
//! - [`pipeline`]: models no provider holds whole, run here through the registry's shards.
//!
//! [`start`] runs it all beside a node.

pub mod chain;
pub mod count;
pub mod keys;
pub mod pipeline;
pub mod proxy;
pub mod quota;
pub mod route;
pub mod server;
pub mod usage;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use aicoin_compute::{tx::TxSender, view::ViewError};
use aicoin_inference::LocalModel;
use aicoin_modules::access::IApiAccess;
use aicoin_primitives::{NewBlock, modules::API_ACCESS_ADDRESS};
use aicoin_storage::Store;
use alloy_primitives::U256;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use tokio::{
    net::TcpListener,
    sync::{broadcast, watch},
    task::JoinHandle,
};

pub use keys::{ApiKey, KeyError};
pub use proxy::PROVIDER_HEADER;

/// Where and how a gateway serves.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Port 0 picks a free one.
    pub addr: SocketAddr,
    /// The URL users reach it at, registered on chain [default: `http://` + its address].
    pub public_url: Option<String>,
    /// Local copies of the models, to count prompts exactly, and to run those of the llama
    /// family as pipelines of shards (their embedding and head alone are loaded).
    pub models: Vec<LocalModel>,
    /// Deadlines and bans of those pipelines' shards.
    pub pipeline: aicoin_shard::CoordinatorConfig,
}

/// What the gateway runs with from its node.
pub struct NodeLink {
    pub store: Store,
    pub chain_id: u64,
    pub block_interval: Duration,
    /// The node's key: it signs forwarded requests and usage reports.
    pub key: PrivateKeySigner,
    /// The node's own JSON-RPC, where reports are sent.
    pub rpc_url: String,
    pub blocks: broadcast::Receiver<Arc<NewBlock>>,
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot serve the gateway on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the gateway cannot read the chain: {0}")]
    Chain(#[from] ViewError),
    #[error("the gateway cannot send transactions: {0}")]
    Tx(#[from] aicoin_compute::tx::TxError),
    #[error("cannot build the gateway's HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot serve the gateway's pipelines: {0}")]
    Pipelines(std::io::Error),
}

/// A running gateway.
#[derive(Debug)]
pub struct GatewayServer {
    addr: SocketAddr,
    url: String,
    task: JoinHandle<()>,
}

impl GatewayServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL it registers, the base clients add `/v1` to.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Binds, serves, and keeps the offers fresh and the usage reported until `link.shutdown`.
pub async fn start(config: GatewayConfig, link: NodeLink) -> Result<GatewayServer, GatewayError> {
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
        addr: config.addr,
        source,
    })?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let chain = Arc::new(ChainView::new(link.store.clone())?);
    let sender = TxSender::new(&link.rpc_url, link.key.clone(), link.chain_id)?;
    let counters = {
        let models = config.models.clone();
        tokio::task::spawn_blocking(move || count::Counters::load(&models))
            .await
            .unwrap_or_default()
    };
    tracing::info!(counted = ?counters.ids(), "gateway counts prompts with these models' tokenizers");
    let served = Arc::new(usage::Served::default());
    let (pipelines, pipeline_app, pipeline_listener) = {
        let (models, key) = (config.models.clone(), link.key.clone());
        let pipeline = config.pipeline;
        tokio::task::spawn_blocking(move || pipeline::Pipelines::load(&models, &key, pipeline))
            .await
            .map_err(|e| GatewayError::Pipelines(std::io::Error::other(e.to_string())))?
            .map_err(GatewayError::Pipelines)?
    };
    let pipelines = Arc::new(pipelines);
    tracing::info!(models = ?pipelines.models(), "gateway runs these models as pipelines of shards");
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()?;
    let gateway = Arc::new(server::Gateway {
        chain_id: link.chain_id,
        block_seconds: link.block_interval.as_secs_f64(),
        chain: chain.clone(),
        quotas: quota::Quotas::new(),
        counters: Arc::new(counters),
        forwarder: proxy::Forwarder {
            http,
            key: link.key.clone(),
            routes: route::Routes::new(),
            served: served.clone(),
        },
        pipelines: pipelines.clone(),
    });
    let mut shutdown = link.shutdown.clone();
    let task = aicoin_http::serve("gateway", listener, server::router(gateway), async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    let mut shutdown = link.shutdown.clone();
    let pipeline_listener =
        TcpListener::from_std(pipeline_listener).map_err(GatewayError::Pipelines)?;
    aicoin_http::serve(
        "gateway pipelines",
        pipeline_listener,
        pipeline_app,
        async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        },
    );
    tokio::spawn(follow(
        chain.clone(),
        pipelines,
        served.clone(),
        sender.clone(),
        url.clone(),
        link.blocks.resubscribe(),
        link.shutdown.clone(),
    ));
    tokio::spawn(usage::report(
        chain,
        served,
        sender,
        link.blocks,
        link.shutdown,
    ));
    tracing::info!(%addr, %url, gateway = %link.key.address(), "gateway serving");
    Ok(GatewayServer { addr, url, task })
}

use chain::ChainView;

/// At every block: a fresh snapshot of the offers; and, while this gateway is not registered
/// and its key is a validator's, the `addGateway` that registers it (other gateways are added
/// by a validator: `aicoin gateway add`).
async fn follow(
    chain: Arc<ChainView>,
    pipelines: Arc<pipeline::Pipelines>,
    served: Arc<usage::Served>,
    sender: TxSender,
    url: String,
    mut blocks: broadcast::Receiver<Arc<NewBlock>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = sender.address();
    let mut asked_at: Option<u64> = None;
    let mut told = false;
    while let Some(block) = aicoin_compute::heads::next_block(&mut blocks, &mut shutdown).await {
        if let Err(e) = chain.refresh() {
            tracing::warn!(error = %e, "the gateway cannot read the providers");
            continue;
        }
        let snapshot = chain.snapshot();
        pipelines.update(&snapshot);
        pipelines.record_work(snapshot.epoch, &served);
        let number = block.header.number;
        if asked_at.is_some_and(|at| number < at + 10) {
            continue;
        }
        match (chain.is_gateway(me), chain.is_authority(me)) {
            (Ok(true), _) => asked_at = None,
            (Ok(false), Ok(true)) => {
                let call = IApiAccess::addGatewayCall {
                    gateway: me,
                    url: url.clone(),
                };
                match sender
                    .send(
                        API_ACCESS_ADDRESS,
                        call.abi_encode().into(),
                        U256::ZERO,
                        300_000,
                    )
                    .await
                {
                    Ok(hash) => {
                        tracing::info!(%hash, gateway = %me, %url, "registering this gateway");
                        asked_at = Some(number);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot register this gateway"),
                }
            }
            (Ok(false), Ok(false)) if !told => {
                told = true;
                tracing::warn!(
                    gateway = %me,
                    "this gateway is not registered, so providers refuse its requests and its \
                     usage reports are not taken: a validator adds it with `aicoin gateway add \
                     {me} --url {url}`"
                );
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read whether this gateway is registered")
            }
            _ => {}
        }
    }
}
