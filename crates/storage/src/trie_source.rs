//! [`TrieSource`] views of the account trie and of one account's storage trie over redb tables,
//! usable inside the write transaction that is applying a block.

use aicoin_trie::{BranchNodeCompact, KeyRange, Nibbles, TrieSource};
use alloy_primitives::{B256, U256};
use redb::ReadableTable;

use crate::{
    StoreError,
    codec::{decode_branch, path_from_key, path_key},
    tables::Hashed,
};

fn first_branch_under(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix_bytes: &[u8],
    path: &Nibbles,
) -> Result<Option<(Nibbles, BranchNodeCompact)>, StoreError> {
    let start = path_key(prefix_bytes, path);
    let Some(entry) = table.range::<&[u8]>(start.as_slice()..)?.next() else {
        return Ok(None);
    };
    let (key, value) = entry?;
    let key = key.value();
    if !key.starts_with(&start) {
        return Ok(None);
    }
    let path = path_from_key(&key[prefix_bytes.len()..])?;
    Ok(Some((path, decode_branch(value.value())?)))
}

/// The account trie: leaves are RLP trie accounts keyed by keccak(address).
pub(crate) struct AccountTrie<'a, L, B> {
    pub leaves: &'a L,
    pub branches: &'a B,
}

impl<L, B> TrieSource for AccountTrie<'_, L, B>
where
    L: ReadableTable<Hashed, &'static [u8]>,
    B: ReadableTable<&'static [u8], &'static [u8]>,
{
    type Error = StoreError;

    fn for_each_leaf(
        &mut self,
        range: KeyRange,
        f: &mut dyn FnMut(B256, &[u8]),
    ) -> Result<(), StoreError> {
        for entry in self.leaves.range(range.start.0..=range.end.0)? {
            let (key, value) = entry?;
            f(B256::from(key.value()), value.value());
        }
        Ok(())
    }

    fn first_branch_under(
        &mut self,
        prefix: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StoreError> {
        first_branch_under(self.branches, &[], prefix)
    }
}

/// One account's storage trie: leaves are RLP values keyed by keccak(slot).
pub(crate) struct StorageTrie<'a, L, B> {
    pub account: Hashed,
    pub leaves: &'a L,
    pub branches: &'a B,
}

impl<L, B> TrieSource for StorageTrie<'_, L, B>
where
    L: ReadableTable<(Hashed, Hashed), [u8; 32]>,
    B: ReadableTable<&'static [u8], &'static [u8]>,
{
    type Error = StoreError;

    fn for_each_leaf(
        &mut self,
        range: KeyRange,
        f: &mut dyn FnMut(B256, &[u8]),
    ) -> Result<(), StoreError> {
        let a = self.account;
        let mut rlp = Vec::with_capacity(33);
        for entry in self.leaves.range((a, range.start.0)..=(a, range.end.0))? {
            let (key, value) = entry?;
            rlp.clear();
            alloy_rlp::Encodable::encode(&U256::from_be_bytes(value.value()), &mut rlp);
            f(B256::from(key.value().1), &rlp);
        }
        Ok(())
    }

    fn first_branch_under(
        &mut self,
        prefix: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StoreError> {
        first_branch_under(self.branches, &self.account, prefix)
    }
}
