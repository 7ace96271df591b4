//! The incremental root walk: feeds a [`HashBuilder`] stored hashes for untouched subtrees and
//! leaves for touched ones, in key order.

use alloy_primitives::{B256, map::HashMap};
use alloy_trie::{BranchNodeCompact, HashBuilder, Nibbles};

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
    let mut walk = Walk {
        source,
        changed,
        hb: HashBuilder::default().with_updates(true),
        visited: Vec::new(),
    };
    walk.cover(Nibbles::default())?;
    let root = walk.hb.root();
    let visited = walk.visited;
    let (_, updated) = walk.hb.split();
    let removed = visited
        .into_iter()
        .filter(|path| !updated.contains_key(path))
        .collect();
    Ok((root, TrieUpdates { updated, removed }))
}

struct Walk<'a, S> {
    source: &'a mut S,
    changed: &'a PrefixSet,
    hb: HashBuilder,
    /// Stored branch nodes the walk descended into: each is either rebuilt (and reported as
    /// updated) or gone.
    visited: Vec<Nibbles>,
}

impl<S: TrieSource> Walk<'_, S> {
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
