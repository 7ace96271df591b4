//! The set of keys a block changed, queried by prefix.

use alloy_primitives::B256;
use alloy_trie::Nibbles;

/// Changed (inserted, updated or deleted) leaf keys, sorted, answering "did anything under this
/// path change?".
#[derive(Debug, Clone, Default)]
pub struct PrefixSet {
    keys: Vec<Nibbles>,
}

impl PrefixSet {
    pub fn new(keys: impl IntoIterator<Item = B256>) -> Self {
        let mut keys: Vec<Nibbles> = keys.into_iter().map(|k| Nibbles::unpack(k)).collect();
        keys.sort_unstable();
        keys.dedup();
        Self { keys }
    }

    pub fn contains_prefix(&self, prefix: &Nibbles) -> bool {
        let i = self.keys.partition_point(|k| k < prefix);
        self.keys.get(i).is_some_and(|k| k.starts_with(prefix))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}
