//! An in-memory [`TrieSource`] for tests, and the property tests of the incremental walk.

use std::{collections::BTreeMap, convert::Infallible};

use alloy_primitives::B256;
use alloy_trie::{BranchNodeCompact, HashBuilder, Nibbles};

use crate::{KeyRange, PrefixSet, TrieSource, TrieUpdates, compute_proofs, compute_root};

#[derive(Debug, Default)]
pub struct MemoryTrie {
    pub leaves: BTreeMap<B256, Vec<u8>>,
    pub branches: BTreeMap<Nibbles, BranchNodeCompact>,
    /// Leaves handed to the walk so far: what a root computation cost.
    pub leaves_read: usize,
}

impl TrieSource for MemoryTrie {
    type Error = Infallible;

    fn for_each_leaf(
        &mut self,
        range: KeyRange,
        f: &mut dyn FnMut(B256, &[u8]),
    ) -> Result<(), Infallible> {
        for (k, v) in self.leaves.range(range.start..=range.end) {
            self.leaves_read += 1;
            f(*k, v);
        }
        Ok(())
    }

    fn first_branch_under(
        &mut self,
        prefix: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, Infallible> {
        Ok(self
            .branches
            .range(prefix..)
            .next()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(p, n)| (*p, n.clone())))
    }
}

impl MemoryTrie {
    /// Writes `changes` (None deletes), recomputes the root incrementally and stores the updates.
    pub fn apply(&mut self, changes: &[(B256, Option<Vec<u8>>)]) -> B256 {
        for (key, value) in changes {
            match value {
                Some(v) => self.leaves.insert(*key, v.clone()),
                None => self.leaves.remove(key),
            };
        }
        let prefix_set = PrefixSet::new(changes.iter().map(|(k, _)| *k));
        let (root, TrieUpdates { updated, removed }) =
            compute_root(self, &prefix_set).unwrap_or_else(|e| match e {});
        for path in removed {
            self.branches.remove(&path);
        }
        self.branches.extend(updated);
        root
    }

