//! The JSON-RPC server: HTTP and WebSocket on one port, with CORS for browser wallets, gzip,
//! the MetaMask page, limits on request and response size, batch length, connections (in all
//! and per client, idle ones closed) and subscriptions, a per-client request-rate limit and call
//! metrics.
//!
//! The accept loop is ours (jsonrpsee's low-level API) so each connection's requests carry the
//! client (its IPv4 address or IPv6 /64), which the rate limit keys on, and so a full server
//! still admits a newcomer by closing a connection of a client holding more than its share.
//! Once a connection is a WebSocket, its writes leave in batches ([`batched_writes`]): answers
//! to requests in flight that are ready together go out in one write.

mod batched_writes;
mod client;
mod connections;
mod guard;
mod http;
mod metrics;

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use ::http::{HeaderValue, Method, header::CONTENT_TYPE};
use jsonrpsee::{
    Methods, RpcModule,
    core::middleware::RpcServiceBuilder,
    server::{
        BatchRequestConfig, PingConfig, Server, ServerConfig, ServerHandle,
        serve_with_graceful_shutdown, stop_channel,
    },
};
use tokio::net::TcpListener;
use tower_http::{
    compression::{CompressionLayer, predicate::SizeAbove},
    cors::{AllowOrigin, Any, CorsLayer},
};

pub use guard::ClientIp;
pub use http::{NetworkInfo, render_page};
pub use metrics::RpcMetrics;

use crate::{
    aic::{AicApiServer, AicRpc},
    debug::{DebugApiServer, DebugRpc},
    eth::{
        EthBlocksApiServer, EthCallApiServer, EthFilters, EthFiltersApiServer, EthInfoApiServer,
        EthPubSub, EthPubSubApiServer, EthRpc, EthSendApiServer, EthStateApiServer, HexIdProvider,
        PersonalApiServer,
    },
    net::{NetApiServer, NetRpc, Web3ApiServer, Web3Rpc},
    state::RpcState,
    txpool::{TxPoolApiServer, TxPoolRpc},
};
use batched_writes::{BatchOnUpgrade, BatchedWrites};
use client::StampClient;
use connections::{Connections, Held, WS_PING_INTERVAL, with_idle_timeout};
use guard::GuardLayer;
use http::PageLayer;

/// Which origins browsers may call the RPC from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// Any origin (`*`), the default: public chains are read from dApps on any site.
    #[default]
    Any,
    /// Only these, e.g. `https://app.example`.
    List(Vec<String>),
}

/// Requests per second one client may make by default: far above what a dApp's page or a
/// wallet sends (tens), far below what one host could otherwise take from everyone (this node
/// answers some 90,000 simple reads a second).
pub const DEFAULT_RATE_LIMIT: u32 = 1000;

/// Server settings and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcServerConfig {
    pub max_request_body_bytes: u32,
    pub max_response_body_bytes: u32,
    pub max_connections: u32,
    /// Connections one client address may hold at once.
    pub max_connections_per_ip: u32,
    pub max_batch_len: u32,
    pub max_subscriptions_per_connection: u32,
    pub cors: CorsOrigins,
    /// Requests per second one client address may make; unlimited when `None`.
    pub rate_limit: Option<NonZeroU32>,
    /// The URL the MetaMask page hands to wallets (behind a proxy, the public one).
    pub public_url: Option<String>,
    /// Peers that are reverse proxies (nginx on this host, say): their requests count as the
    /// client they name in `X-Forwarded-For`, and they may hold every connection.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for RpcServerConfig {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 5 * 1024 * 1024,
            max_response_body_bytes: 100 * 1024 * 1024,
            max_connections: 500,
            max_connections_per_ip: 128,
            max_batch_len: 100,
            max_subscriptions_per_connection: 1024,
            cors: CorsOrigins::Any,
            rate_limit: NonZeroU32::new(DEFAULT_RATE_LIMIT),
            public_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Every method the node serves, by concern (one jsonrpsee trait each), with a label.
pub fn rpc_parts(state: Arc<RpcState>) -> Vec<(&'static str, RpcModule<()>)> {
    let eth = EthRpc::new(state.clone());
    let net = NetRpc {
        chain_id: state.chain_id(),
    };
    vec![
        (
            "Account state",
            EthStateApiServer::into_rpc(eth.clone()).remove_context(),
        ),
        (
            "Blocks, transactions, receipts",
            EthBlocksApiServer::into_rpc(eth.clone()).remove_context(),
        ),
        (
            "Calls",
            EthCallApiServer::into_rpc(eth.clone()).remove_context(),
        ),
        (
            "Chain and fees",
            EthInfoApiServer::into_rpc(eth.clone()).remove_context(),
        ),
        (
            "Sending and signing",
            EthSendApiServer::into_rpc(eth.clone()).remove_context(),
        ),
        (
            "Signing (personal)",
            PersonalApiServer::into_rpc(eth).remove_context(),
        ),
        (
            "Logs and filters",
            EthFilters::spawn(state.clone()).into_rpc().remove_context(),
        ),
        (
            "Subscriptions (WebSocket)",
            EthPubSub::new(state.clone()).into_rpc().remove_context(),
        ),
        (
            "Tracing and raw data",
            DebugRpc::new(state.clone()).into_rpc().remove_context(),
        ),
        (
            "Transaction pool",
            TxPoolRpc::new(state.pool.clone())
                .into_rpc()
                .remove_context(),
        ),
        (
            "Chain modules and parameters",
            AicRpc::new(state.clone()).into_rpc().remove_context(),
        ),
        ("Network", net.into_rpc().remove_context()),
        ("Client", Web3Rpc.into_rpc().remove_context()),
    ]
}

