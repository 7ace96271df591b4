//! What every RPC namespace reads and writes: the store, the pool, the chain's announcements,
//! this node's facts and limits, and the one path by which transactions enter the pool.

use std::{sync::Arc, time::Duration};

use aicoin_execution::{CallEnv, StateDb, TraceBudget, block_env, decode_and_validate};
use aicoin_primitives::{ChainSpec, NewBlock};
use aicoin_storage::{Reader, Store};
use aicoin_txpool::{PoolError, SenderState, TxPool};
use alloy_consensus::{Header, TxEnvelope, transaction::Recovered};
use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, Bytes};
use alloy_rpc_types_eth::state::EvmOverrides;
use alloy_signer_local::PrivateKeySigner;
use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::{
    block_id::state_block,
    error::{RpcError, RpcResult},
};

/// Limits on what one request may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcLimits {
    /// Most blocks one `eth_getLogs`/`eth_getFilterLogs` may scan.
    pub max_logs_range: u64,
    /// Most logs one such call may return.
    pub max_logs: usize,
    /// Installed filters that nobody polls for this long are removed.
    pub filter_timeout: Duration,
    /// Most filters installed at once.
    pub max_filters: usize,
    /// Most filters one client address may have installed.
    pub max_filters_per_client: usize,
    /// What one `debug_trace*` may record.
    pub trace: TraceBudget,
    /// `debug_trace*` requests run at once; more wait their turn.
    pub max_concurrent_traces: usize,
}

impl Default for RpcLimits {
    fn default() -> Self {
        Self {
            max_logs_range: 10_000,
            max_logs: 20_000,
            filter_timeout: Duration::from_secs(300),
            max_filters: 10_000,
            max_filters_per_client: 500,
            trace: TraceBudget::default(),
            // Each trace occupies a core and may hold a few hundred MB: half the cores.
            max_concurrent_traces: std::thread::available_parallelism()
                .map_or(1, |n| (n.get() / 2).max(1)),
        }
    }
}

/// The node as the RPC sees it.
#[derive(Debug)]
pub struct RpcState {
    pub store: Store,
    pub pool: Arc<TxPool>,
    pub spec: Arc<ChainSpec>,
    /// New heads, as the chain announces them.
    pub new_blocks: broadcast::Sender<Arc<NewBlock>>,
    /// The address this node's blocks pay their reward to.
    pub coinbase: Address,
    /// The gas limit of the blocks this node builds; larger transactions are refused.
    pub block_gas_limit: u64,
    /// Whether this node produces blocks.
    pub mining: bool,
    /// Accounts this node signs for (`eth_sendTransaction`, `eth_sign`): the dev accounts under
    /// `--dev`, none otherwise.
    pub signers: Vec<PrivateKeySigner>,
    pub limits: RpcLimits,
    /// Where a transaction goes before it is acknowledged, when this node's pool alone could
    /// lose it (a cluster member: another validator; a full node: the producer). `None` for a
    /// validator alone, whose pool is the only one.
    pub replicate: Option<Arc<dyn Replicate>>,
}

/// Makes a transaction this node admitted durable beyond it before `eth_sendRawTransaction`
/// answers with its hash.
pub trait Replicate: Send + Sync + 'static {
    /// Resolves once `raw` is held elsewhere; the error says why it is not.
    fn replicate(&self, raw: Bytes) -> BoxFuture<'static, Result<(), ReplicateError>>;
}

/// Why a transaction is not held beyond this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicateError {
    /// Whoever decides what is mined (the leader, the producer) refused it for good (a nonce it
    /// already has, say): a resend would be refused again.
    #[error("{0}")]
    Refused(String),
    /// Not confirmed held elsewhere (a peer unreachable or slow): a resend may succeed.
    #[error("{0}")]
    NotHeld(String),
}

impl std::fmt::Debug for dyn Replicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replicate")
    }
}

