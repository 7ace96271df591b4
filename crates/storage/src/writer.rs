//! Writing one block: its state changes (with history and trie updates) and its header, body and
//! receipts, all in one redb write transaction. Nothing is visible until [`BlockWriter::commit`];
//! dropping the writer instead discards everything.

use std::collections::HashSet;

use aicoin_primitives::{Seal, TxReceipt};
use aicoin_trie::{EMPTY_ROOT_HASH, PrefixSet, TrieUpdates, compute_root};
use alloy_consensus::{Header, TxEnvelope};
use alloy_primitives::{Address, B256, Log, U256, keccak256};
use alloy_trie::TrieAccount;
use redb::{ReadableTable, Table, WriteTransaction};

use crate::{
    StoreError,
    changes::StateChanges,
    codec::{encode_branch, path_key},
    decode_account,
    tables::*,
    trie_source::{AccountTrie, StorageTrie},
};

/// An open write transaction for block `number`.
pub struct BlockWriter {
    pub(crate) txn: WriteTransaction,
    pub(crate) number: u64,
    pub(crate) failure: crate::Failure,
    pub(crate) latest: crate::Latest,
}

impl BlockWriter {
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Applies the block's state changes, records what each changed entry held before (for reads
    /// at older blocks), and returns the new state root.
    pub fn apply_state(&mut self, changes: &StateChanges) -> Result<B256, StoreError> {
        let n = self.number;
        let mut code = self.txn.open_table(CODE)?;
        for (hash, bytes) in &changes.code {
            code.insert(hash.0, bytes.as_ref())?;
        }
        let mut accounts = self.txn.open_table(ACCOUNTS)?;
        let mut storage = self.txn.open_table(STORAGE)?;
        let mut storage_trie = self.txn.open_table(STORAGE_TRIE)?;
        let mut account_history = self.txn.open_table(ACCOUNT_HISTORY)?;
        let mut storage_history = self.txn.open_table(STORAGE_HISTORY)?;

        let mut changed_accounts = Vec::with_capacity(changes.accounts.len());
        for change in &changes.accounts {
            let h = keccak256(change.address).0;
            let old_rlp = accounts.get(h)?.map(|v| v.value().to_vec());
            let old = old_rlp.as_deref().map(decode_account).transpose()?;
            let mut storage_root = old.as_ref().map_or(EMPTY_ROOT_HASH, |a| a.storage_root);

            let mut changed_slots = Vec::new();
            let mut recorded = HashSet::new();
            if change.info.is_none() || change.wipe_storage {
                let slots: Vec<(Hashed, [u8; 32])> = storage
                    .range((h, [0u8; 32])..=(h, [0xffu8; 32]))?
                    .map(|e| e.map(|(k, v)| (k.value().1, v.value())))
                    .collect::<Result<_, _>>()?;
                for (slot, value) in slots {
                    recorded.insert(slot);
                    storage_history.insert((h, slot, n), value)?;
                    storage.remove((h, slot))?;
                    changed_slots.push(B256::from(slot));
                }
                remove_prefix(&mut storage_trie, &h)?;
                storage_root = EMPTY_ROOT_HASH;
            }
            if change.info.is_some() {
                for (slot, value) in &change.storage {
                    let hs = keccak256(slot.to_be_bytes::<32>()).0;
                    let before = storage.get((h, hs))?.map_or([0u8; 32], |v| v.value());
                    let after = value.to_be_bytes::<32>();
                    if before == after {
                        continue;
                    }
                    if recorded.insert(hs) {
                        storage_history.insert((h, hs, n), before)?;
                    }
                    if value.is_zero() {
                        storage.remove((h, hs))?;
                    } else {
                        storage.insert((h, hs), after)?;
                    }
                    changed_slots.push(B256::from(hs));
                }
                if !changed_slots.is_empty() {
                    let mut source = StorageTrie {
                        account: h,
                        leaves: &storage,
                        branches: &storage_trie,
                    };
                    let (root, updates) =
                        compute_root(&mut source, &PrefixSet::new(changed_slots))?;
                    write_trie_updates(&mut storage_trie, &h, updates)?;
                    storage_root = root;
                }
            }

            let new = change
                .info
                .map(|i| TrieAccount::new(i.nonce, i.balance, storage_root, i.code_hash));
            if new == old {
                continue;
            }
            account_history.insert((h, n), old_rlp.as_deref().unwrap_or_default())?;
            match &new {
                Some(account) => accounts.insert(h, alloy_rlp::encode(account).as_slice())?,
                None => accounts.remove(h)?,
            };
            changed_accounts.push(B256::from(h));
        }

        let mut account_trie = self.txn.open_table(ACCOUNT_TRIE)?;
        let mut source = AccountTrie {
            leaves: &accounts,
            branches: &account_trie,
        };
        let (root, updates) = compute_root(&mut source, &PrefixSet::new(changed_accounts))?;
        write_trie_updates(&mut account_trie, &[], updates)?;
        Ok(root)
    }

