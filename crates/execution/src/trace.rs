//! geth's `debug_trace*` tracers (the struct logger, `callTracer`, `prestateTracer`,
//! `4byteTracer`, `flatCallTracer`, `muxTracer`, `noopTracer`) over revm-inspectors'
//! [`DebugInspector`], for calls and for transactions replayed inside their block.

use alloy_consensus::{TxEnvelope, transaction::Recovered};
use alloy_primitives::B256;
use alloy_rpc_types_eth::TransactionRequest;
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use revm_inspectors::tracing::{DebugInspector, TraceLimits, TracingInspector, TransactionContext};

use crate::{
    builder::zero_fee_tx_env,
    call::{CallEnv, CallError},
};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    Tracer(String),
    #[error(
        "the trace has more than {0} steps; pass a `limit` of at most {0}, or use a tracer such \
         as callTracer"
    )]
    TooManySteps(u64),
    #[error(
        "the trace records more than {0} bytes (memory and call data); trace without \
         enableMemory, or use a tracer such as callTracer"
    )]
    TooLarge(usize),
    #[error(transparent)]
    Call(Box<CallError>),
}

/// What one trace may record, so a request cannot make the node hold gigabytes: each struct-log
/// step keeps a copy of the stack (and of memory with `enableMemory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceBudget {
    /// Most struct-log steps (the default tracer).
    pub max_steps: u64,
    /// Most bytes of memory snapshots, call inputs and outputs recorded.
    pub max_bytes: usize,
}

impl Default for TraceBudget {
    fn default() -> Self {
        Self {
            max_steps: 200_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl From<CallError> for TraceError {
    fn from(e: CallError) -> Self {
        Self::Call(Box::new(e))
    }
}

/// A tracer for `opts` within `budget`: the struct logger captures one step more than the
/// budget (so going over shows) unless the caller asked for fewer.
fn inspector(
    opts: &GethDebugTracingOptions,
    budget: TraceBudget,
) -> Result<DebugInspector, TraceError> {
    let mut opts = opts.clone();
    let asked = opts.config.limit.filter(|&limit| limit != 0);
    opts.config.limit = Some(asked.map_or(budget.max_steps + 1, |l| l.min(budget.max_steps + 1)));
    let limits = TraceLimits::default().set_max_recorded_bytes(Some(budget.max_bytes));
    let limit = |inspector: TracingInspector| inspector.with_limits(limits);
    Ok(
        match DebugInspector::new(opts).map_err(|e| TraceError::Tracer(e.to_string()))? {
            DebugInspector::Default(i, c) => DebugInspector::Default(limit(i), c),
            DebugInspector::CallTracer(i, c) => DebugInspector::CallTracer(limit(i), c),
            DebugInspector::PreStateTracer(i, c) => DebugInspector::PreStateTracer(limit(i), c),
            DebugInspector::FlatCallTracer(i) => DebugInspector::FlatCallTracer(limit(i)),
            DebugInspector::Erc7562Tracer(i, c) => DebugInspector::Erc7562Tracer(limit(i), c),
            other => other,
        },
    )
}

/// The trace, unless it went over `budget`.
fn within(
    inspector: &DebugInspector,
    trace: GethTrace,
    budget: TraceBudget,
) -> Result<GethTrace, TraceError> {
    let recorder = match inspector {
        DebugInspector::Default(i, _)
        | DebugInspector::CallTracer(i, _)
        | DebugInspector::PreStateTracer(i, _)
        | DebugInspector::FlatCallTracer(i)
        | DebugInspector::Erc7562Tracer(i, _) => Some(i),
        _ => None,
    };
    if recorder.is_some_and(TracingInspector::limit_exceeded) {
        return Err(TraceError::TooLarge(budget.max_bytes));
    }
    if let GethTrace::Default(frame) = &trace
        && frame.struct_logs.len() as u64 > budget.max_steps
    {
        return Err(TraceError::TooManySteps(budget.max_steps));
    }
    Ok(trace)
}

/// Traces `request` as `debug_traceCall` does.
pub fn trace_call(
    env: &mut CallEnv,
    request: TransactionRequest,
    opts: &GethDebugTracingOptions,
    budget: TraceBudget,
) -> Result<GethTrace, TraceError> {
    let tx = env.tx_env(request)?;
    env.inspect(
        tx,
        inspector(opts, budget)?,
        |inspector, tx, evm_env, result, db| {
            let trace = inspector
                .get_result(None, tx, &evm_env.block_env, result, db)
                .map_err(|e| TraceError::Tracer(e.to_string()))?;
            within(inspector, trace, budget)
        },
    )?
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
    budget: TraceBudget,
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
                inspector(opts, budget)?,
                |inspector, tx, evm_env, result, db| {
                    let trace = inspector
                        .get_result(Some(context), tx, &evm_env.block_env, result, db)
                        .map_err(|e| TraceError::Tracer(e.to_string()))?;
                    within(inspector, trace, budget)
                },
            )??;
            traces.push((hash, trace));
        }
        if Some(index) == last {
            break;
        }
        env.commit(tx_env)?;
    }
    Ok(traces)
}