/// Every namespace the node serves, in one module.
pub fn rpc_module(state: Arc<RpcState>) -> RpcModule<()> {
    let mut module = RpcModule::new(());
    for (_, part) in rpc_parts(state) {
        // Distinct traits register distinct names; a clash is a programming error caught by
        // every test that starts a server.
        if let Err(e) = module.merge(part) {
            panic!("RPC method registered twice: {e}");
        }
    }
    module
}

fn cors(origins: &CorsOrigins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .max_age(Duration::from_secs(86_400));
    match origins {
        CorsOrigins::Any => layer.allow_origin(Any),
        CorsOrigins::List(list) => layer.allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}

/// Compress JSON responses of 1 KiB or more, for clients that accept gzip (never the
/// WebSocket upgrade, whose response has no body).
fn compression() -> CompressionLayer<impl tower_http::compression::Predicate> {
    let json = |_: ::http::StatusCode,
                _: ::http::Version,
                headers: &::http::HeaderMap,
                _: &::http::Extensions| {
        headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"))
    };
    use tower_http::compression::Predicate as _;
    CompressionLayer::new()
        .gzip(true)
        .compress_when(SizeAbove::new(1024).and(json))
}

/// A running server.
#[derive(Debug)]
pub struct RpcServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
}

/// Binds the server and starts serving; it runs until the handle is stopped.
pub async fn start(
    state: Arc<RpcState>,
    addr: SocketAddr,
    config: &RpcServerConfig,
    metrics: Option<RpcMetrics>,
) -> std::io::Result<RpcServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let module = rpc_module(state.clone());
    let guard = GuardLayer::new(
        config.rate_limit,
        metrics,
        module.method_names(),
        config.max_response_body_bytes,
    );
    let methods: Methods = module.into();
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_body_bytes)
        .max_response_body_size(config.max_response_body_bytes)
        // Our accept loop enforces the cap (fairly); jsonrpsee's own count lags behind a
        // connection closed to make room, so it must not refuse first.
        .max_connections(config.max_connections.saturating_mul(2))
        .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch_len))
        .set_id_provider(HexIdProvider)
        .enable_ws_ping(
            PingConfig::new()
                .ping_interval(WS_PING_INTERVAL)
                .inactive_limit(WS_PING_INTERVAL * 2),
        )
        .build();
    let http_middleware = tower::ServiceBuilder::new()
        .layer(cors(&config.cors))
        .layer(compression())
        .layer(PageLayer::new(
            &NetworkInfo {
                chain_id: state.chain_id(),
                public_rpc_url: config.public_url.clone(),
            },
            state.store.clone(),
        ));
    let services = Server::builder()
        .set_config(server_config)
        .set_http_middleware(http_middleware)
        .set_rpc_middleware(RpcServiceBuilder::new().layer(guard.clone()))
        .to_service_builder();

    let (stop, handle) = stop_channel();
    let connections = Connections::new(
        config.max_connections,
        config.max_connections_per_ip,
        &config.trusted_proxies,
    );
    let trusted_proxies: Vec<IpAddr> = config
        .trusted_proxies
        .iter()
        .map(IpAddr::to_canonical)
        .collect();
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(Duration::from_secs(60));
        loop {
            let (socket, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: give the system a moment rather than
                        // spin on the error.
                        tracing::warn!(error = %e, "accepting an RPC connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = sweep.tick() => {
                    guard.forget_idle_clients();
                    continue;
                }
                _ = stop.clone().shutdown() => break,
            };
            let Some(held) = connections.admit(remote.ip()) else {
                tracing::debug!(%remote, "refused a connection: its client holds its share");
                continue;
            };
            let service = services.clone().build(methods.clone(), stop.clone());
            let proxy = trusted_proxies.contains(&remote.ip().to_canonical());
            let service = StampClient::new(service, remote.ip(), proxy);
            let (socket, batching) = BatchedWrites::new(socket);
            let service = BatchOnUpgrade::new(service, batching);
            let stopped = stop.clone().shutdown();
            // The slot lives in the socket: through a WebSocket upgrade, until it closes.
            let socket = Held::new(with_idle_timeout(socket), held);
            tokio::spawn(async move {
                if let Err(e) = serve_with_graceful_shutdown(socket, service, stopped).await {
                    tracing::debug!(%remote, error = %e, "RPC connection ended with an error");
                }
            });
        }
    });
    Ok(RpcServer { addr, handle })
}
