//! Reading a consistent snapshot: blocks, receipts, transaction locations, and state at the head
//! or at any earlier block. A [`Reader`] sees the chain as of when it was opened, whatever is
//! committed meanwhile. Readers opened between two commits share one snapshot, with the head's
//! number and state tables opened once for all of them (see [`crate::Store::reader`]).

use std::sync::Arc;

use aicoin_primitives::{Seal, SealedBlock, TxReceipt};
use alloy_consensus::{Header, TxEnvelope};
use alloy_primitives::{Address, B256, Bytes, Log, U256, keccak256};
use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable};

use crate::{StoreError, decode_account, tables::*, writer::META_ISSUED};

/// A read snapshot of the store. Cheap to clone.
#[derive(Clone)]
pub struct Reader(pub(crate) Arc<Snapshot>);

pub(crate) struct Snapshot {
    txn: ReadTransaction,
    head: u64,
    state: Arc<StateTables>,
}

/// The state tables of one snapshot, opened once: redb checks a table's key and value type
/// names, formatted as strings, on every `open_table`, which cost more than the read itself on
/// a point lookup such as `eth_getBalance` (a third of a loaded node's CPU, measured).
struct StateTables {
    accounts: ReadOnlyTable<Hashed, &'static [u8]>,
    storage: ReadOnlyTable<(Hashed, Hashed), [u8; 32]>,
    code: ReadOnlyTable<[u8; 32], &'static [u8]>,
}

