//! geth's `debug_trace*` tracers (the struct logger, `callTracer`, `prestateTracer`,
//! `4byteTracer`, `flatCallTracer`, `muxTracer`, `noopTracer`) over revm-inspectors'
//! [`DebugInspector`], for calls and for transactions replayed inside their block.

use alloy_consensus::{TxEnvelope, transaction::Recovered};
use alloy_primitives::B256;
use alloy_rpc_types_eth::TransactionRequest;
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use revm::{
    Inspector,
    context::TxEnv,
    context_interface::{ContextError, ContextTr},
    interpreter::Interpreter,
    primitives::U256,
};
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

/// What one request may record, so it cannot make the node hold gigabytes: each struct-log step
/// keeps a copy of the stack (and of memory with `enableMemory`). A block's traces share one
/// budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceBudget {
    /// Most struct-log steps (the default tracer).
    pub max_steps: u64,
    /// Most bytes of stack and memory snapshots, call inputs and outputs recorded.
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

/// Counts the stack copies the struct logger records, one per step, which revm-inspectors'
/// byte limit leaves out: a loop at a 1,023-deep stack copies 32 KiB a step, 6.5 GB in 200k
/// steps. Once the copies go over what is left of the budget (the recorder's bytes and these
/// each stop there, and together must fit in it) it stops the traced call the way
/// revm-inspectors' own limit does, with an error in the EVM context. Runs before the tracer in
/// each step, so the step that would go over is never recorded.
#[derive(Debug)]
struct StackMeter {
    /// Whether the tracer copies the whole stack at each step.
    active: bool,
    /// Steps the tracer records (its `limit`); later steps copy nothing.
    steps_left: u64,
    copied: usize,
    max: usize,
}

const STACK_OVER_BUDGET: &str = "the trace's stack copies exceed the budget";

impl<CTX: ContextTr> Inspector<CTX> for StackMeter {
    fn step(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        if !self.active || self.steps_left == 0 {
            return;
        }
        self.steps_left -= 1;
        self.copied += interp.stack.len() * size_of::<U256>();
        if self.copied > self.max && context.error().is_ok() {
            *context.error() = Err(ContextError::Custom(STACK_OVER_BUDGET.into()));
            interp.halt_fatal();
        }
    }
}

/// What one transaction's trace used of the budget.
#[derive(Debug, Clone, Copy)]
struct Used {
    steps: u64,
    bytes: usize,
}

/// The tracer for `opts` within `left`, and its stack meter: the struct logger records one step
/// more than is left (so going over shows) unless the caller asked for fewer.
fn inspector(
    opts: &GethDebugTracingOptions,
    left: TraceBudget,
) -> Result<(StackMeter, DebugInspector), TraceError> {
    let mut opts = opts.clone();
    let asked = opts.config.limit.filter(|&limit| limit != 0);
    let steps = asked.map_or(left.max_steps + 1, |l| l.min(left.max_steps + 1));
    opts.config.limit = Some(steps);
    let limits = TraceLimits::default().set_max_recorded_bytes(Some(left.max_bytes));
    let limit = |inspector: TracingInspector| inspector.with_limits(limits);
    let inspector =
        match DebugInspector::new(opts).map_err(|e| TraceError::Tracer(e.to_string()))? {
            DebugInspector::Default(i, c) => DebugInspector::Default(limit(i), c),
            DebugInspector::CallTracer(i, c) => DebugInspector::CallTracer(limit(i), c),
            DebugInspector::PreStateTracer(i, c) => DebugInspector::PreStateTracer(limit(i), c),
            DebugInspector::FlatCallTracer(i) => DebugInspector::FlatCallTracer(limit(i)),
            DebugInspector::Erc7562Tracer(i, c) => DebugInspector::Erc7562Tracer(limit(i), c),
            other => other,
        };
    let active = match &inspector {
        DebugInspector::Default(i, _) => {
            let stacks = i.config().record_stack_snapshots;
            i.config().record_steps && (stacks.is_full() || stacks.is_all())
        }
        _ => false,
    };
    let meter = StackMeter {
        active,
        steps_left: steps,
        copied: 0,
        max: left.max_bytes,
    };
    Ok((meter, inspector))
}

