//! Executing a block: its transactions one by one on the chain's EVM, with nothing ever charged
//! for gas, then the end-of-block system step (the block reward, at the parameters the block's
//! state holds), and the state changes, receipts and roots collected.
//!
//! The same builder serves the producer (which offers pool transactions and skips the ones that
//! fail) and the importer (for which any failing transaction rejects the whole block).

use aicoin_modules::{governance, registry::IComputeRegistry};
use aicoin_primitives::{
    BlockReward, Params, Tokenomics, TokenomicsError, TxReceipt,
    modules::{GOVERNANCE_ADDRESS, PARAMS_ADDRESS, REGISTRY_ADDRESS, SYSTEM_ADDRESS},
};
use aicoin_storage::{AccountChange, AccountInfo, StateChanges};
use alloy_consensus::{TxEnvelope, proofs, transaction::Recovered};
use alloy_evm::{Evm, EvmEnv, EvmFactory, FromRecoveredTx};
use alloy_primitives::{Address, B256, Bloom, Log, U256};
use alloy_sol_types::SolCall;
use revm::{
    Database as _,
    context::TxEnv,
    context_interface::result::ExecutionResult,
    context_interface::result::{EVMError, InvalidTransaction},
    database::{BundleState, State, states::bundle_state::BundleRetention},
    database_interface::{
        DatabaseCommit, DatabaseCommitExt, WrapDatabaseRef, bal::EvmDatabaseError,
    },
    inspector::NoOpInspector,
};

use crate::{
    db::{DbError, StateDb},
    evm::{AicoinEvm, AicoinEvmFactory},
};

type BlockState = State<WrapDatabaseRef<StateDb>>;
type BlockEvm = AicoinEvm<BlockState, NoOpInspector>;

/// Why a transaction could not be part of this block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction gas limit {gas} exceeds the {left} gas left in the block")]
    BlockGasExhausted { gas: u64, left: u64 },
    #[error("{0}")]
    Invalid(InvalidTransaction),
}

