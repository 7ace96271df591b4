//! Where the API-access module (`IApiAccess`, at [`API_ACCESS_ADDRESS`]) keeps its state: each
//! account's subscription and key generation, each epoch's purchase revenue, the registered
//! gateways and the tokens they report each provider served. Slots are
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

/// The registered gateways: an address array (length here, elements after its keccak).
pub fn gateways_slot() -> B256 {
    hash("gateways", &[])
}

/// A gateway's public URL (a string), non-empty while it is registered.
pub fn gateway_url_slot(gateway: Address) -> B256 {
    hash("gateway-url", &[gateway.as_slice()])
}

/// Non-zero once `gateway` reported its usage of `epoch`.
pub fn usage_reported_slot(epoch: u64, gateway: Address) -> B256 {
    hash(
        "usage-reported",
        &[&epoch.to_be_bytes(), gateway.as_slice()],
    )
}

/// The tokens `provider` served through every reporting gateway in `epoch`.
pub fn served_slot(epoch: u64, provider: Address) -> B256 {
    hash("served", &[&epoch.to_be_bytes(), provider.as_slice()])
}

/// The providers' part carried into `epoch`'s split from earlier epochs, in wei.
pub fn carried_slot(epoch: u64) -> B256 {
    hash("carried", &[&epoch.to_be_bytes()])
}
