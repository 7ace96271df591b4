//! The incremental root walk: feeds a [`HashBuilder`] stored hashes for untouched subtrees and
//! leaves for touched ones, in key order.

use alloy_primitives::{B256, Bytes, map::HashMap};
use alloy_trie::{BranchNodeCompact, HashBuilder, Nibbles, proof::ProofRetainer};

use crate::{KeyRange, PrefixSet, TrieSource};

/// Branch-node changes to write back to the store after a root computation.
#[derive(Debug, Default, Clone)]
pub struct TrieUpdates {
    /// Branch nodes to insert or overwrite, by path.
    pub updated: HashMap<Nibbles, BranchNodeCompact>,
    /// Paths whose stored branch node no longer exists.
    pub removed: Vec<Nibbles>,
}

/// Computes the root of the trie in `source` after the leaves under `changed` were written, and
/// the branch nodes to store so the next computation can skip what did not change.
///
/// `source` must hold the new leaves and the branch nodes stored by the previous computation.
pub fn compute_root<S: TrieSource>(
    source: &mut S,
    changed: &PrefixSet,
) -> Result<(B256, TrieUpdates), S::Error> {
    let hb = HashBuilder::default().with_updates(true);
    let (mut hb, visited) = Walk::run(source, changed, hb)?;
    let root = hb.root();
    let (_, updated) = hb.split();
    let removed = visited
        .into_iter()
        .filter(|path| !updated.contains_key(path))
        .collect();
    Ok((root, TrieUpdates { updated, removed }))
}

/// The root of the trie in `source` and, for each of `targets`, the RLP-encoded nodes on its path
/// from the root down (EIP-1186 `accountProof`/`storageProof`): an inclusion proof when the key
/// exists, an exclusion proof when it does not.
///
/// The same walk as [`compute_root`] with the targets as the changed keys: their paths are
/// rebuilt from leaves (so every node on them is produced and retained) and everything beside
/// them enters as a stored hash, so the cost is O(targets × depth), not O(trie).
pub fn compute_proofs<S: TrieSource>(
    source: &mut S,
    targets: &[B256],
) -> Result<(B256, Vec<Vec<Bytes>>), S::Error> {
    let paths: Vec<Nibbles> = targets.iter().map(|t| Nibbles::unpack(t)).collect();
    let hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(paths.clone()));
    let changed = PrefixSet::new(targets.iter().copied());
    let (mut hb, _) = Walk::run(source, &changed, hb)?;
    let root = hb.root();
    let nodes = hb.take_proof_nodes();
    let proofs = paths
        .iter()
        .map(|path| {
            nodes
                .matching_nodes_sorted(path)
                .into_iter()
                .map(|(_, node)| node)
                .collect()
        })
        .collect();
    Ok((root, proofs))
}

struct Walk<'a, S> {
    source: &'a mut S,
    changed: &'a PrefixSet,
    hb: HashBuilder,
    /// Stored branch nodes the walk descended into: each is either rebuilt (and reported as
    /// updated) or gone.
    visited: Vec<Nibbles>,
}

impl<'a, S: TrieSource> Walk<'a, S> {
    /// Walks the whole trie into `hb`; returns it with the stored branch paths visited.
    fn run(
        source: &'a mut S,
        changed: &'a PrefixSet,
        hb: HashBuilder,
    ) -> Result<(HashBuilder, Vec<Nibbles>), S::Error> {
        let mut walk = Walk {
            source,
            changed,
            hb,
            visited: Vec::new(),
        };
        walk.cover(Nibbles::default())?;
        Ok((walk.hb, walk.visited))
    }

    /// Feeds everything under `prefix` to the hash builder.
    fn cover(&mut self, prefix: Nibbles) -> Result<(), S::Error> {
        let range = KeyRange::under(&prefix);
        match self.source.first_branch_under(&prefix)? {
            // In a consistent store the first branch under a prefix is the top of that subtree
            // (reached directly or through an extension): every other stored node lies below it.
            // Leaves beside it can only be new, so they are fed from the ranges around it.
            Some((path, node)) => {
                let inner = KeyRange::under(&path);
                self.leaves(range.before(&inner))?;
                self.visit(path, node)?;
                self.leaves(range.after(&inner))
            }
            None => self.leaves(range),
        }
    }

    /// Feeds the children of the stored branch at `path`, reusing the hash of every child that is
    /// a branch node with nothing changed beneath it.
    fn visit(&mut self, path: Nibbles, node: BranchNodeCompact) -> Result<(), S::Error> {
        self.visited.push(path);
        for nibble in 0..16u8 {
            let mut child = path;
            child.push(nibble);
            let existed = node.state_mask.is_bit_set(nibble);
            let changed = self.changed.contains_prefix(&child);
            let has_stored_nodes = node.tree_mask.is_bit_set(nibble);
            if !existed && !changed {
                continue;
            } else if !changed && node.hash_mask.is_bit_set(nibble) {
                let hash = node.hash_for_nibble(nibble);
                self.hb.add_branch(child, hash, has_stored_nodes);
            } else if has_stored_nodes {
                self.cover(child)?;
            } else {
                self.leaves(KeyRange::under(&child))?;
            }
        }
        Ok(())
    }

    fn leaves(&mut self, range: KeyRange) -> Result<(), S::Error> {
        if range.is_empty() {
            return Ok(());
        }
        let hb = &mut self.hb;
        self.source.for_each_leaf(range, &mut |key, value| {
            hb.add_leaf(Nibbles::unpack(key), value)
        })
    }
}
