//! Read-only execution for `eth_call` and `eth_estimateGas`: a transaction request run against
//! one block's state, with fees zeroed as in real execution and nothing written back.

use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory, rpc::TryIntoTxEnv};
use alloy_primitives::{Bytes, Log};
use alloy_rpc_types_eth::TransactionRequest;
use revm::{
    context::TxEnv,
    context_interface::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction},
    database::CacheDB,
};

use crate::{
    db::{DbError, StateDb},
    env::TX_GAS_LIMIT_CAP,
};

/// What a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Success {
        output: Bytes,
        gas_used: u64,
        logs: Vec<Log>,
    },
    /// `REVERT`, with the revert data (an `Error(string)`, a custom error, or empty).
    Revert { output: Bytes, gas_used: u64 },
    /// An exceptional halt (out of gas, invalid opcode, …).
    Halt { reason: String, gas_used: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("invalid transaction request: {0}")]
    Request(String),
    #[error("{0}")]
    Invalid(InvalidTransaction),
    #[error("state read failed: {0}")]
    Db(#[from] DbError),
    #[error("EVM failure: {0}")]
    Evm(String),
    #[error("execution reverted")]
    Reverted(Bytes),
    #[error("gas required exceeds allowance ({0})")]
    GasRequiredExceedsAllowance(u64),
    #[error("execution failed: {0}")]
    Halted(String),
}

/// A call needs no nonce (the check is off) and pays nothing (fees are zeroed); its gas defaults
/// to what one transaction may use in the block.
fn call_env(mut env: EvmEnv) -> EvmEnv {
    env.cfg_env.disable_nonce_check = true;
    env
}

fn default_gas(env: &EvmEnv) -> u64 {
    env.block_env.gas_limit.min(TX_GAS_LIMIT_CAP)
}

fn tx_env(env: &EvmEnv, mut request: TransactionRequest) -> Result<TxEnv, CallError> {
    request.gas = Some(request.gas.unwrap_or_else(|| default_gas(env)));
    let mut tx: TxEnv = request
        .try_into_tx_env(env)
        .map_err(|e| CallError::Request(e.to_string()))?;
    tx.gas_price = 0;
    tx.gas_priority_fee = tx.gas_priority_fee.map(|_| 0);
    Ok(tx)
}

struct Caller {
    evm: <EthEvmFactory as EvmFactory>::Evm<CacheDB<StateDb>, revm::inspector::NoOpInspector>,
}

impl Caller {
    fn new(db: StateDb, env: EvmEnv) -> Self {
        Self {
            evm: EthEvmFactory::default().create_evm(CacheDB::new(db), call_env(env)),
        }
    }

    fn run(&mut self, tx: TxEnv) -> Result<CallOutcome, CallError> {
        let result = match self.evm.transact(tx) {
            Ok(r) => r.result,
            Err(EVMError::Transaction(invalid)) => return Err(CallError::Invalid(invalid)),
            Err(EVMError::Database(e)) => return Err(e.into()),
            Err(other) => return Err(CallError::Evm(other.to_string())),
        };
        let gas_used = result.tx_gas_used();
        Ok(match result {
            ExecutionResult::Success { output, logs, .. } => CallOutcome::Success {
                output: output.into_data(),
                gas_used,
                logs,
            },
            ExecutionResult::Revert { output, .. } => CallOutcome::Revert { output, gas_used },
            ExecutionResult::Halt { reason, .. } => CallOutcome::Halt {
                reason: halt_message(&reason),
                gas_used,
            },
        })
    }
}

fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(_) => "out of gas".to_string(),
        other => format!("{other:?}"),
    }
}

/// Executes `request` on `db` without keeping any change.
pub fn call(
    db: StateDb,
    env: EvmEnv,
    request: TransactionRequest,
) -> Result<CallOutcome, CallError> {
    let tx = tx_env(&env, request)?;
    Caller::new(db, env).run(tx)
}

/// The smallest gas limit with which `request` succeeds, found by bisection between the gas the
/// call used with the full allowance and that allowance.
pub fn estimate_gas(
    db: StateDb,
    env: EvmEnv,
    request: TransactionRequest,
) -> Result<u64, CallError> {
    let mut tx = tx_env(&env, request)?;
    let allowance = tx.gas_limit;
    let mut caller = Caller::new(db, env);
    let used = match caller.run(tx.clone())? {
        CallOutcome::Success { gas_used, .. } => gas_used,
        CallOutcome::Revert { output, .. } => return Err(CallError::Reverted(output)),
        CallOutcome::Halt { reason, .. } if reason == "out of gas" => {
            return Err(CallError::GasRequiredExceedsAllowance(allowance));
        }
        CallOutcome::Halt { reason, .. } => return Err(CallError::Halted(reason)),
    };
    // Gas refunds and the 63/64 rule mean the gas used can be less than the limit needed.
    let (mut lo, mut hi) = (used.saturating_sub(1), allowance);
    let optimistic = (used + used / 63 + 2_300).min(hi);
    let mut probe = optimistic;
    while lo + 1 < hi {
        tx.gas_limit = probe;
        let ok = matches!(caller.run(tx.clone()), Ok(CallOutcome::Success { .. }));
        if ok {
            hi = probe
        } else {
            lo = probe
        }
        probe = lo + (hi - lo) / 2;
    }
    Ok(hi)
}
