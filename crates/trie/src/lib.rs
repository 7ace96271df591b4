//! Incremental Merkle-Patricia roots over a sorted leaf store.
//!
//! Recomputing a state root by hashing every account costs O(accounts) per block. Like reth, we
//! keep the trie's *branch nodes* (alloy-trie's [`BranchNodeCompact`]: which children exist,
//! which are stored, and the hashes of branch children) beside the leaves, and recompute only
//! the paths a block touched: an untouched subtree enters the [`HashBuilder`] as its stored hash,
//! a touched one is rebuilt from its stored sub-branches and leaves. The cost is O(changed keys ×
//! depth), independent of how many accounts exist.
//!
//! The walk is ours; hashing, node encoding and the branch-node format are alloy-trie's.
//! Correctness is checked against a from-scratch [`HashBuilder`] root over random histories.

mod key_range;
mod prefix_set;
mod walk;

pub use alloy_trie::{BranchNodeCompact, EMPTY_ROOT_HASH, HashBuilder, Nibbles, TrieMask};
pub use key_range::KeyRange;
pub use prefix_set::PrefixSet;
pub use walk::{TrieUpdates, compute_proofs, compute_root};

use alloy_primitives::B256;

/// Read access to one trie's leaves and stored branch nodes.
pub trait TrieSource {
    type Error;

    /// Calls `f` for every leaf whose hashed key lies in `range`, in ascending key order, with the
    /// leaf's RLP-encoded trie value.
    fn for_each_leaf(
        &mut self,
        range: KeyRange,
        f: &mut dyn FnMut(B256, &[u8]),
    ) -> Result<(), Self::Error>;

    /// The first stored branch node (in path order) whose path starts with `prefix`.
    fn first_branch_under(
        &mut self,
        prefix: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, Self::Error>;
}

#[cfg(test)]
mod memory;
