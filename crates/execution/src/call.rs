//! Read-only execution for RPC: `eth_call`, `eth_estimateGas` and `eth_createAccessList` run a
//! transaction request against one block's state, optionally with state and block overrides,
//! with fees zeroed as in real execution and nothing written back.

use aicoin_primitives::modules::SYSTEM_ADDRESS;
use alloy_eips::eip2930::AccessList;
use alloy_evm::{
    Evm, EvmEnv, EvmFactory,
    eth::EthEvmContext,
    overrides::{OverrideBlockHashes, StateOverrideError, apply_state_overrides},
    rpc::TryIntoTxEnv,
};
use alloy_primitives::{Bytes, Log};
use alloy_rpc_types_eth::{TransactionRequest, state::EvmOverrides};
use revm::{
    Inspector,
    context::TxEnv,
    context_interface::result::{
        EVMError, ExecutionResult, HaltReason, InvalidTransaction, ResultAndState,
    },
    database::CacheDB,
    inspector::NoOpInspector,
};
use revm_inspectors::access_list::AccessListInspector;

use crate::{
    db::{DbError, StateDb},
    env::TX_GAS_LIMIT_CAP,
    evm::{AicoinEvm, AicoinEvmFactory},
};

/// The state a call runs on: a block's state with the call's overrides on top.
pub type CallDb = CacheDB<StateDb>;

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

impl CallOutcome {
    fn from_result(result: ExecutionResult) -> Self {
        let gas_used = result.tx_gas_used();
        match result {
            ExecutionResult::Success { output, logs, .. } => Self::Success {
                output: output.into_data(),
                gas_used,
                logs,
            },
            ExecutionResult::Revert { output, .. } => Self::Revert { output, gas_used },
            ExecutionResult::Halt { reason, .. } => Self::Halt {
                reason: halt_message(&reason),
                gas_used,
            },
        }
    }

    pub fn gas_used(&self) -> u64 {
        match self {
            Self::Success { gas_used, .. }
            | Self::Revert { gas_used, .. }
            | Self::Halt { gas_used, .. } => *gas_used,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("invalid transaction request: {0}")]
    Request(String),
    #[error("invalid state override: {0}")]
    StateOverride(String),
    #[error("{SYSTEM_ADDRESS} is the chain's system address, which only block execution calls as")]
    SystemSender,
    #[error("{}", invalid_message(.0))]
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

impl From<EVMError<DbError>> for CallError {
    fn from(e: EVMError<DbError>) -> Self {
        match e {
            EVMError::Transaction(invalid) => Self::Invalid(invalid),
            EVMError::Database(e) => Self::Db(e),
            other => Self::Evm(other.to_string()),
        }
    }
}

/// revm's reason in geth's words where clients look for them.
fn invalid_message(invalid: &InvalidTransaction) -> String {
    match invalid {
        InvalidTransaction::LackOfFundForMaxFee { fee, balance } => {
            format!("insufficient funds for gas * price + value: have {balance} want {fee}")
        }
        other => other.to_string(),
    }
}

fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(_) => "out of gas".to_string(),
        other => format!("{other:?}"),
    }
}

/// One block's state and environment, prepared for read-only execution.
pub struct CallEnv {
    db: CallDb,
    env: EvmEnv,
    factory: AicoinEvmFactory,
}

impl CallEnv {
    /// The state `db` and block `env` with `overrides` applied. A call needs no nonce (the check
    /// is off) and pays nothing (fees are zeroed).
    pub fn new(db: StateDb, mut env: EvmEnv, overrides: EvmOverrides) -> Result<Self, CallError> {
        let factory = AicoinEvmFactory::new(db.history());
        let mut db = CacheDB::new(db);
        env.cfg_env.disable_nonce_check = true;
        if let Some(block) = overrides.block {
            db.apply_block_overrides(*block, &mut env.block_env);
        }
        if let Some(state) = overrides.state {
            apply_state_overrides(state, &mut db).map_err(|e| match e {
                StateOverrideError::Database(e) => CallError::Db(e),
                other => CallError::StateOverride(other.to_string()),
            })?;
        }
        Ok(Self { db, env, factory })
    }

    /// A replay of mined transactions: the real nonce checks, no overrides.
    pub fn replay(db: StateDb, env: EvmEnv) -> Self {
        Self {
            factory: AicoinEvmFactory::new(db.history()),
            db: CacheDB::new(db),
            env,
        }
    }

    pub fn env(&self) -> &EvmEnv {
        &self.env
    }

    /// The EVM transaction for `request`, its gas defaulting to (and capped at, as geth caps
    /// calls) what one transaction may use in the block, every fee zeroed.
    pub fn tx_env(&self, mut request: TransactionRequest) -> Result<TxEnv, CallError> {
        let most_gas = self.env.block_env.gas_limit.min(TX_GAS_LIMIT_CAP);
        request.gas = Some(request.gas.map_or(most_gas, |gas| gas.min(most_gas)));
        // The modules run the chain's own end-of-block steps, unmetered, for this caller.
        if request.from == Some(SYSTEM_ADDRESS) {
            return Err(CallError::SystemSender);
        }
        let mut tx: TxEnv = request
            .try_into_tx_env(&self.env)
            .map_err(|e| CallError::Request(e.to_string()))?;
        tx.gas_price = 0;
        tx.gas_priority_fee = tx.gas_priority_fee.map(|_| 0);
        Ok(tx)
    }

