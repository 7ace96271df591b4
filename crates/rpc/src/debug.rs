//! The `debug_` namespace: geth's tracers for mined transactions, whole blocks and calls (a
//! few at a time, each within a recording budget), and the raw RLP of stored transactions,
//! headers, blocks and receipts.

use std::sync::Arc;

use aicoin_execution::{MinedAt, trace_block, trace_call};
use alloy_consensus::{Block as ConsensusBlock, BlockBody};
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Encodable2718};
use alloy_primitives::{B256, Bytes};
use alloy_rlp::Encodable;
use alloy_rpc_types_eth::{TransactionRequest, state::EvmOverrides};
use alloy_rpc_types_trace::geth::{
    GethDebugTracingCallOptions, GethDebugTracingOptions, GethTrace, TraceResult,
};
use jsonrpsee::proc_macros::rpc;
use tokio::sync::Semaphore;

use crate::{
    block_id::number_for_id,
    convert::StoredBlock,
    error::{RpcError, RpcResult},
    state::RpcState,
};

#[rpc(server, namespace = "debug")]
pub trait DebugApi {
    #[method(name = "traceTransaction")]
    async fn trace_transaction(
        &self,
        hash: B256,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<GethTrace>;

    #[method(name = "traceCall")]
    async fn trace_call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        opts: Option<GethDebugTracingCallOptions>,
    ) -> RpcResult<GethTrace>;

