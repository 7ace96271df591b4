//! Sending a chain-module call as an ordinary signed, zero-fee EIP-1559 transaction through a
//! node's JSON-RPC (the node's own: it forwards to the block producer, as for any client).

use alloy_consensus::TxEip1559;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};

#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("cannot reach JSON-RPC at {url}: {source}")]
    Connect {
        url: String,
        source: jsonrpsee::core::client::Error,
    },
    #[error("{method} failed: {source}")]
    Rpc {
        method: &'static str,
        source: jsonrpsee::core::client::Error,
    },
    #[error("cannot sign: {0}")]
    Sign(#[from] alloy_signer::Error),
}

/// Signs with one key and sends through one node.
#[derive(Debug, Clone)]
pub struct TxSender {
    client: HttpClient,
    key: PrivateKeySigner,
    chain_id: u64,
}

impl TxSender {
    pub fn new(rpc_url: &str, key: PrivateKeySigner, chain_id: u64) -> Result<Self, TxError> {
        let client = HttpClientBuilder::default()
            .build(rpc_url)
            .map_err(|source| TxError::Connect {
                url: rpc_url.to_string(),
                source,
            })?;
        Ok(Self {
            client,
            key,
            chain_id,
        })
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Sends a call of `data` with `value` to `to`; returns the transaction hash.
    pub async fn send(
        &self,
        to: Address,
        data: Bytes,
        value: U256,
        gas_limit: u64,
    ) -> Result<B256, TxError> {
        let nonce: U256 = self
            .client
            .request(
                "eth_getTransactionCount",
                rpc_params![self.key.address(), "pending"],
            )
            .await
            .map_err(|source| TxError::Rpc {
                method: "eth_getTransactionCount",
                source,
            })?;
        let tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce: nonce.saturating_to(),
            gas_limit,
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
            to: TxKind::Call(to),
            value,
            input: data,
            access_list: Default::default(),
        };
        let envelope = aicoin_primitives::sign_transaction(&self.key, tx)?;
        let raw = Bytes::from(envelope.encoded_2718());
        self.client
            .request("eth_sendRawTransaction", rpc_params![raw])
            .await
            .map_err(|source| TxError::Rpc {
                method: "eth_sendRawTransaction",
                source,
            })
    }
}
