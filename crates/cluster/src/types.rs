//! What the raft log and its peers carry: the type configuration, a cluster member's addresses,
//! a log entry (one sealed block) and what applying it returns.

use std::{fmt, io::Cursor};

use alloy_primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// AICoin's raft: validators named by their validator address, entries carrying blocks.
    pub Raft:
        D = BlockEntry,
        R = Applied,
        NodeId = Address,
        Node = Member,
        SnapshotData = Cursor<Vec<u8>>,
);

/// One raft log entry's payload: a sealed block, RLP-encoded as blocks travel between nodes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry(pub Bytes);

impl fmt::Debug for BlockEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockEntry({} bytes)", self.0.len())
    }
}

impl fmt::Display for BlockEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A block's place in the chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    pub number: u64,
    pub hash: B256,
}

/// What applying an entry did: the block it imported (none for raft's own entries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(pub Option<ChainPoint>);

/// How to reach a validator, as raft's membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The operator's name for it (`--node-id`).
    pub name: String,
    /// Its node-to-node endpoint, e.g. `http://10.0.0.2:9551`.
    pub sync_url: String,
    /// Its JSON-RPC endpoint (where followers forward transactions).
    pub rpc_url: String,
    /// 1 is the highest: it wins elections first.
    pub priority: u32,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.sync_url)
    }
}
