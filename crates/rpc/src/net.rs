//! The `net_` and `web3_` namespaces.

use alloy_primitives::{B256, Bytes, U64, keccak256};
use jsonrpsee::{core::RpcResult, proc_macros::rpc};

/// `AICoin/v<version>/<os>/rust`, as `web3_clientVersion` reports it.
pub fn client_version() -> String {
    format!(
        "AICoin/v{}/{}/rust",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    )
}

#[rpc(server, namespace = "net")]
pub trait NetApi {
    #[method(name = "version")]
    fn version(&self) -> RpcResult<String>;

    #[method(name = "listening")]
    fn listening(&self) -> RpcResult<bool>;

    #[method(name = "peerCount")]
    fn peer_count(&self) -> RpcResult<U64>;
}

#[rpc(server, namespace = "web3")]
pub trait Web3Api {
    #[method(name = "clientVersion")]
    fn client_version(&self) -> RpcResult<String>;

    #[method(name = "sha3")]
    fn sha3(&self, data: Bytes) -> RpcResult<B256>;
}

#[derive(Debug, Clone)]
pub struct NetRpc {
    pub chain_id: u64,
}

impl NetApiServer for NetRpc {
    fn version(&self) -> RpcResult<String> {
        Ok(self.chain_id.to_string())
    }

    fn listening(&self) -> RpcResult<bool> {
        Ok(true)
    }

    fn peer_count(&self) -> RpcResult<U64> {
        Ok(U64::ZERO)
    }
}

#[derive(Debug, Clone)]
pub struct Web3Rpc;

impl Web3ApiServer for Web3Rpc {
    fn client_version(&self) -> RpcResult<String> {
        Ok(client_version())
    }

    fn sha3(&self, data: Bytes) -> RpcResult<B256> {
        Ok(keccak256(&data))
    }
}
