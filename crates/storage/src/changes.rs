//! What a block did to the state, in the form the store applies: the final value of every
//! account and slot the block changed.

use alloy_primitives::{Address, B256, Bytes, U256};

/// An account's fields other than its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountInfo {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    pub address: Address,
    /// The account after the block; `None` when it no longer exists (self-destructed, or an
    /// empty account removed under EIP-161). Its storage goes with it.
    pub info: Option<AccountInfo>,
    /// All storage was cleared before `storage` applies (the account was destroyed and
    /// possibly re-created within the block).
    pub wipe_storage: bool,
    /// Final slot values; zero deletes the slot.
    pub storage: Vec<(U256, U256)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChanges {
    pub accounts: Vec<AccountChange>,
    /// New bytecode by code hash.
    pub code: Vec<(B256, Bytes)>,
}
