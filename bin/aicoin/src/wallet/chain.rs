//! What the wallet and payment commands ask of a node over JSON-RPC: balances, nonces, sending
//! a signed transfer and waiting for its receipt, and reading blocks.

use std::time::{Duration, Instant};

use alloy_consensus::TxEip1559;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256};
use alloy_signer_local::PrivateKeySigner;
use eyre::{WrapErr, eyre};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Default node URL for wallet commands (a local `aicoin node`).
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8546";

pub struct Node {
    pub url: String,
    client: HttpClient,
}

impl Node {
    pub fn new(url: &str) -> eyre::Result<Self> {
        let client = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(url)
            .wrap_err_with(|| format!("invalid --rpc-url {url}"))?;
        Ok(Self {
            url: url.to_string(),
            client,
        })
    }

    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: jsonrpsee::core::params::ArrayParams,
    ) -> eyre::Result<T> {
        self.client.request(method, params).await.map_err(|e| match e {
            jsonrpsee::core::client::Error::Call(e) => eyre!("the node refused {method}: {}", e.message()),
            other => eyre!(
                "cannot reach the node at {} ({other}); is `aicoin node` running? Use --rpc-url to \
                 point at another",
                self.url
            ),
        })
    }

    pub async fn chain_id(&self) -> eyre::Result<u64> {
        Ok(self.call::<U64>("eth_chainId", rpc_params![]).await?.to())
    }

    pub async fn block_number(&self) -> eyre::Result<u64> {
        Ok(self
            .call::<U64>("eth_blockNumber", rpc_params![])
            .await?
            .to())
    }

    pub async fn balance(&self, address: Address) -> eyre::Result<U256> {
        self.call("eth_getBalance", rpc_params![address, "latest"])
            .await
    }

    /// The block `number` with full transactions (`None` if it does not exist yet).
    pub async fn block(&self, number: u64) -> eyre::Result<Option<Value>> {
        let block: Value = self
            .call(
                "eth_getBlockByNumber",
                rpc_params![format!("{number:#x}"), true],
            )
            .await?;
        Ok((!block.is_null()).then_some(block))
    }

    pub async fn receipt(&self, hash: B256) -> eyre::Result<Option<Value>> {
        let receipt: Value = self
            .call("eth_getTransactionReceipt", rpc_params![hash])
            .await?;
        Ok((!receipt.is_null()).then_some(receipt))
    }

    /// Signs a zero-fee transfer of `value` to `to` from `signer` (nonce after its pooled
    /// transactions, gas estimated) on chain `chain_id`, which the node must be on, sends it,
    /// and returns its hash.
    pub async fn transfer(
        &self,
        signer: &PrivateKeySigner,
        to: Address,
        value: U256,
        chain_id: u64,
    ) -> eyre::Result<B256> {
        self.send(signer, to, value, Bytes::new(), chain_id).await
    }

    /// As [`Node::transfer`], with call data: a contract or module call. A call that would
    /// revert is refused here with its reason (from the gas estimate), before anything is signed.
    pub async fn send(
        &self,
        signer: &PrivateKeySigner,
        to: Address,
        value: U256,
        input: Bytes,
        chain_id: u64,
    ) -> eyre::Result<B256> {
        let from = signer.address();
        let on = self.chain_id().await?;
        if on != chain_id {
            return Err(eyre!(
                "the node at {} is on chain {on}, not {chain_id}; nothing was signed (pass \
                 --chain-id {on} to send on that chain)",
                self.url
            ));
        }
        let nonce: U64 = self
            .call("eth_getTransactionCount", rpc_params![from, "pending"])
            .await?;
        let gas: U64 = self
            .call(
                "eth_estimateGas",
                rpc_params![json!({ "from": from, "to": to, "value": value, "input": input })],
            )
            .await?;
        let tx = TxEip1559 {
            chain_id,
            nonce: nonce.to(),
            gas_limit: gas.to(),
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
            to: TxKind::Call(to),
            value,
            input,
            ..Default::default()
        };
        let raw: Bytes = aicoin_primitives::sign_transaction(signer, tx)
            .wrap_err("signing the transaction failed")?
            .encoded_2718()
            .into();
        self.call("eth_sendRawTransaction", rpc_params![raw]).await
    }

    /// Polls for `hash`'s receipt until `timeout`.
    pub async fn wait_for_receipt(&self, hash: B256, timeout: Duration) -> eyre::Result<Value> {
        let started = Instant::now();
        loop {
            if let Some(receipt) = self.receipt(hash).await? {
                return Ok(receipt);
            }
            if started.elapsed() > timeout {
                return Err(eyre!(
                    "transaction {hash} was sent but not mined within {}s; check it later with its hash",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A quantity field of an RPC object.
pub fn quantity(value: &Value, field: &str) -> eyre::Result<u64> {
    let text = value[field]
        .as_str()
        .ok_or_else(|| eyre!("node returned no {field}"))?;
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .wrap_err_with(|| format!("bad {field} {text:?}"))
}
