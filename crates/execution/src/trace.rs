//! geth's `debug_trace*` tracers (the struct logger, `callTracer`, `prestateTracer`,
//! `4byteTracer`, `flatCallTracer`, `muxTracer`, `noopTracer`) over revm-inspectors'
//! [`DebugInspector`], for calls and for transactions replayed inside their block.

use alloy_consensus::{TxEnvelope, transaction::Recovered};
use alloy_primitives::B256;
use alloy_rpc_types_eth::TransactionRequest;
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use revm_inspectors::tracing::{DebugInspector, TransactionContext};

use crate::{
    builder::zero_fee_tx_env,
    call::{CallEnv, CallError},
};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    Tracer(String),
    #[error(transparent)]
    Call(Box<CallError>),
}

impl From<CallError> for TraceError {
    fn from(e: CallError) -> Self {
        Self::Call(Box::new(e))
    }
}

fn inspector(opts: &GethDebugTracingOptions) -> Result<DebugInspector, TraceError> {
    DebugInspector::new(opts.clone()).map_err(|e| TraceError::Tracer(e.to_string()))
}

/// Traces `request` as `debug_traceCall` does.
pub fn trace_call(
    env: &mut CallEnv,
    request: TransactionRequest,
    opts: &GethDebugTracingOptions,
) -> Result<GethTrace, TraceError> {
    let tx = env.tx_env(request)?;
    let trace = env.inspect(
        tx,
        inspector(opts)?,
        |inspector, tx, evm_env, result, db| {
            inspector.get_result(None, tx, &evm_env.block_env, result, db)
        },
    )?;
    trace.map_err(|e| TraceError::Tracer(e.to_string()))
}

/// Where a traced transaction was mined.
#[derive(Debug, Clone, Copy)]
pub struct MinedAt {
    pub block_hash: B256,
    pub block_number: u64,
}

/// Replays `block` (its transactions, on its parent's state in `env`) and traces those at the
/// indices `traced` selects (every one for `debug_traceBlock*`, one for
/// `debug_traceTransaction`, which then stops there).
pub fn trace_block(
    env: &mut CallEnv,
    block: Vec<Recovered<TxEnvelope>>,
    at: MinedAt,
    traced: impl Fn(usize) -> bool,
    opts: &GethDebugTracingOptions,
) -> Result<Vec<(B256, GethTrace)>, TraceError> {
    let last = (0..block.len()).rev().find(|i| traced(*i));
    let mut traces = Vec::new();
    for (index, tx) in block.into_iter().enumerate() {
        let tx_env = zero_fee_tx_env(&tx);
        let hash = *tx.tx_hash();
        if traced(index) {
            let context = TransactionContext {
                block_hash: Some(at.block_hash),
                tx_index: Some(index),
                tx_hash: Some(hash),
            };
            let trace = env.inspect(
                tx_env.clone(),
                inspector(opts)?,
                |inspector, tx, evm_env, result, db| {
                    inspector.get_result(Some(context), tx, &evm_env.block_env, result, db)
                },
            )?;
            traces.push((hash, trace.map_err(|e| TraceError::Tracer(e.to_string()))?));
        }
        if Some(index) == last {
            break;
        }
        env.commit(tx_env)?;
    }
    Ok(traces)
}