    /// Stores the block with its seal (none for genesis), its senders and receipts, indexes its
    /// transactions, and records the total issued after it.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_block(
        &mut self,
        header: &Header,
        hash: B256,
        seal: Option<&Seal>,
        transactions: &[TxEnvelope],
        senders: &[Address],
        receipts: &[TxReceipt],
        issued: U256,
    ) -> Result<(), StoreError> {
        let n = self.number;
        if header.number != n {
            return Err(StoreError::NotNextBlock {
                expected: n,
                got: header.number,
            });
        }
        self.txn
            .open_table(HEADERS)?
            .insert(n, alloy_rlp::encode(header).as_slice())?;
        if let Some(seal) = seal {
            self.txn.open_table(SEALS)?.insert(n, seal.0)?;
        }
        self.txn.open_table(BLOCK_HASHES)?.insert(n, hash.0)?;
        self.txn.open_table(BLOCK_NUMBERS)?.insert(hash.0, n)?;
        self.txn
            .open_table(BODIES)?
            .insert(n, rlp_list(transactions).as_slice())?;
        let senders_bytes: Vec<u8> = senders.iter().flat_map(|a| a.0.0).collect();
        self.txn
            .open_table(SENDERS)?
            .insert(n, senders_bytes.as_slice())?;
        self.txn
            .open_table(RECEIPTS)?
            .insert(n, rlp_list(receipts).as_slice())?;
        let mut locations = self.txn.open_table(TX_LOCATIONS)?;
        for (i, tx) in transactions.iter().enumerate() {
            locations.insert(tx.tx_hash().0, (n, i as u32))?;
        }
        self.txn
            .open_table(META)?
            .insert(META_ISSUED, issued.to_be_bytes::<32>().as_slice())?;
        Ok(())
    }

    /// Stores the logs of the block's end-of-block system step.
    pub fn insert_system_logs(&mut self, logs: &[Log]) -> Result<(), StoreError> {
        if !logs.is_empty() {
            self.txn
                .open_table(SYSTEM_LOGS)?
                .insert(self.number, rlp_list(logs).as_slice())?;
        }
        Ok(())
    }

    /// Makes the block durable and visible to readers.
    pub fn commit(self) -> Result<(), StoreError> {
        let (failure, latest) = (self.failure, self.latest);
        let committed = self.txn.commit();
        // Even a failed commit may have published its header before the error (a failed flush).
        latest.forget();
        committed.map_err(|e| failure.note(e.into()))
    }
}

pub(crate) const META_ISSUED: &str = "issued";

fn rlp_list<T: alloy_rlp::Encodable>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    alloy_rlp::encode_list(items, &mut out);
    out
}

fn write_trie_updates(
    table: &mut Table<&'static [u8], &'static [u8]>,
    prefix: &[u8],
    updates: TrieUpdates,
) -> Result<(), StoreError> {
    for path in updates.removed {
        table.remove(path_key(prefix, &path).as_slice())?;
    }
    for (path, node) in updates.updated {
        table.insert(
            path_key(prefix, &path).as_slice(),
            encode_branch(&node).as_slice(),
        )?;
    }
    Ok(())
}

/// Deletes every trie node stored under `prefix` (one account's storage trie).
fn remove_prefix(
    table: &mut Table<&'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<(), StoreError> {
    let keys: Vec<Vec<u8>> = table
        .range::<&[u8]>(prefix..)?
        .map(|e| e.map(|(k, _)| k.value().to_vec()))
        .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(prefix)))
        .collect::<Result<_, _>>()?;
    for key in keys {
        table.remove(key.as_slice())?;
    }
    Ok(())
}
