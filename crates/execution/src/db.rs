//! revm's view of stored state: a [`DatabaseRef`] over one block's [`StateView`], with block
//! hashes for BLOCKHASH from the same snapshot, and the earlier blocks' state the modules read
//! ([`History`]) from that snapshot too.

use std::sync::Arc;

use aicoin_modules::{History, HistoryError};
use aicoin_storage::{Reader, StateView, StoreError};
use alloy_primitives::{Address, B256, U256};
use revm::{
    bytecode::Bytecode,
    database_interface::{DBErrorMarker, DatabaseRef},
    state::AccountInfo,
};

/// A storage failure surfaced through revm.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DbError(#[from] pub StoreError);

impl DBErrorMarker for DbError {}

/// State as of one block, read from a store snapshot.
pub struct StateDb {
    reader: Arc<Reader>,
    state: StateView,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").finish_non_exhaustive()
    }
}

impl StateDb {
    /// The state after block `at`.
    pub fn at(reader: Reader, at: u64) -> Result<Self, StoreError> {
        let state = reader.state_at(at)?;
        Ok(Self {
            reader: Arc::new(reader),
            state,
        })
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The chain's earlier blocks, as the modules read them, from this snapshot.
    pub fn history(&self) -> Arc<dyn History> {
        Arc::new(StoreHistory(self.reader.clone()))
    }
}

/// [`History`] from a store snapshot: one seek in the history tables per read.
struct StoreHistory(Arc<Reader>);

impl StoreHistory {
    fn state(&self, block: u64) -> Result<StateView, HistoryError> {
        self.0.state_at(block).map_err(|e| unreadable(block, e))
    }
}

fn unreadable(block: u64, error: StoreError) -> HistoryError {
    HistoryError {
        block,
        source: Box::new(error),
    }
}

impl History for StoreHistory {
    fn balance_at(&self, account: Address, block: u64) -> Result<U256, HistoryError> {
        let account = self
            .state(block)?
            .account(&account)
            .map_err(|e| unreadable(block, e))?;
        Ok(account.map_or(U256::ZERO, |a| a.balance))
    }

    fn storage_at(&self, address: Address, slot: B256, block: u64) -> Result<U256, HistoryError> {
        self.state(block)?
            .storage(&address, &U256::from_be_bytes(slot.0))
            .map_err(|e| unreadable(block, e))
    }
}

impl DatabaseRef for StateDb {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        Ok(self.state.account(&address)?.map(|a| AccountInfo {
            balance: a.balance,
            nonce: a.nonce,
            code_hash: a.code_hash,
            // Loaded lazily through `code_by_hash_ref`.
            code: None,
            account_id: None,
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, DbError> {
        Ok(self
            .state
            .code(&code_hash)?
            .map(Bytecode::new_raw)
            .unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, DbError> {
        Ok(self.state.storage(&address, &index)?)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, DbError> {
        Ok(self.reader.block_hash(number)?.unwrap_or_default())
    }
}