impl RpcState {
    /// A state over `store` with no node behind it: a pool of its own, no block announcements,
    /// the default limits and a 30M block gas limit; what the method table in the docs and the
    /// RPC fuzz target serve from.
    pub fn detached(store: Store, spec: Arc<ChainSpec>, signers: Vec<PrivateKeySigner>) -> Self {
        Self {
            store,
            pool: Arc::new(TxPool::new(aicoin_txpool::PoolConfig::default())),
            spec,
            new_blocks: broadcast::channel(1).0,
            coinbase: Address::ZERO,
            block_gas_limit: aicoin_primitives::DEFAULT_GAS_LIMIT,
            mining: true,
            signers,
            limits: RpcLimits::default(),
            replicate: None,
        }
    }

    pub fn chain_id(&self) -> u64 {
        self.spec.chain_id
    }

    pub fn reader(&self) -> RpcResult<Reader> {
        Ok(self.store.reader()?)
    }

    /// The account fields of `address` after the block `block` names.
    pub fn account(&self, address: &Address, block: Option<BlockId>) -> RpcResult<SenderState> {
        let reader = self.reader()?;
        let number = state_block(&reader, block)?;
        let account = reader.state_at(number)?.account(address)?;
        Ok(account.map_or_else(SenderState::default, |a| SenderState {
            nonce: a.nonce,
            balance: a.balance,
        }))
    }

    /// The state and environment of the block `block` names, with `overrides` on top, for
    /// read-only execution.
    pub fn call_env(&self, block: Option<BlockId>, overrides: EvmOverrides) -> RpcResult<CallEnv> {
        let reader = self.reader()?;
        let number = state_block(&reader, block)?;
        let header = reader.header(number)?.ok_or(RpcError::HeaderNotFound)?;
        let env = block_env(self.chain_id(), &header);
        Ok(CallEnv::new(StateDb::at(reader, number)?, env, overrides)?)
    }

    /// The state before block `number` and its environment, to replay the block.
    pub fn replay_env(&self, reader: Reader, header: &Header) -> RpcResult<CallEnv> {
        let parent = header.number.checked_sub(1).ok_or_else(|| {
            RpcError::InvalidParams("the genesis block has no transactions to replay".into())
        })?;
        let env = block_env(self.chain_id(), header);
        Ok(CallEnv::replay(StateDb::at(reader, parent)?, env))
    }

    /// Pools `raw` and returns its hash once the transaction is held where a crash of this node
    /// cannot lose it.
    pub async fn submit_and_replicate(self: &Arc<Self>, raw: Bytes) -> RpcResult<B256> {
        let state = self.clone();
        let checked = raw.clone();
        // A signature recovery and an account read: off the async workers, which also run the
        // cluster's heartbeats.
        let pooled = tokio::task::spawn_blocking(move || {
            let tx = decode_and_validate(&checked, state.chain_id(), state.block_gas_limit)?;
            let hash = *tx.tx_hash();
            match state.submit(tx) {
                Ok(_) => Ok((hash, true)),
                // Pooled here by an earlier try that was never confirmed held elsewhere: a
                // resend is how the client asks again.
                Err(RpcError::Pool(PoolError::AlreadyKnown)) if state.replicate.is_some() => {
                    Ok((hash, false))
                }
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| RpcError::Internal(format!("pooling the transaction failed: {e}")))?;
        let (hash, added_here) = pooled?;
        let Some(replicate) = &self.replicate else {
            return Ok(hash);
        };
        match replicate.replicate(raw).await {
            Ok(()) => Ok(hash),
            Err(ReplicateError::Refused(reason)) => {
                // It will not be mined: not kept here either, unless an earlier try put it here.
                if added_here {
                    self.pool.remove(&[hash]);
                }
                Err(RpcError::Refused(reason))
            }
            Err(ReplicateError::NotHeld(reason)) => Err(RpcError::NotReplicated(reason)),
        }
    }

    /// Pools an already checked transaction.
    pub fn submit(&self, tx: Recovered<TxEnvelope>) -> RpcResult<B256> {
        let sender = self.account(&tx.signer(), None)?;
        let added = self.pool.add(tx, sender)?;
        tracing::debug!(hash = %added.hash, queued = added.queued, "transaction accepted");
        Ok(added.hash)
    }

    /// The key of `address` if this node signs for it.
    pub fn signer(&self, address: &Address) -> RpcResult<&PrivateKeySigner> {
        self.signers
            .iter()
            .find(|s| s.address() == *address)
            .ok_or(RpcError::UnknownAccount(*address))
    }
}
