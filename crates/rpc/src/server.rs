//! The JSON-RPC server: HTTP and WebSocket on one port, with CORS for browser wallets and
//! limits on request size, response size, batch length and connections.

use std::{net::SocketAddr, sync::Arc};

use jsonrpsee::{
    RpcModule,
    server::{BatchRequestConfig, Server, ServerConfig, ServerHandle},
};
use tower_http::cors::{Any, CorsLayer};

use crate::{
    eth::{EthApiServer, EthRpc, RpcState},
    net::{NetApiServer, NetRpc, Web3ApiServer, Web3Rpc},
};

/// Server limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcServerConfig {
    pub addr: SocketAddr,
    pub max_request_body_bytes: u32,
    pub max_response_body_bytes: u32,
    pub max_connections: u32,
    pub max_batch_len: u32,
}

impl RpcServerConfig {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            max_request_body_bytes: 5 * 1024 * 1024,
            max_response_body_bytes: 100 * 1024 * 1024,
            max_connections: 500,
            max_batch_len: 100,
        }
    }
}

/// Every namespace the node serves, in one module.
pub fn rpc_module(state: Arc<RpcState>) -> RpcModule<()> {
    let chain_id = state.spec.chain_id;
    let mut module = RpcModule::new(());
    let parts = [
        EthRpc::new(state).into_rpc().remove_context(),
        NetRpc { chain_id }.into_rpc().remove_context(),
        Web3Rpc.into_rpc().remove_context(),
    ];
    for part in parts {
        module
            .merge(part)
            .expect("namespaces have distinct method names");
    }
    module
}

/// Binds the server and starts serving; it runs until the handle is stopped or dropped.
pub async fn start(
    state: Arc<RpcState>,
    config: &RpcServerConfig,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_body_bytes)
        .max_response_body_size(config.max_response_body_bytes)
        .max_connections(config.max_connections)
        .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch_len))
        .build();
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any);
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors))
        .build(config.addr)
        .await?;
    let addr = server.local_addr()?;
    let handle = server.start(rpc_module(state));
    Ok((addr, handle))
}