/// A failure that stops building or importing a block.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("state read failed: {0}")]
    Db(#[from] DbError),
    #[error("transaction {hash}: {error}")]
    Tx { hash: B256, error: TxError },
    #[error(transparent)]
    Issuance(#[from] TokenomicsError),
    #[error("EVM failure: {0}")]
    Evm(String),
    #[error("the end-of-block system step failed: {0}")]
    SystemStep(String),
}

/// The block's contents after execution, ready to be sealed and stored.
#[derive(Debug)]
pub struct BuiltBlock {
    pub transactions: Vec<TxEnvelope>,
    pub senders: Vec<Address>,
    pub receipts: Vec<TxReceipt>,
    pub gas_used: u64,
    pub transactions_root: B256,
    pub receipts_root: B256,
    pub logs_bloom: Bloom,
    pub changes: StateChanges,
    /// Logs of the end-of-block system step (epoch settlements: scores, rewards, slashes). They
    /// are in the block's bloom, and `eth_getLogs` serves them after the transactions' logs.
    pub system_logs: Vec<Log>,
    pub reward: BlockReward,
    /// Total issued (genesis + all rewards) after this block.
    pub issued: U256,
}

/// Executes transactions against the parent state for one block.
pub struct BlockBuilder {
    evm: BlockEvm,
    gas_limit: u64,
    gas_used: u64,
    transactions: Vec<TxEnvelope>,
    senders: Vec<Address>,
    receipts: Vec<TxReceipt>,
}

/// The EVM transaction for `tx`, with every fee field zeroed: AICoin charges nothing for gas,
/// whatever price the sender signed.
pub fn zero_fee_tx_env(tx: &Recovered<TxEnvelope>) -> TxEnv {
    let mut env = TxEnv::from_recovered_tx(tx.inner(), tx.signer());
    env.gas_price = 0;
    env.gas_priority_fee = env.gas_priority_fee.map(|_| 0);
    env
}

impl BlockBuilder {
    /// `db` is the parent block's state; `env` describes the block being built.
    pub fn new(db: StateDb, env: EvmEnv) -> Self {
        let gas_limit = env.block_env.gas_limit;
        let factory = AicoinEvmFactory::new(db.history());
        let state = State::builder()
            .with_database_ref(db)
            .with_bundle_update()
            .build();
        Self {
            evm: factory.create_evm(state, env),
            gas_limit,
            gas_used: 0,
            transactions: Vec::new(),
            senders: Vec::new(),
            receipts: Vec::new(),
        }
    }

    pub fn gas_left(&self) -> u64 {
        self.gas_limit - self.gas_used
    }

    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }

    /// Executes `tx` on top of the transactions already in the block. On error the state is
    /// untouched and the block can go on with other transactions.
    pub fn execute(&mut self, tx: Recovered<TxEnvelope>) -> Result<&TxReceipt, ExecError> {
        let hash = *tx.tx_hash();
        let gas = alloy_consensus::Transaction::gas_limit(tx.inner());
        if gas > self.gas_left() {
            let error = TxError::BlockGasExhausted {
                gas,
                left: self.gas_left(),
            };
            return Err(ExecError::Tx { hash, error });
        }
        let result = match self.evm.transact_commit(zero_fee_tx_env(&tx)) {
            Ok(result) => result,
            Err(EVMError::Transaction(invalid)) => {
                return Err(ExecError::Tx {
                    hash,
                    error: TxError::Invalid(invalid),
                });
            }
            Err(EVMError::Database(EvmDatabaseError::Database(e))) => return Err(e.into()),
            Err(other) => return Err(ExecError::Evm(other.to_string())),
        };
        self.gas_used += result.tx_gas_used();
        let tx_type = tx.inner().tx_type() as u8;
        let success = result.is_success();
        let (envelope, sender) = tx.into_parts();
        self.receipts.push(TxReceipt {
            tx_type,
            success,
            cumulative_gas_used: self.gas_used,
            logs: result.into_logs(),
        });
        self.transactions.push(envelope);
        self.senders.push(sender);
        Ok(self.receipts.last().expect("just pushed"))
    }

    /// The chain parameters as the block's state holds them now.
    pub fn params(&mut self) -> Result<Params, ExecError> {
        let db = self.evm.db_mut();
        Params::read(|key| db.storage(PARAMS_ADDRESS, key.into())).map_err(|e| match e {
            EvmDatabaseError::Database(e) => ExecError::Db(e),
            other => ExecError::Evm(other.to_string()),
        })
    }

    /// Runs the end-of-block system step and returns the finished block contents. The step
    /// pays block `number`'s reward on the issuance schedule the parameters give at this
    /// point of the block, capped (whatever they say) so that issuance never passes
    /// `tokenomics.max_supply`, to the beneficiary and `treasury`.
    pub fn finish(
        mut self,
        tokenomics: &Tokenomics,
        number: u64,
        issued_before: U256,
        treasury: Address,
    ) -> Result<BuiltBlock, ExecError> {
        let schedule = self.params()?.tokenomics(tokenomics);
        let reward = schedule.block_reward(number, issued_before)?;
        let issued = issued_before + reward.total();
        if issued > tokenomics.max_supply {
            return Err(TokenomicsError::CapExceeded {
                height: number,
                issued: issued_before,
                reward: reward.total(),
                max_supply: tokenomics.max_supply,
            }
            .into());
        }
        let beneficiary = self.evm.block().beneficiary;
        // The treasury is paid here; the node share is minted to the compute registry, whose
        // system step accrues it for the epoch's providers (or passes it to the miner).
        let minted = [
            (treasury, reward.treasury),
            (REGISTRY_ADDRESS, reward.miner),
        ];
        // Rewards are bounded by max_supply (2.1e25 wei), far inside u128.
        let increments = minted
            .into_iter()
            .filter(|(_, amount)| !amount.is_zero())
            .map(|(to, amount)| (to, amount.saturating_to::<u128>()));
        self.evm
            .db_mut()
            .increment_balances(increments)
            .map_err(|e| match e {
                EvmDatabaseError::Database(e) => ExecError::Db(e),
                other => ExecError::Evm(other.to_string()),
            })?;
        let registry = IComputeRegistry::endBlockCall {
            nodeShare: reward.miner,
            miner: beneficiary,
            treasury,
        };
        let mut system_logs = self.system_call(REGISTRY_ADDRESS, registry.abi_encode())?;
        system_logs
            .extend(self.system_call(GOVERNANCE_ADDRESS, governance::end_block_call(issued))?);
        let mut state = self.evm.into_db();
        state.merge_transitions(BundleRetention::PlainState);
        let changes = state_changes(state.take_bundle());

        let envelopes: Vec<_> = self.receipts.iter().map(TxReceipt::to_envelope).collect();
        let logs_bloom = self
            .receipts
            .iter()
            .fold(alloy_primitives::logs_bloom(&system_logs), |bloom, r| {
                bloom | r.bloom()
            });
        Ok(BuiltBlock {
            transactions_root: proofs::calculate_transaction_root(&self.transactions),
            receipts_root: proofs::calculate_receipt_root(&envelopes),
            logs_bloom,
            transactions: self.transactions,
            senders: self.senders,
            receipts: self.receipts,
            gas_used: self.gas_used,
            changes,
            system_logs,
            reward,
            issued,
        })
    }

    /// A module's end-of-block step (`data` to `module` as the system address), its changes
    /// committed; returns its logs. It cannot fail on a consistent state, so a failure is the
    /// block's.
    fn system_call(&mut self, module: Address, data: Vec<u8>) -> Result<Vec<Log>, ExecError> {
        let outcome = self
            .evm
            .transact_system_call(SYSTEM_ADDRESS, module, data.into())
            .map_err(|e| match e {
                EVMError::Database(EvmDatabaseError::Database(e)) => ExecError::Db(e),
                other => ExecError::SystemStep(other.to_string()),
            })?;
        let logs = match outcome.result {
            ExecutionResult::Success { logs, .. } => logs,
            ExecutionResult::Revert { output, .. } => {
                let reason = alloy_sol_types::decode_revert_reason(&output)
                    .unwrap_or_else(|| format!("reverted with {output}"));
                return Err(ExecError::SystemStep(reason));
            }
            ExecutionResult::Halt { reason, .. } => {
                return Err(ExecError::SystemStep(format!("halted: {reason:?}")));
            }
        };
        let mut state = outcome.state;
        // The system address only stands in as the caller; it is not part of the state.
        state.remove(&SYSTEM_ADDRESS);
        self.evm.db_mut().commit(state);
        Ok(logs)
    }
}

/// revm's bundle (final values of everything the block changed) in the store's terms.
fn state_changes(bundle: BundleState) -> StateChanges {
    let code = bundle
        .contracts
        .iter()
        .map(|(hash, code)| (*hash, code.original_bytes()))
        .collect();
    let accounts = bundle
        .state
        .into_iter()
        .map(|(address, account)| AccountChange {
            address,
            wipe_storage: account.was_destroyed(),
            info: account.info.as_ref().map(|i| AccountInfo {
                nonce: i.nonce,
                balance: i.balance,
                code_hash: i.code_hash,
            }),
            storage: account
                .storage
                .iter()
                .filter(|(_, slot)| slot.is_changed() || account.was_destroyed())
                .map(|(key, slot)| (*key, slot.present_value))
                .collect(),
        })
        .collect();
    StateChanges { accounts, code }
}
