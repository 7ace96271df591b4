//! Where the API-access module (`IApiAccess`, at [`API_ACCESS_ADDRESS`]) keeps its state: each
//! account's subscription and key generation, and each epoch's purchase revenue. Slots are
//! tagged keccak hashes, as in [`crate::registry`].
//!
//! [`API_ACCESS_ADDRESS`]: crate::modules::API_ACCESS_ADDRESS

use alloy_primitives::{Address, B256};

fn hash(tag: &str, parts: &[&[u8]]) -> B256 {
    crate::registry::tagged_slot("access", tag, parts)
}

/// An account's subscription: `tier | expires_at << 64 | key_generation << 128`.
pub fn subscription_slot(account: Address) -> B256 {
    hash("subscription", &[account.as_slice()])
}

/// The purchases of an epoch, in wei.
pub fn revenue_slot(epoch: u64) -> B256 {
    hash("revenue", &[&epoch.to_be_bytes()])
}
