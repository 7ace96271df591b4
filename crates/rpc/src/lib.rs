//! Ethereum JSON-RPC for AICoin on jsonrpsee: the `eth_`, `net_`, `web3_`, `debug_`,
//! `txpool_`, `personal_sign` and AICoin's own `aic_` methods over HTTP and WebSocket on one
//! port, with the MetaMask page, CORS, gzip, rate limits and metrics.

mod aic;
mod block_id;
mod convert;
mod debug;
mod error;
mod eth;
mod net;
mod server;
mod state;
mod txpool;

pub use aic::{EpochInfo, ProviderInfo, ShardInfo, UpgradeInfo};
pub use convert::RpcBlock;
pub use error::{EXECUTION_REVERTED_CODE, LIMIT_EXCEEDED_CODE, RpcError};
pub use jsonrpsee::server::ServerHandle;
pub use net::client_version;
pub use server::{
    ClientIp, CorsOrigins, NetworkInfo, RpcMetrics, RpcServer, RpcServerConfig, render_page,
    rpc_module, rpc_parts, start,
};
pub use state::{Replicate, ReplicateError, RpcLimits, RpcState};