    /// The EVM over this state (overrides included), with `inspector` watching.
    fn evm<I>(&mut self, inspector: I) -> AicoinEvm<&mut CallDb, I>
    where
        I: for<'a> Inspector<EthEvmContext<&'a mut CallDb>>,
    {
        self.factory
            .create_evm_with_inspector(&mut self.db, self.env.clone(), inspector)
    }

    /// Runs `tx` with `inspector` watching, without keeping its changes. Returns the result
    /// with the inspector and the state as it was before `tx`, for tracers that need both.
    pub fn inspect<I, T>(
        &mut self,
        tx: TxEnv,
        inspector: I,
        finish: impl FnOnce(&mut I, &TxEnv, &EvmEnv, &ResultAndState, &mut CallDb) -> T,
    ) -> Result<T, CallError>
    where
        I: for<'a> Inspector<EthEvmContext<&'a mut CallDb>>,
    {
        let env = self.env.clone();
        let mut evm = self.evm(inspector);
        let result = evm.transact(tx.clone())?;
        let (db, inspector, _) = evm.components_mut();
        Ok(finish(inspector, &tx, &env, &result, db))
    }

    /// Runs `tx` without keeping its changes.
    pub fn run(&mut self, tx: TxEnv) -> Result<CallOutcome, CallError> {
        self.inspect(tx, NoOpInspector, |_, _, _, result, _| {
            CallOutcome::from_result(result.result.clone())
        })
    }

    /// Runs `tx` and keeps its changes, as the next transaction of a replayed block sees them.
    pub fn commit(&mut self, tx: TxEnv) -> Result<CallOutcome, CallError> {
        let result = self.evm(NoOpInspector).transact_commit(tx)?;
        Ok(CallOutcome::from_result(result))
    }
}

/// Executes `request` without keeping any change.
pub fn call(env: &mut CallEnv, request: TransactionRequest) -> Result<CallOutcome, CallError> {
    let tx = env.tx_env(request)?;
    env.run(tx)
}

/// The smallest gas limit with which `request` succeeds, found by bisection between the gas the
/// call used with the full allowance and that allowance.
pub fn estimate_gas(env: &mut CallEnv, request: TransactionRequest) -> Result<u64, CallError> {
    let mut tx = env.tx_env(request)?;
    let allowance = tx.gas_limit;
    let used = match env.run(tx.clone())? {
        CallOutcome::Success { gas_used, .. } => gas_used,
        CallOutcome::Revert { output, .. } => return Err(CallError::Reverted(output)),
        CallOutcome::Halt { reason, .. } if reason == "out of gas" => {
            return Err(CallError::GasRequiredExceedsAllowance(allowance));
        }
        CallOutcome::Halt { reason, .. } => return Err(CallError::Halted(reason)),
    };
    // Gas refunds and the 63/64 rule mean the gas used can be less than the limit needed.
    let (mut lo, mut hi) = (used.saturating_sub(1), allowance);
    let mut probe = (used + used / 63 + 2_300).min(hi);
    while lo + 1 < hi {
        tx.gas_limit = probe;
        let ok = matches!(env.run(tx.clone()), Ok(CallOutcome::Success { .. }));
        if ok {
            hi = probe
        } else {
            lo = probe
        }
        probe = lo + (hi - lo) / 2;
    }
    Ok(hi)
}

/// The access list `request` touches (every account and slot beyond the sender, the recipient
/// and the precompiles) and the gas it uses with that list, as `eth_createAccessList` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessListOutcome {
    pub access_list: AccessList,
    pub gas_used: u64,
    /// Why the call failed with that list, if it did.
    pub error: Option<String>,
}

/// Most rounds of "run with the list, collect what was touched" before giving up on a fixpoint
/// (a call whose accesses depend on gas left can change its list every round).
const ACCESS_LIST_ROUNDS: usize = 8;

pub fn create_access_list(
    env: &mut CallEnv,
    mut request: TransactionRequest,
) -> Result<AccessListOutcome, CallError> {
    let mut list = request.access_list.take().unwrap_or_default();
    for _ in 0..ACCESS_LIST_ROUNDS {
        request.access_list = Some(list.clone());
        let tx = env.tx_env(request.clone())?;
        let (touched, outcome) = env.inspect(
            tx,
            AccessListInspector::new(list.clone()),
            |inspector, _, _, result, _| {
                (
                    std::mem::take(inspector).into_access_list(),
                    CallOutcome::from_result(result.result.clone()),
                )
            },
        )?;
        if touched == list {
            let error = match &outcome {
                CallOutcome::Success { .. } => None,
                CallOutcome::Revert { .. } => Some("execution reverted".to_string()),
                CallOutcome::Halt { reason, .. } => Some(reason.clone()),
            };
            return Ok(AccessListOutcome {
                access_list: list,
                gas_used: outcome.gas_used(),
                error,
            });
        }
        list = touched;
    }
    Err(CallError::Evm(format!(
        "the access list did not settle after {ACCESS_LIST_ROUNDS} rounds"
    )))
}
