//! The `eth_` namespace: chain and state queries, calls, and transaction submission.

use std::sync::Arc;

use aicoin_execution::{CallOutcome, StateDb, block_env, call, decode_and_validate, estimate_gas};
use aicoin_primitives::ChainSpec;
use aicoin_storage::{Reader, Store};
use aicoin_txpool::{SenderState, TxPool};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::{Block, FeeHistory, Transaction, TransactionReceipt, TransactionRequest};
use jsonrpsee::proc_macros::rpc;

use crate::{
    block_id::{number_for_tag, state_block},
    convert::{pending_transaction, rpc_block, rpc_receipt, rpc_transaction_at},
    error::{RpcError, RpcResult},
};

/// Most blocks one `eth_feeHistory` call covers (as geth).
const MAX_FEE_HISTORY_BLOCKS: u64 = 1024;

/// What the RPC reads and writes: the store, the pool, and facts about this node.
#[derive(Debug)]
pub struct RpcState {
    pub store: Store,
    pub pool: Arc<TxPool>,
    pub spec: Arc<ChainSpec>,
    /// The address this node's blocks pay their reward to.
    pub coinbase: Address,
    /// The gas limit of the blocks this node builds; larger transactions are refused.
    pub block_gas_limit: u64,
    /// Whether this node produces blocks.
    pub mining: bool,
}

#[rpc(server, namespace = "eth")]
pub trait EthApi {
    #[method(name = "chainId")]
    fn chain_id(&self) -> RpcResult<U64>;

    #[method(name = "blockNumber", blocking)]
    fn block_number(&self) -> RpcResult<U64>;

    #[method(name = "getBalance", blocking)]
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256>;

    #[method(name = "getTransactionCount", blocking)]
    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64>;

    #[method(name = "getCode", blocking)]
    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "getStorageAt", blocking)]
    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256>;

    #[method(name = "getBlockByNumber", blocking)]
    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "getBlockByHash", blocking)]
    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "getTransactionByHash", blocking)]
    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>>;

    #[method(name = "getTransactionReceipt", blocking)]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>>;

    #[method(name = "sendRawTransaction", blocking)]
    fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    #[method(name = "call", blocking)]
    fn call(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "estimateGas", blocking)]
    fn estimate_gas(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<U64>;

    #[method(name = "gasPrice")]
    fn gas_price(&self) -> RpcResult<U256>;

    #[method(name = "maxPriorityFeePerGas")]
    fn max_priority_fee_per_gas(&self) -> RpcResult<U256>;

    #[method(name = "feeHistory", blocking)]
    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory>;

    #[method(name = "syncing")]
    fn syncing(&self) -> RpcResult<bool>;

    #[method(name = "mining")]
    fn mining(&self) -> RpcResult<bool>;

    #[method(name = "coinbase")]
    fn coinbase(&self) -> RpcResult<Address>;

    #[method(name = "accounts")]
    fn accounts(&self) -> RpcResult<Vec<Address>>;
}

/// Implements [`EthApiServer`] over the node's store and pool.
#[derive(Debug, Clone)]
pub struct EthRpc {
    state: Arc<RpcState>,
}

impl EthRpc {
    pub fn new(state: Arc<RpcState>) -> Self {
        Self { state }
    }

    fn reader(&self) -> RpcResult<Reader> {
        Ok(self.state.store.reader()?)
    }

    /// Runs `f` on the state after the block `block` names.
    fn with_state<T>(
        &self,
        block: Option<BlockId>,
        f: impl FnOnce(StateDb, &alloy_consensus::Header) -> RpcResult<T>,
    ) -> RpcResult<T> {
        let reader = self.reader()?;
        let number = state_block(&reader, block)?;
        let header = reader.header(number)?.ok_or(RpcError::HeaderNotFound)?;
        f(StateDb::at(reader, number)?, &header)
    }

    fn account_state(&self, address: &Address, block: Option<BlockId>) -> RpcResult<SenderState> {
        let reader = self.reader()?;
        let number = state_block(&reader, block)?;
        let account = reader.state_at(number)?.account(address)?;
        Ok(account.map_or_else(SenderState::default, |a| SenderState {
            nonce: a.nonce,
            balance: a.balance,
        }))
    }
}

impl EthApiServer for EthRpc {
    fn chain_id(&self) -> RpcResult<U64> {
        Ok(U64::from(self.state.spec.chain_id))
    }