/// The tracer's recorder, for the tracers that have one.
fn recorder(inspector: &DebugInspector) -> Option<&TracingInspector> {
    match inspector {
        DebugInspector::Default(i, _)
        | DebugInspector::CallTracer(i, _)
        | DebugInspector::PreStateTracer(i, _)
        | DebugInspector::FlatCallTracer(i)
        | DebugInspector::Erc7562Tracer(i, _) => Some(i),
        _ => None,
    }
}

/// Traces `tx` within `left`, without keeping its changes.
fn trace_one(
    env: &mut CallEnv,
    tx: TxEnv,
    context: Option<TransactionContext>,
    opts: &GethDebugTracingOptions,
    left: TraceBudget,
) -> Result<(GethTrace, Used), TraceError> {
    let traced = env.inspect(
        tx,
        inspector(opts, left)?,
        |(meter, inspector), tx, evm_env, result, db| {
            let recorded = recorder(inspector);
            if recorded.is_some_and(TracingInspector::limit_exceeded) {
                return Err(TraceError::TooLarge(left.max_bytes));
            }
            let bytes = meter.copied + recorded.map_or(0, TracingInspector::recorded_bytes);
            let trace = inspector
                .get_result(context, tx, &evm_env.block_env, result, db)
                .map_err(|e| TraceError::Tracer(e.to_string()))?;
            let steps = match &trace {
                GethTrace::Default(frame) => frame.struct_logs.len() as u64,
                _ => 0,
            };
            Ok((trace, Used { steps, bytes }))
        },
    );
    match traced {
        Ok(Ok((_, used))) if used.steps > left.max_steps => {
            Err(TraceError::TooManySteps(left.max_steps))
        }
        Ok(Ok((_, used))) if used.bytes > left.max_bytes => {
            Err(TraceError::TooLarge(left.max_bytes))
        }
        Ok(traced) => traced,
        Err(CallError::Evm(message)) if message.contains(STACK_OVER_BUDGET) => {
            Err(TraceError::TooLarge(left.max_bytes))
        }
        Err(e) => Err(e.into()),
    }
}

/// Traces `request` as `debug_traceCall` does.
pub fn trace_call(
    env: &mut CallEnv,
    request: TransactionRequest,
    opts: &GethDebugTracingOptions,
    budget: TraceBudget,
) -> Result<GethTrace, TraceError> {
    let tx = env.tx_env(request)?;
    Ok(trace_one(env, tx, None, opts, budget)?.0)
}

/// Where a traced transaction was mined.
#[derive(Debug, Clone, Copy)]
pub struct MinedAt {
    pub block_hash: B256,
    pub block_number: u64,
}

/// Replays `block` (its transactions, on its parent's state in `env`) and traces those at the
/// indices `traced` selects (every one for `debug_traceBlock*`, one for
/// `debug_traceTransaction`, which then stops there), all within one `budget`.
pub fn trace_block(
    env: &mut CallEnv,
    block: Vec<Recovered<TxEnvelope>>,
    at: MinedAt,
    traced: impl Fn(usize) -> bool,
    opts: &GethDebugTracingOptions,
    budget: TraceBudget,
) -> Result<Vec<(B256, GethTrace)>, TraceError> {
    let last = (0..block.len()).rev().find(|i| traced(*i));
    let mut left = budget;
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
            let (trace, used) =
                trace_one(env, tx_env.clone(), Some(context), opts, left).map_err(|e| match e {
                    // The whole request's budget, not what this transaction had left of it.
                    TraceError::TooManySteps(_) => TraceError::TooManySteps(budget.max_steps),
                    TraceError::TooLarge(_) => TraceError::TooLarge(budget.max_bytes),
                    other => other,
                })?;
            left.max_steps -= used.steps;
            left.max_bytes -= used.bytes;
            traces.push((hash, trace));
        }
        if Some(index) == last {
            break;
        }
        env.commit(tx_env)?;
    }
    Ok(traces)
}
