//! Account state at any block: balance, nonce (with pooled transactions for `pending`), code,
//! storage, and EIP-1186 proofs against the state root.

use alloy_consensus::constants::{EMPTY_ROOT_HASH, KECCAK_EMPTY};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, EIP1186StorageProof};
use alloy_serde::JsonStorageKey;
use jsonrpsee::proc_macros::rpc;

use super::EthRpc;
use crate::{
    block_id::state_block,
    error::{RpcError, RpcResult},
};

/// Most storage slots one `eth_getProof` may ask for.
const MAX_PROOF_SLOTS: usize = 1024;

#[rpc(server, namespace = "eth")]
pub trait EthStateApi {
    #[method(name = "getBalance")]
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256>;

    #[method(name = "getTransactionCount")]
    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64>;

    #[method(name = "getCode")]
    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "getStorageAt")]
    fn storage_at(
        &self,
        address: Address,
        slot: JsonStorageKey,
        block: Option<BlockId>,
    ) -> RpcResult<B256>;

    #[method(name = "getProof", blocking)]
    fn proof(
        &self,
        address: Address,
        slots: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse>;
}

impl EthStateApiServer for EthRpc {
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256> {
        Ok(self.state.account(&address, block)?.balance)
    }

    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64> {
        let state_nonce = self.state.account(&address, block)?.nonce;
        let pending = matches!(block, Some(BlockId::Number(BlockNumberOrTag::Pending)));
        let pool_nonce = pending
            .then(|| self.state.pool.pending_nonce(&address))
            .flatten();
        Ok(U64::from(
            pool_nonce.map_or(state_nonce, |n| n.max(state_nonce)),
        ))
    }

    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes> {
        let reader = self.state.reader()?;
        let number = state_block(&reader, block)?;
        let state = reader.state_at(number)?;
        let Some(account) = state.account(&address)? else {
            return Ok(Bytes::new());
        };
        Ok(state.code(&account.code_hash)?.unwrap_or_default())
    }

    fn storage_at(
        &self,
        address: Address,
        slot: JsonStorageKey,
        block: Option<BlockId>,
    ) -> RpcResult<B256> {
        let reader = self.state.reader()?;
        let number = state_block(&reader, block)?;
        let slot = U256::from_be_bytes(slot.as_b256().0);
        let value = reader.state_at(number)?.storage(&address, &slot)?;
        Ok(B256::from(value.to_be_bytes()))
    }

    fn proof(
        &self,
        address: Address,
        slots: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse> {
        if slots.len() > MAX_PROOF_SLOTS {
            return Err(RpcError::LimitExceeded(format!(
                "eth_getProof takes at most {MAX_PROOF_SLOTS} storage keys"
            )));
        }
        let reader = self.state.reader()?;
        let number = state_block(&reader, block)?;
        let head = reader.head_number()?;
        if number != head {
            return Err(RpcError::InvalidParams(format!(
                "proofs are served for the latest block ({head}) only, not block {number}"
            )));
        }
        let keys: Vec<B256> = slots.iter().map(JsonStorageKey::as_b256).collect();
        let proof = reader.proof(address, &keys)?;
        let account = proof.account.unwrap_or_default();
        let account_exists = proof.account.is_some();
        Ok(EIP1186AccountProofResponse {
            address,
            balance: account.balance,
            code_hash: if account_exists {
                account.code_hash
            } else {
                KECCAK_EMPTY
            },
            nonce: account.nonce,
            storage_hash: if account_exists {
                account.storage_root
            } else {
                EMPTY_ROOT_HASH
            },
            account_proof: proof.account_proof,
            storage_proof: proof
                .storage
                .into_iter()
                .zip(slots)
                .map(|(p, key)| EIP1186StorageProof {
                    key,
                    value: p.value,
                    proof: p.proof,
                })
                .collect(),
        })
    }
}
