//! Ethereum JSON-RPC for AICoin on jsonrpsee: the `eth_`, `net_` and `web3_` namespaces over
//! HTTP and WebSocket on one port.

mod block_id;
mod convert;
mod error;
mod eth;
mod net;
mod server;

pub use error::{EXECUTION_REVERTED_CODE, RpcError};
pub use eth::{EthApiServer, EthRpc, RpcState};
pub use jsonrpsee::server::ServerHandle;
pub use net::client_version;
pub use server::{RpcServerConfig, rpc_module, start};