    #[method(name = "traceBlockByNumber")]
    async fn trace_block_by_number(
        &self,
        number: BlockNumberOrTag,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>>;

    #[method(name = "traceBlockByHash")]
    async fn trace_block_by_hash(
        &self,
        hash: B256,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>>;

    #[method(name = "getRawTransaction", blocking)]
    fn raw_transaction(&self, hash: B256) -> RpcResult<Option<Bytes>>;

    #[method(name = "getRawHeader", blocking)]
    fn raw_header(&self, block: BlockId) -> RpcResult<Bytes>;

    #[method(name = "getRawBlock", blocking)]
    fn raw_block(&self, block: BlockId) -> RpcResult<Bytes>;

    #[method(name = "getRawReceipts", blocking)]
    fn raw_receipts(&self, block: BlockId) -> RpcResult<Vec<Bytes>>;
}

#[derive(Debug, Clone)]
pub struct DebugRpc {
    state: Arc<RpcState>,
    /// Turns to trace: traces are the most expensive requests a node answers.
    turns: Arc<Semaphore>,
}

impl DebugRpc {
    pub fn new(state: Arc<RpcState>) -> Self {
        let turns = Arc::new(Semaphore::new(state.limits.max_concurrent_traces.max(1)));
        Self { state, turns }
    }

    /// Runs `work` on the blocking pool once it is this request's turn to trace.
    async fn in_turn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> RpcResult<T> + Send + 'static,
    ) -> RpcResult<T> {
        let _turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RpcError::Internal("the node is shutting down".into()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(|e| RpcError::Internal(format!("the trace failed: {e}")))?
    }

    fn block(&self, id: BlockId) -> RpcResult<StoredBlock> {
        let reader = self.state.reader()?;
        let number = number_for_id(&reader, id)?.ok_or(RpcError::HeaderNotFound)?;
        StoredBlock::load(&reader, number)?.ok_or(RpcError::HeaderNotFound)
    }

    /// Replays `block` and traces the transactions `traced` selects.
    fn trace(
        &self,
        block: StoredBlock,
        traced: impl Fn(usize) -> bool,
        opts: &GethDebugTracingOptions,
    ) -> RpcResult<Vec<(B256, GethTrace)>> {
        let mut env = self.state.replay_env(self.state.reader()?, &block.header)?;
        let at = MinedAt {
            block_hash: block.hash,
            block_number: block.number,
        };
        let budget = self.state.limits.trace;
        Ok(trace_block(
            &mut env,
            block.recovered(),
            at,
            traced,
            opts,
            budget,
        )?)
    }

    fn trace_whole_block(
        &self,
        id: BlockId,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>> {
        let block = self.block(id)?;
        if block.number == 0 {
            return Ok(Vec::new());
        }
        let traces = self.trace(block, |_| true, &opts.unwrap_or_default())?;
        Ok(traces
            .into_iter()
            .map(|(hash, trace)| TraceResult::Success {
                result: trace,
                tx_hash: Some(hash),
            })
            .collect())
    }
}

#[jsonrpsee::core::async_trait]
impl DebugApiServer for DebugRpc {
    async fn trace_transaction(
        &self,
        hash: B256,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<GethTrace> {
        self.in_turn(move |this| {
            let reader = this.state.reader()?;
            let (number, index) = reader.transaction_location(&hash)?.ok_or_else(|| {
                RpcError::Call(format!("transaction {hash} not found (not mined yet?)"))
            })?;
            let block = StoredBlock::load(&reader, number)?.ok_or(RpcError::HeaderNotFound)?;
            let index = index as usize;
            let traces = this.trace(block, |i| i == index, &opts.unwrap_or_default())?;
            traces
                .into_iter()
                .next()
                .map(|(_, trace)| trace)
                .ok_or_else(|| RpcError::Internal(format!("transaction {hash} was not replayed")))
        })
        .await
    }

    async fn trace_call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        opts: Option<GethDebugTracingCallOptions>,
    ) -> RpcResult<GethTrace> {
        let opts = opts.unwrap_or_default();
        if opts.tx_index.is_some() {
            return Err(RpcError::InvalidParams(
                "txIndex is not supported: the call runs on the state after the whole block".into(),
            ));
        }
        self.in_turn(move |this| {
            let overrides =
                EvmOverrides::new(opts.state_overrides, opts.block_overrides.map(Box::new));
            let mut env = this.state.call_env(block, overrides)?;
            let budget = this.state.limits.trace;
            Ok(trace_call(
                &mut env,
                request,
                &opts.tracing_options,
                budget,
            )?)
        })
        .await
    }

    async fn trace_block_by_number(
        &self,
        number: BlockNumberOrTag,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>> {
        self.in_turn(move |this| this.trace_whole_block(number.into(), opts))
            .await
    }

    async fn trace_block_by_hash(
        &self,
        hash: B256,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<Vec<TraceResult>> {
        self.in_turn(move |this| this.trace_whole_block(hash.into(), opts))
            .await
    }

    fn raw_transaction(&self, hash: B256) -> RpcResult<Option<Bytes>> {
        let reader = self.state.reader()?;
        let Some((number, index)) = reader.transaction_location(&hash)? else {
            return Ok(None);
        };
        let tx = reader.transactions(number)?.into_iter().nth(index as usize);
        Ok(tx.map(|tx| tx.encoded_2718().into()))
    }

    fn raw_header(&self, block: BlockId) -> RpcResult<Bytes> {
        Ok(alloy_rlp::encode(&self.block(block)?.header).into())
    }

    fn raw_block(&self, block: BlockId) -> RpcResult<Bytes> {
        let block = self.block(block)?;
        let block = ConsensusBlock {
            header: block.header,
            body: BlockBody {
                transactions: block.transactions,
                ommers: Vec::new(),
                withdrawals: Some(Default::default()),
            },
        };
        let mut out = Vec::new();
        block.encode(&mut out);
        Ok(out.into())
    }

    fn raw_receipts(&self, block: BlockId) -> RpcResult<Vec<Bytes>> {
        let reader = self.state.reader()?;
        let number = number_for_id(&reader, block)?.ok_or(RpcError::HeaderNotFound)?;
        Ok(reader
            .receipts(number)?
            .iter()
            .map(|r| r.to_envelope().encoded_2718().into())
            .collect())
    }
}
