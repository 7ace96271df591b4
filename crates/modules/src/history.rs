//! The chain's past as modules read it: an account's balance, or a slot of a module, at the end
//! of an earlier block. Governance weighs each vote by the voter's balance at the proposal's
//! snapshot, so coins moved afterwards vote nowhere else. Earlier blocks are final, so every
//! node reads the same values whenever it executes the block that asks.

use alloy_primitives::{Address, B256, U256};

/// Reads state at the end of blocks before the one executing.
pub trait History: Send + Sync {
    /// `account`'s balance at the end of `block`.
    fn balance_at(&self, account: Address, block: u64) -> Result<U256, HistoryError>;
    /// Slot `slot` of `address`'s storage at the end of `block`.
    fn storage_at(&self, address: Address, slot: B256, block: u64) -> Result<U256, HistoryError>;
}

/// The store could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the state at the end of block {block}: {source}")]
pub struct HistoryError {
    pub block: u64,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Balances and slots kept in memory, block by block: the history of a test's chain.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryHistory {
    /// (account, slot) → (block from which it holds, value), in order. Balances use
    /// [`B256::ZERO`] as their slot.
    values: std::sync::Mutex<std::collections::BTreeMap<(Address, B256, u64), U256>>,
}

#[cfg(test)]
impl MemoryHistory {
    /// `account` holds `balance` from the end of `block` on (until a later entry).
    pub fn set_balance(&self, account: Address, block: u64, balance: U256) {
        self.set_storage(account, B256::ZERO, block, balance);
    }

    pub fn set_storage(&self, address: Address, slot: B256, block: u64, value: U256) {
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((address, slot, block), value);
    }

    fn at(&self, address: Address, slot: B256, block: u64) -> U256 {
        let values = self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values
            .range((address, slot, 0)..=(address, slot, block))
            .next_back()
            .map_or(U256::ZERO, |(_, v)| *v)
    }
}

#[cfg(test)]
impl History for MemoryHistory {
    fn balance_at(&self, account: Address, block: u64) -> Result<U256, HistoryError> {
        Ok(self.at(account, B256::ZERO, block))
    }

    fn storage_at(&self, address: Address, slot: B256, block: u64) -> Result<U256, HistoryError> {
        Ok(self.at(address, slot, block))
    }
}