fn decode_rlp<T: alloy_rlp::Decodable>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    T::decode(&mut &bytes[..]).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Reader {
    pub(crate) fn open(txn: ReadTransaction) -> Result<Self, StoreError> {
        let head = {
            let table = txn.open_table(HEADERS)?;
            let last = table.last()?;
            last.map(|(k, _)| k.value())
                .ok_or_else(|| StoreError::Corrupt("no genesis block".into()))?
        };
        let state = Arc::new(StateTables {
            accounts: txn.open_table(ACCOUNTS)?,
            storage: txn.open_table(STORAGE)?,
            code: txn.open_table(CODE)?,
        });
        Ok(Self(Arc::new(Snapshot { txn, head, state })))
    }

    pub(crate) fn txn(&self) -> &ReadTransaction {
        &self.0.txn
    }

    /// Number of the newest block (0 when only genesis exists).
    pub fn head_number(&self) -> Result<u64, StoreError> {
        Ok(self.0.head)
    }

    pub fn header(&self, number: u64) -> Result<Option<Header>, StoreError> {
        let table = self.txn().open_table(HEADERS)?;
        let value = table.get(number)?;
        value.map(|v| decode_rlp(v.value(), "header")).transpose()
    }

    /// The producer's seal of block `number` (genesis has none).
    pub fn seal(&self, number: u64) -> Result<Option<Seal>, StoreError> {
        // The table is created with block 1's seal: a chain of genesis alone has none.
        let table = match self.txn().open_table(SEALS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let value = table.get(number)?;
        Ok(value.map(|v| Seal::from(v.value())))
    }

    /// Block `number` with its seal and transactions, as blocks travel between nodes (none for
    /// genesis, which no one sealed).
    pub fn sealed_block(&self, number: u64) -> Result<Option<SealedBlock>, StoreError> {
        let (Some(header), Some(seal)) = (self.header(number)?, self.seal(number)?) else {
            return Ok(None);
        };
        Ok(Some(SealedBlock {
            header,
            seal,
            transactions: self.transactions(number)?,
        }))
    }

    pub fn block_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        let table = self.txn().open_table(BLOCK_HASHES)?;
        let value = table.get(number)?;
        Ok(value.map(|v| B256::from(v.value())))
    }

    pub fn block_number(&self, hash: &B256) -> Result<Option<u64>, StoreError> {
        let table = self.txn().open_table(BLOCK_NUMBERS)?;
        let value = table.get(hash.0)?;
        Ok(value.map(|v| v.value()))
    }

    pub fn transactions(&self, number: u64) -> Result<Vec<TxEnvelope>, StoreError> {
        let table = self.txn().open_table(BODIES)?;
        let value = table.get(number)?;
        value.map_or(Ok(Vec::new()), |v| decode_rlp(v.value(), "block body"))
    }

    pub fn senders(&self, number: u64) -> Result<Vec<Address>, StoreError> {
        let table = self.txn().open_table(SENDERS)?;
        let value = table.get(number)?;
        Ok(value.map_or_else(Vec::new, |v| {
            v.value()
                .chunks_exact(20)
                .map(Address::from_slice)
                .collect()
        }))
    }

    pub fn receipts(&self, number: u64) -> Result<Vec<TxReceipt>, StoreError> {
        let table = self.txn().open_table(RECEIPTS)?;
        let value = table.get(number)?;
        value.map_or(Ok(Vec::new()), |v| decode_rlp(v.value(), "receipts"))
    }

    /// The logs of block `number`'s end-of-block system step.
    pub fn system_logs(&self, number: u64) -> Result<Vec<Log>, StoreError> {
        let table = match self.txn().open_table(SYSTEM_LOGS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let value = table.get(number)?;
        value.map_or(Ok(Vec::new()), |v| decode_rlp(v.value(), "system logs"))
    }

    /// The block number and index of a mined transaction.
    pub fn transaction_location(&self, hash: &B256) -> Result<Option<(u64, u32)>, StoreError> {
        let table = self.txn().open_table(TX_LOCATIONS)?;
        let value = table.get(hash.0)?;
        Ok(value.map(|v| v.value()))
    }

    /// Genesis allocations plus every block reward so far.
    pub fn issued(&self) -> Result<U256, StoreError> {
        let table = self.txn().open_table(META)?;
        let value = table.get(META_ISSUED)?;
        let bytes = value.ok_or_else(|| StoreError::Corrupt("issuance total missing".into()))?;
        let bytes: [u8; 32] = bytes
            .value()
            .try_into()
            .map_err(|_| StoreError::Corrupt("issuance total malformed".into()))?;
        Ok(U256::from_be_bytes(bytes))
    }

    /// The head's state root recomputed from every stored account, ignoring the stored branch
    /// nodes: a consistency check of the incremental trie, and what a node without one would pay
    /// for every block. O(accounts).
    pub fn rebuild_state_root(&self) -> Result<B256, StoreError> {
        let accounts = self.txn().open_table(ACCOUNTS)?;
        let mut builder = HashBuilder::default();
        for entry in accounts.iter()? {
            let (key, value) = entry?;
            builder.add_leaf(Nibbles::unpack(key.value()), value.value());
        }
        Ok(builder.root())
    }

    /// The state after block `at` (the head's state when `at` is the head or later).
    pub fn state_at(&self, at: u64) -> Result<StateView, StoreError> {
        let historical = at < self.0.head;
        Ok(StateView {
            tables: self.0.state.clone(),
            history: match historical {
                true => Some(History {
                    block: at,
                    accounts: self.txn().open_table(ACCOUNT_HISTORY)?,
                    storage: self.txn().open_table(STORAGE_HISTORY)?,
                }),
                false => None,
            },
        })
    }
}

struct History {
    block: u64,
    accounts: ReadOnlyTable<(Hashed, u64), &'static [u8]>,
    storage: ReadOnlyTable<(Hashed, Hashed, u64), [u8; 32]>,
}

/// Account, storage and code reads against one block's state. Owns its tables, so it can be
/// moved into an EVM database or across threads.
pub struct StateView {
    tables: Arc<StateTables>,
    history: Option<History>,
}

impl StateView {
    pub fn account(&self, address: &Address) -> Result<Option<TrieAccount>, StoreError> {
        let h = keccak256(address).0;
        if let Some(history) = &self.history {
            let mut later = history
                .accounts
                .range((h, history.block + 1)..=(h, u64::MAX))?;
            if let Some(entry) = later.next() {
                let (_, before) = entry?;
                let before = before.value();
                return match before.is_empty() {
                    true => Ok(None),
                    false => decode_account(before).map(Some),
                };
            }
        }
        let value = self.tables.accounts.get(h)?;
        value.map(|v| decode_account(v.value())).transpose()
    }

    pub fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StoreError> {
        let h = keccak256(address).0;
        let hs = keccak256(slot.to_be_bytes::<32>()).0;
        if let Some(history) = &self.history {
            let mut later = history
                .storage
                .range((h, hs, history.block + 1)..=(h, hs, u64::MAX))?;
            if let Some(entry) = later.next() {
                return Ok(U256::from_be_bytes(entry?.1.value()));
            }
        }
        let value = self.tables.storage.get((h, hs))?;
        Ok(value.map_or(U256::ZERO, |v| U256::from_be_bytes(v.value())))
    }

    pub fn code(&self, hash: &B256) -> Result<Option<Bytes>, StoreError> {
        let value = self.tables.code.get(hash.0)?;
        Ok(value.map(|v| Bytes::copy_from_slice(v.value())))
    }
}
