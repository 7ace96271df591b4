//! One call into a module: its input, gas metered for every read, write and log (fees are zero,
//! but gas still bounds what a call may do), and the ABI-shaped outcome: returned data, a revert
//! with an `Error(string)` reason that ethers and web3.py show, or out of gas.

use aicoin_primitives::{modules::SYSTEM_ADDRESS, param_key};
use alloy_evm::precompiles::PrecompileInput;
use alloy_primitives::{Address, B256, Bytes, Log, U256};
use alloy_sol_types::{Revert, SolError, SolEvent};
use revm::precompile::{PrecompileError, PrecompileHalt, PrecompileOutput, PrecompileResult};

use crate::history::History;

/// Gas of entering a module, as a warm `CALL` costs.
pub const CALL_GAS: u64 = 100;
/// Gas of reading one slot of module state (a cold `SLOAD`).
pub const READ_GAS: u64 = 2_100;
/// Gas of writing one slot of module state (an `SSTORE` to a fresh slot).
pub const WRITE_GAS: u64 = 20_000;
/// Gas of an event: `LOG` costs (375, 375 per topic, 8 per data byte).
fn log_gas(log: &Log) -> u64 {
    375 + 375 * log.topics().len() as u64 + 8 * log.data.data.len() as u64
}

/// Why a call stops short of returning.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    /// Reverts with this reason (state changes undone, remaining gas kept by the caller).
    #[error("reverted: {0}")]
    Revert(String),
    #[error("out of gas")]
    OutOfGas,
    /// The state could not be read: the block cannot be executed at all.
    #[error("{0}")]
    Fatal(String),
}

impl Exit {
    pub fn revert(reason: impl Into<String>) -> Self {
        Self::Revert(reason.into())
    }
}

pub type CallResult<T> = Result<T, Exit>;

/// A module call in progress.
pub struct ModuleCall<'a> {
    pub input: PrecompileInput<'a>,
    /// The module's address, where its state lives.
    pub module: Address,
    gas_used: u64,
    /// False for the chain's own system steps, which no gas limit may cut short.
    metered: bool,
    history: &'a dyn History,
}

impl<'a> ModuleCall<'a> {
    pub fn new(input: PrecompileInput<'a>, module: Address, history: &'a dyn History) -> Self {
        let metered = input.caller != SYSTEM_ADDRESS;
        Self {
            input,
            module,
            gas_used: 0,
            metered,
            history,
        }
    }

    /// `account`'s balance at the end of `block`, an earlier block than this one (a historical
    /// read: charged as a cold account access).
    pub fn balance_at(&mut self, account: Address, block: u64) -> CallResult<U256> {
        self.charge(READ_GAS)?;
        self.past(block)?;
        self.history
            .balance_at(account, block)
            .map_err(|e| Exit::Fatal(e.to_string()))
    }

    /// Slot `key` of this module's storage at the end of `block`, an earlier block.
    pub fn read_at(&mut self, key: B256, block: u64) -> CallResult<U256> {
        self.charge(READ_GAS)?;
        self.past(block)?;
        self.history
            .storage_at(self.module, key, block)
            .map_err(|e| Exit::Fatal(e.to_string()))
    }

    fn past(&self, block: u64) -> CallResult<()> {
        let now = self.block_number();
        if block >= now {
            return Err(Exit::revert(format!(
                "block {block} is not in the past (this is block {now})"
            )));
        }
        Ok(())
    }

    pub fn caller(&self) -> Address {
        self.input.caller
    }

    /// Whether this is the chain's own end-of-block step (no transaction can call as the
    /// system address: no one has its key).
    pub fn is_system(&self) -> bool {
        !self.metered
    }

    /// The number of the block being executed.
    pub fn block_number(&self) -> u64 {
        self.input.internals.block_number().saturating_to()
    }

    /// Entering the module and reading its call data (3 gas a word, as `CALLDATACOPY`). Only a
    /// direct call is answered: under `DELEGATECALL` or `CALLCODE` the caller would be someone
    /// else's and the storage the calling contract's.
    pub fn charge_input(&mut self) -> CallResult<()> {
        self.charge(CALL_GAS + 3 * self.input.data.len().div_ceil(32) as u64)?;
        if self.input.target_address != self.module || self.input.bytecode_address != self.module {
            return Err(Exit::revert(
                "chain modules answer direct calls only, not DELEGATECALL or CALLCODE",
            ));
        }
        Ok(())
    }

    pub fn charge(&mut self, gas: u64) -> CallResult<()> {
        if !self.metered {
            return Ok(());
        }
        self.gas_used = self.gas_used.saturating_add(gas);
        if self.gas_used > self.input.gas {
            return Err(Exit::OutOfGas);
        }
        Ok(())
    }

    /// The module's storage slot `key`.
    pub fn read(&mut self, key: B256) -> CallResult<U256> {
        self.read_from(self.module, key)
    }