    /// The root and stored branch nodes a from-scratch build produces.
    pub fn rebuild(&self) -> (B256, BTreeMap<Nibbles, BranchNodeCompact>) {
        let mut hb = HashBuilder::default().with_updates(true);
        for (k, v) in &self.leaves {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        let root = hb.root();
        let (_, updates) = hb.split();
        (root, updates.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{U256, keccak256};
    use alloy_trie::EMPTY_ROOT_HASH;
    use proptest::prelude::*;

    /// Keys from a small space so histories revisit (update and delete) existing keys, with some
    /// sharing long prefixes so extension nodes appear.
    fn key(i: u16) -> B256 {
        if i.is_multiple_of(7) {
            let mut k = B256::repeat_byte(0xab);
            k[31] = (i >> 8) as u8;
            k[30] = i as u8;
            k
        } else {
            keccak256(i.to_be_bytes())
        }
    }

    fn value(v: u32) -> Vec<u8> {
        alloy_rlp::encode(U256::from(v) + U256::from(1u8))
    }

    #[test]
    fn empty_and_single_leaf() {
        let mut trie = MemoryTrie::default();
        assert_eq!(trie.apply(&[]), EMPTY_ROOT_HASH);
        let root = trie.apply(&[(key(1), Some(value(1)))]);
        assert_eq!(root, trie.rebuild().0);
        assert_eq!(trie.apply(&[(key(1), None)]), EMPTY_ROOT_HASH);
    }

    #[test]
    fn ten_thousand_leaves_then_small_updates() {
        let mut trie = MemoryTrie::default();
        let all: Vec<_> = (0..10_000u16)
            .map(|i| (key(i), Some(value(i as u32))))
            .collect();
        trie.apply(&all);
        for round in 0..20u16 {
            let batch: Vec<_> = (0..50u16)
                .map(|j| {
                    let i = (round * 997 + j * 131) % 12_000;
                    (
                        key(i),
                        if j % 5 == 0 {
                            None
                        } else {
                            Some(value(round as u32 + j as u32))
                        },
                    )
                })
                .collect();
            let root = trie.apply(&batch);
            let (expected_root, expected_branches) = trie.rebuild();
            assert_eq!(root, expected_root, "round {round}");
            assert_eq!(trie.branches, expected_branches, "round {round}");
        }
    }

    #[test]
    fn one_change_reads_a_handful_of_leaves_not_all() {
        let mut trie = MemoryTrie::default();
        let all: Vec<_> = (0..20_000u16)
            .map(|i| (key(i), Some(value(i as u32))))
            .collect();
        trie.apply(&all);
        trie.leaves_read = 0;
        let root = trie.apply(&[(key(123), Some(value(7))), (key(40_000), Some(value(1)))]);
        assert_eq!(root, trie.rebuild().0);
        assert!(trie.leaves_read < 100, "read {} leaves", trie.leaves_read);
    }

    /// The proofs a from-scratch [`HashBuilder`] over every leaf retains for `targets`.
    fn rebuilt_proofs(trie: &MemoryTrie, targets: &[B256]) -> Vec<Vec<alloy_primitives::Bytes>> {
        let paths: Vec<Nibbles> = targets.iter().map(|t| Nibbles::unpack(t)).collect();
        let retainer = alloy_trie::proof::ProofRetainer::new(paths.clone());
        let mut hb = HashBuilder::default().with_proof_retainer(retainer);
        for (k, v) in &trie.leaves {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        hb.root();
        let nodes = hb.take_proof_nodes();
        paths
            .iter()
            .map(|p| {
                nodes
                    .matching_nodes_sorted(p)
                    .into_iter()
                    .map(|(_, n)| n)
                    .collect()
            })
            .collect()
    }

    /// Proofs from the incremental walk equal a from-scratch build's, and verify against the
    /// root: inclusion for present keys, exclusion for absent ones.
    fn check_proofs(trie: &mut MemoryTrie, probes: &[B256]) {
        let (root, proofs) = compute_proofs(trie, probes).unwrap_or_else(|e| match e {});
        assert_eq!(root, trie.rebuild().0);
        assert_eq!(proofs, rebuilt_proofs(trie, probes));
        for (key, proof) in probes.iter().zip(&proofs) {
            let expected = trie.leaves.get(key).cloned();
            alloy_trie::proof::verify_proof(root, Nibbles::unpack(key), expected, proof)
                .unwrap_or_else(|e| panic!("proof for {key} does not verify: {e}"));
        }
    }

    #[test]
    fn proofs_of_empty_and_single_leaf_tries() {
        let mut trie = MemoryTrie::default();
        check_proofs(&mut trie, &[key(1)]);
        trie.apply(&[(key(1), Some(value(1)))]);
        check_proofs(&mut trie, &[key(1), key(2)]);
    }

    #[test]
    fn proof_reads_a_handful_of_leaves_not_all() {
        let mut trie = MemoryTrie::default();
        let all: Vec<_> = (0..20_000u16)
            .map(|i| (key(i), Some(value(i as u32))))
            .collect();
        trie.apply(&all);
        trie.leaves_read = 0;
        compute_proofs(&mut trie, &[key(5), key(40_000)]).unwrap_or_else(|e| match e {});
        assert!(trie.leaves_read < 100, "read {} leaves", trie.leaves_read);
        check_proofs(&mut trie, &[key(5), key(40_000)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// After any history, proofs of present and absent keys verify against the root. Keys
        /// are hashes, as in the state trie: alloy-trie's verifier rejects exclusion proofs that
        /// end in an embedded (< 32 byte) node, which only keys sharing ~60 nibbles produce.
        #[test]
        fn proofs_verify(
            batches in prop::collection::vec(
                prop::collection::vec((0u16..300, prop::option::weighted(0.8, 0u32..1000)), 0..40),
                1..6,
            ),
            probes in prop::collection::vec(0u16..400, 1..8),
        ) {
            let mut trie = MemoryTrie::default();
            for batch in batches {
                let changes: Vec<_> = batch
                    .into_iter()
                    .map(|(k, v)| (keccak256(k.to_be_bytes()), v.map(value)))
                    .collect();
                trie.apply(&changes);
            }
            let probes: Vec<B256> = probes.into_iter().map(|k| keccak256(k.to_be_bytes())).collect();
            check_proofs(&mut trie, &probes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// After any history of batched inserts, updates and deletes, the incremental root equals
        /// a from-scratch root and the stored branch nodes equal a from-scratch build's.
        #[test]
        fn incremental_matches_rebuild(
            batches in prop::collection::vec(
                prop::collection::vec((0u16..300, prop::option::weighted(0.7, 0u32..1000)), 0..40),
                1..12,
            )
        ) {
            let mut trie = MemoryTrie::default();
            for batch in batches {
                let changes: Vec<_> =
                    batch.into_iter().map(|(k, v)| (key(k), v.map(value))).collect();
                let root = trie.apply(&changes);
                let (expected_root, expected_branches) = trie.rebuild();
                prop_assert_eq!(root, expected_root);
                prop_assert_eq!(&trie.branches, &expected_branches);
            }
        }
    }
}
