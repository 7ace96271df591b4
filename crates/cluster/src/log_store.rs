//! The raft log and vote, in their own redb file beside the chain (`raft.redb`). Entries are
//! stored as JSON (a block inside is its RLP bytes); every write is one durable redb
//! transaction, so an entry acknowledged to the leader survives `kill -9`.

// openraft's storage traits fix the error type (`StorageError`, ~256 bytes).
#![allow(clippy::result_large_err)]

use std::{fmt::Debug, ops::RangeBounds, sync::Arc};

use openraft::{
    Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
    storage::{LogFlushed, LogState, RaftLogStorage},
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

use crate::types::Raft;

pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type NodeId = alloy_primitives::Address;
type Error = StorageError<NodeId>;

/// The log store; clones share the database (the reader raft hands to replication tasks is one).
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

fn read_err(e: impl std::error::Error + 'static) -> Error {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> Error {
    StorageIOError::write_logs(&e).into()
}

pub(crate) fn get_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, Error> {
    let txn = db.begin_read().map_err(read_err)?;
    let table = match txn.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let Some(value) = table.get(key).map_err(read_err)? else {
        return Ok(None);
    };
    serde_json::from_slice(value.value())
        .map(Some)
        .map_err(read_err)
}

pub(crate) fn put_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value).map_err(write_err)?;
    let txn = db.begin_write().map_err(write_err)?;
    txn.open_table(META)
        .map_err(write_err)?
        .insert(key, bytes.as_slice())
        .map_err(write_err)?;
    txn.commit().map_err(write_err)
}

impl LogStore {
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    fn last_entry(&self) -> Result<Option<Entry<Raft>>, Error> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = match txn.open_table(LOG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let Some((_, value)) = table.last().map_err(read_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(value.value())
            .map(Some)
            .map_err(read_err)
    }

    /// Removes the entries with index in `range` in one transaction, recording `purged` as the
    /// last purged log id when given.
    fn remove(
        &self,
        range: impl RangeBounds<u64>,
        purged: Option<&LogId<NodeId>>,
    ) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            table.retain_in(range, |_, _| false).map_err(write_err)?;
            if let Some(purged) = purged {
                let bytes = serde_json::to_vec(purged).map_err(write_err)?;
                txn.open_table(META)
                    .map_err(write_err)?
                    .insert(LAST_PURGED, bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        txn.commit().map_err(write_err)
    }
}

impl RaftLogReader<Raft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Raft>>, Error> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = match txn.open_table(LOG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(read_err(e)),
        };
        let mut entries = Vec::new();
        for item in table.range(range).map_err(read_err)? {
            let (_, value) = item.map_err(read_err)?;
            entries.push(serde_json::from_slice(value.value()).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<Raft> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<Raft>, Error> {
        let last_purged_log_id: Option<LogId<NodeId>> = get_meta(&self.db, LAST_PURGED)?;
        let last_log_id = self
            .last_entry()?
            .map(|entry| entry.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), Error> {
        put_meta(&self.db, VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, Error> {
        get_meta(&self.db, VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), Error> {
        put_meta(&self.db, COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, Error> {
        Ok(get_meta::<Option<LogId<NodeId>>>(&self.db, COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<Raft>) -> Result<(), Error>
    where
        I: IntoIterator<Item = Entry<Raft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // redb commits durably (fsync) before returning: a few milliseconds, once per batch.
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
                table
                    .insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        txn.commit().map_err(write_err)?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        self.remove(log_id.index.., None)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        self.remove(..=log_id.index, Some(&log_id))
    }
}