    /// Slot `key` of the module at `module`.
    pub fn read_from(&mut self, module: Address, key: B256) -> CallResult<U256> {
        self.charge(READ_GAS)?;
        self.input
            .internals
            .sload(module, key.into())
            .map(|loaded| loaded.data)
            .map_err(|e| Exit::Fatal(e.to_string()))
    }

    /// The chain parameter called `name`, as the parameters module holds it now.
    pub fn param(&mut self, name: &str) -> CallResult<U256> {
        if aicoin_primitives::param_by_key(&param_key(name)).is_none() {
            return Err(Exit::Fatal(format!(
                "a module reads an undefined parameter {name:?}"
            )));
        }
        self.read_from(aicoin_primitives::modules::PARAMS_ADDRESS, param_key(name))
    }

    /// A parameter that counts something (blocks, epochs, basis points), as a `u64`.
    pub fn param_u64(&mut self, name: &str) -> CallResult<u64> {
        Ok(self.param(name)?.saturating_to())
    }

    /// Pays `amount` of the module's own balance to `to`.
    pub fn pay(&mut self, to: Address, amount: U256) -> CallResult<()> {
        if amount.is_zero() {
            return Ok(());
        }
        if self.input.is_static {
            return Err(Exit::revert(
                "state changes are not allowed in a static call",
            ));
        }
        self.charge(9_000)?;
        let module = self.module;
        match self.input.internals.transfer(module, to, amount) {
            Ok(None) => Ok(()),
            Ok(Some(error)) => Err(Exit::Fatal(format!(
                "module {module} cannot pay {amount} wei to {to}: {error:?}"
            ))),
            Err(e) => Err(Exit::Fatal(e.to_string())),
        }
    }

    /// Writes the module's storage slot `key`; refused in a static (view) call.
    pub fn write(&mut self, key: B256, value: U256) -> CallResult<()> {
        self.write_to(self.module, key, value)
    }

    /// Writes slot `key` of another module at `module` (governance carrying out a change the
    /// module itself would refuse from anyone else).
    pub fn write_to(&mut self, module: Address, key: B256, value: U256) -> CallResult<()> {
        if self.input.is_static {
            return Err(Exit::revert(
                "state changes are not allowed in a static call",
            ));
        }
        self.charge(WRITE_GAS)?;
        self.input
            .internals
            .sstore(module, key.into(), value)
            .map(|_| ())
            .map_err(|e| Exit::Fatal(e.to_string()))
    }

    /// Moves `amount` from `from` to `to` (the treasury paying a spend governance passed).
    pub fn transfer(&mut self, from: Address, to: Address, amount: U256) -> CallResult<()> {
        if self.input.is_static {
            return Err(Exit::revert(
                "state changes are not allowed in a static call",
            ));
        }
        self.charge(9_000)?;
        match self.input.internals.transfer(from, to, amount) {
            Ok(None) => Ok(()),
            Ok(Some(error)) => Err(Exit::revert(format!(
                "cannot move {amount} wei from {from} to {to}: {error:?}"
            ))),
            Err(e) => Err(Exit::Fatal(e.to_string())),
        }
    }

    /// The balance of `account` now, in this block.
    pub fn balance(&mut self, account: Address) -> CallResult<U256> {
        self.charge(READ_GAS)?;
        self.input
            .internals
            .load_account(account)
            .map(|account| account.data.info.balance)
            .map_err(|e| Exit::Fatal(e.to_string()))
    }

    /// Emits `event` from the module's address, an ordinary log.
    pub fn emit(&mut self, event: &impl SolEvent) -> CallResult<()> {
        self.emit_from(self.module, event)
    }

    /// Emits `event` from `address`: the log of a change made in another module's state, where
    /// that module's watchers look for it.
    pub fn emit_from(&mut self, address: Address, event: &impl SolEvent) -> CallResult<()> {
        let log = Log {
            address,
            data: event.encode_log_data(),
        };
        self.charge(log_gas(&log))?;
        self.input.internals.log(log);
        Ok(())
    }

    /// The precompile's answer for `result`.
    pub fn finish(self, result: CallResult<Bytes>) -> PrecompileResult {
        let reservoir = self.input.reservoir;
        match result {
            Ok(output) => Ok(PrecompileOutput::new(self.gas_used, output, reservoir)),
            Err(Exit::Revert(reason)) => Ok(PrecompileOutput::revert(
                self.gas_used.min(self.input.gas),
                Revert::from(reason).abi_encode().into(),
                reservoir,
            )),
            Err(Exit::OutOfGas) => Ok(PrecompileOutput::halt(PrecompileHalt::OutOfGas, reservoir)),
            Err(Exit::Fatal(error)) => Err(PrecompileError::Fatal(error)),
        }
    }
}