    fn block_number(&self) -> RpcResult<U64> {
        Ok(U64::from(self.reader()?.head_number()?))
    }

    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256> {
        Ok(self.account_state(&address, block)?.balance)
    }

    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64> {
        let state_nonce = self.account_state(&address, block)?.nonce;
        let pending = matches!(block, Some(BlockId::Number(BlockNumberOrTag::Pending)));
        let pool_nonce = pending
            .then(|| self.state.pool.pending_nonce(&address))
            .flatten();
        Ok(U64::from(
            pool_nonce.map_or(state_nonce, |n| n.max(state_nonce)),
        ))
    }

    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes> {
        let reader = self.reader()?;
        let number = state_block(&reader, block)?;
        let state = reader.state_at(number)?;
        let Some(account) = state.account(&address)? else {
            return Ok(Bytes::new());
        };
        Ok(state.code(&account.code_hash)?.unwrap_or_default())
    }

    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256> {
        let reader = self.reader()?;
        let number = state_block(&reader, block)?;
        let value = reader
            .state_at(number)
            .and_then(|s| s.storage(&address, &slot));
        Ok(B256::from(value?.to_be_bytes()))
    }

    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>> {
        let reader = self.reader()?;
        let Some(number) = number_for_tag(&reader, number)? else {
            return Ok(None);
        };
        rpc_block(&reader, number, full)
    }

    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<Block>> {
        let reader = self.reader()?;
        let Some(number) = reader.block_number(&hash)? else {
            return Ok(None);
        };
        rpc_block(&reader, number, full)
    }

    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>> {
        let reader = self.reader()?;
        if let Some((number, index)) = reader.transaction_location(&hash)? {
            return rpc_transaction_at(&reader, number, index);
        }
        Ok(self
            .state
            .pool
            .get(&hash)
            .map(|pooled| pending_transaction(pooled.tx.clone())))
    }

    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        rpc_receipt(&self.reader()?, &hash)
    }

    fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        let spec = &self.state.spec;
        let tx = decode_and_validate(&raw, spec.chain_id, self.state.block_gas_limit)?;
        let sender = self.account_state(&tx.signer(), None)?;
        let added = self.state.pool.add(tx, sender)?;
        tracing::debug!(hash = %added.hash, queued = added.queued, "transaction accepted");
        Ok(added.hash)
    }

    fn call(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes> {
        let outcome = self.with_state(block, |db, header| {
            Ok(call(
                db,
                block_env(self.state.spec.chain_id, header),
                request,
            )?)
        })?;
        match outcome {
            CallOutcome::Success { output, .. } => Ok(output),
            CallOutcome::Revert { output, .. } => Err(RpcError::Reverted(output)),
            CallOutcome::Halt { reason, .. } => {
                Err(RpcError::Call(format!("execution failed: {reason}")))
            }
        }
    }

    fn estimate_gas(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<U64> {
        let gas = self.with_state(block, |db, header| {
            Ok(estimate_gas(
                db,
                block_env(self.state.spec.chain_id, header),
                request,
            )?)
        })?;
        Ok(U64::from(gas))
    }

    fn gas_price(&self) -> RpcResult<U256> {
        Ok(U256::ZERO)
    }

    fn max_priority_fee_per_gas(&self) -> RpcResult<U256> {
        Ok(U256::ZERO)
    }

    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let reader = self.reader()?;
        let newest = number_for_tag(&reader, newest_block)?.ok_or(RpcError::HeaderNotFound)?;
        let count = block_count
            .to::<u64>()
            .clamp(1, MAX_FEE_HISTORY_BLOCKS)
            .min(newest + 1);
        let oldest = newest + 1 - count;
        let mut gas_used_ratio = Vec::with_capacity(count as usize);
        for number in oldest..=newest {
            let header = reader.header(number)?.ok_or(RpcError::HeaderNotFound)?;
            gas_used_ratio.push(header.gas_used as f64 / header.gas_limit.max(1) as f64);
        }
        let n = count as usize;
        Ok(FeeHistory {
            base_fee_per_gas: vec![0; n + 1],
            gas_used_ratio,
            base_fee_per_blob_gas: vec![0; n + 1],
            blob_gas_used_ratio: vec![0.0; n],
            oldest_block: oldest,
            reward: reward_percentiles.map(|p| vec![vec![0; p.len()]; n]),
        })
    }

    fn syncing(&self) -> RpcResult<bool> {
        Ok(false)
    }

    fn mining(&self) -> RpcResult<bool> {
        Ok(self.state.mining)
    }

    fn coinbase(&self) -> RpcResult<Address> {
        Ok(self.state.coinbase)
    }

    fn accounts(&self) -> RpcResult<Vec<Address>> {
        Ok(Vec::new())
    }
}
