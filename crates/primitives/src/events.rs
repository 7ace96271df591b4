//! What the chain announces to the rest of the node (RPC subscriptions and filters, the pool,
//! replication) when a block becomes the new head.

use alloy_consensus::Header;
use alloy_primitives::B256;

/// A block that became the new head.
#[derive(Debug, Clone)]
pub struct NewBlock {
    pub header: Header,
    pub hash: B256,
    pub transactions: Vec<B256>,
}
