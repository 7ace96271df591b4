//! Sending transactions, and signing for the accounts this node holds keys of (the `--dev`
//! accounts only, as anvil does; any other account is the "unknown account" error).
//!
//! `eth_sendTransaction` fills what the request leaves out (nonce after the sender's pooled
//! transactions, gas by estimation, zero fees, this chain's id) and signs with the dev key.

use aicoin_execution::{decode_and_validate, estimate_gas};
use alloy_consensus::SignableTransaction;
use alloy_dyn_abi::TypedData;
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Encodable2718};
use alloy_primitives::{Address, B256, Bytes, TxKind};
use alloy_rpc_types_eth::{TransactionRequest, state::EvmOverrides};
use alloy_signer::SignerSync;
use jsonrpsee::proc_macros::rpc;

use super::{EthRpc, state::EthStateApiServer};
use crate::error::{RpcError, RpcResult};

#[rpc(server, namespace = "eth")]
pub trait EthSendApi {
    #[method(name = "sendRawTransaction")]
    async fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    #[method(name = "sendTransaction")]
    async fn send_transaction(&self, request: TransactionRequest) -> RpcResult<B256>;

    #[method(name = "signTransaction", blocking)]
    fn sign_transaction(&self, request: TransactionRequest) -> RpcResult<Bytes>;

    #[method(name = "sign")]
    fn sign(&self, address: Address, message: Bytes) -> RpcResult<Bytes>;

    #[method(name = "signTypedData_v4")]
    fn sign_typed_data_v4(&self, address: Address, data: TypedData) -> RpcResult<Bytes>;

    #[method(name = "accounts")]
    fn accounts(&self) -> RpcResult<Vec<Address>>;
}

#[rpc(server, namespace = "personal")]
pub trait PersonalApi {
    #[method(name = "sign")]
    fn sign(&self, message: Bytes, address: Address, password: Option<String>) -> RpcResult<Bytes>;
}

impl EthRpc {
    /// Completes `request` for its sender and signs it with the sender's dev key.
    fn sign_request(&self, mut request: TransactionRequest) -> RpcResult<Bytes> {
        let from = request
            .from
            .ok_or_else(|| RpcError::InvalidParams("the transaction has no `from`".into()))?;
        let signer = self.state.signer(&from)?.clone();
        let chain_id = self.state.chain_id();
        if request.chain_id.is_some_and(|id| id != chain_id) {
            return Err(RpcError::InvalidParams(format!(
                "chainId {} is not this chain's ({chain_id})",
                request.chain_id.unwrap_or_default()
            )));
        }
        request.chain_id = Some(chain_id);
        // No recipient is a contract creation.
        request.to.get_or_insert(TxKind::Create);
        if request.nonce.is_none() {
            let pending = Some(BlockId::Number(BlockNumberOrTag::Pending));
            request.nonce = Some(self.transaction_count(from, pending)?.to());
        }
        if request.gas.is_none() {
            let mut env = self.state.call_env(None, EvmOverrides::default())?;
            request.gas = Some(estimate_gas(&mut env, request.clone())?);
        }
        // Nothing is ever charged; a request that names no fee becomes an EIP-1559 transaction
        // with zero fees.
        if request.gas_price.is_none() {
            request.max_fee_per_gas.get_or_insert(0);
            request.max_priority_fee_per_gas.get_or_insert(0);
        }
        let tx = request.build_typed_tx().map_err(|r| {
            RpcError::InvalidParams(format!(
                "cannot build a transaction from the request: missing {:?}",
                r.missing_keys()
                    .err()
                    .map(|(_, keys)| keys)
                    .unwrap_or_default()
            ))
        })?;
        let signature = signer
            .sign_hash_sync(&tx.signature_hash())
            .map_err(|e| RpcError::Internal(format!("signing failed: {e}")))?;
        Ok(tx.into_envelope(signature).encoded_2718().into())
    }

    fn sign_message(&self, address: &Address, message: &[u8]) -> RpcResult<Bytes> {
        let signature = self
            .state
            .signer(address)?
            .sign_message_sync(message)
            .map_err(|e| RpcError::Internal(format!("signing failed: {e}")))?;
        Ok(signature.as_bytes().into())
    }
}

#[jsonrpsee::core::async_trait]
impl EthSendApiServer for EthRpc {
    /// Checked and pooled, then held where a crash of this node cannot lose it, before the hash
    /// is returned (see [`crate::RpcState::submit_and_replicate`]).
    async fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        self.state.submit_and_replicate(raw).await
    }

    async fn send_transaction(&self, request: TransactionRequest) -> RpcResult<B256> {
        // Filling the request may estimate gas: an EVM run, so off the async workers.
        let this = self.clone();
        let raw = tokio::task::spawn_blocking(move || this.sign_request(request))
            .await
            .map_err(|e| RpcError::Internal(format!("signing failed: {e}")))??;
        self.state.submit_and_replicate(raw).await
    }

    fn sign_transaction(&self, request: TransactionRequest) -> RpcResult<Bytes> {
        let raw = self.sign_request(request)?;
        // The same checks as a submission, so the result is a transaction this chain accepts.
        decode_and_validate(&raw, self.state.chain_id(), self.state.block_gas_limit)?;
        Ok(raw)
    }

    fn sign(&self, address: Address, message: Bytes) -> RpcResult<Bytes> {
        self.sign_message(&address, &message)
    }

    fn sign_typed_data_v4(&self, address: Address, data: TypedData) -> RpcResult<Bytes> {
        let signature = self
            .state
            .signer(&address)?
            .sign_dynamic_typed_data_sync(&data)
            .map_err(|e| RpcError::InvalidParams(format!("cannot sign the typed data: {e}")))?;
        Ok(signature.as_bytes().into())
    }

    fn accounts(&self) -> RpcResult<Vec<Address>> {
        Ok(self.state.signers.iter().map(|s| s.address()).collect())
    }
}

impl PersonalApiServer for EthRpc {
    fn sign(
        &self,
        message: Bytes,
        address: Address,
        _password: Option<String>,
    ) -> RpcResult<Bytes> {
        self.sign_message(&address, &message)
    }
}
