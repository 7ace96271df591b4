//! Durable chain storage on redb: blocks, receipts, the transaction index, current state with its
//! Merkle-Patricia branch nodes, and per-block change history for reads at older blocks.
//!
//! A block and the state it produces are written in one transaction ([`BlockWriter`]), so after a
//! crash the store holds exactly the blocks whose commit returned. A data dir is bound to the
//! genesis of the chain spec it was created with and refuses any other.

mod changes;
mod codec;
mod genesis;
mod proof;
mod reader;
mod tables;
mod trie_source;
mod writer;

use std::path::{Path, PathBuf};

use aicoin_primitives::{ChainSpec, ChainSpecError};
use alloy_primitives::B256;
use alloy_trie::TrieAccount;
use redb::{Database, ReadableDatabase, ReadableTable};

pub use changes::{AccountChange, AccountInfo, StateChanges};
pub use genesis::genesis_block;
pub use proof::{AccountProof, StorageProof};
pub use reader::{Reader, StateView};
pub use writer::BlockWriter;

use tables::{HEADERS, META};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    #[error("the data dir is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "{path} holds chain {stored_chain_id} with genesis {stored}, but this node is configured \
         for chain {chain_id} with genesis {expected}; use another --data-dir, or start with the \
         settings the data dir was created with"
    )]
    GenesisMismatch {
        path: PathBuf,
        stored_chain_id: String,
        stored: B256,
        chain_id: u64,
        expected: B256,
    },
    #[error("expected block {expected} next, got block {got}")]
    NotNextBlock { expected: u64, got: u64 },
    #[error("invalid chain spec: {0}")]
    Spec(#[from] ChainSpecError),
    #[error("cannot create data dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is in use by another process (is a node running on this data dir?)")]
    InUse(PathBuf),
    #[error("{0} holds no chain database")]
    NoChain(PathBuf),
    #[error(
        "{0} was written by aicoin 0.5 or older, whose headers carry a Clique-style seal in \
         extraData; this version keeps headers plain and cannot read it. Move the data dir aside \
         and start a fresh one (or re-sync it from the cluster), or keep running the older \
         version on it"
    )]
    OldFormat(PathBuf),
    #[error(
        "{path} has storage layout {format:?}, which this version (layout {FORMAT}) does not \
         know: it was written by a newer aicoin; run that version on it"
    )]
    UnknownFormat { path: PathBuf, format: Vec<u8> },
    #[error("trie: {0}")]
    Trie(String),
}

macro_rules! from_redb {
    ($($e:ty),*) => {$(
        impl From<$e> for StoreError {
            fn from(e: $e) -> Self {
                Self::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn in_use(e: redb::DatabaseError, dir: &Path) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(dir.to_path_buf()),
        other => other.into(),
    }
}

pub(crate) fn decode_account(bytes: &[u8]) -> Result<TrieAccount, StoreError> {
    alloy_rlp::Decodable::decode(&mut &bytes[..])
        .map_err(|e| StoreError::Corrupt(format!("account: {e}")))
}

const META_GENESIS_HASH: &str = "genesis_hash";
const META_CHAIN_SPEC: &str = "chain_spec";
const META_FORMAT: &str = "format";
/// The storage layout this version writes: 2 keeps the seal beside the header (aicoin 0.6).
const FORMAT: u8 = 2;

/// The first write failure that leaves the database unwritable until it is reopened: after a
/// failed I/O (a full disk, say) redb refuses every write with `PreviousIo`. A node that sees
/// one must say so (its health check) and stop, for its supervisor to restart it once the cause
/// is gone; the last committed block is intact (a commit is all or nothing).
#[derive(Debug, Clone, Default)]
pub(crate) struct Failure(std::sync::Arc<FailureState>);

#[derive(Debug, Default)]
struct FailureState {
    why: std::sync::OnceLock<String>,
    /// Woken once `why` is set.
    noted: tokio::sync::Notify,
}

impl Failure {
    /// `error`, noted first if it is such a failure.
    pub(crate) fn note(&self, error: StoreError) -> StoreError {
        let unwritable = matches!(
            &error,
            StoreError::Db(redb::Error::Io(_) | redb::Error::PreviousIo)
        );
        if unwritable && self.0.why.set(error.to_string()).is_ok() {
            tracing::error!(%error, "the chain database can no longer be written");
            self.0.noted.notify_waiters();
        }
        error
    }

    fn get(&self) -> Option<&str> {
        self.0.why.get().map(String::as_str)
    }

    /// Resolves with the failure once there is one.
    async fn noted(&self) -> &str {
        loop {
            let noted = self.0.noted.notified();
            tokio::pin!(noted);
            // Registered before the check, so a failure noted in between still wakes it.
            noted.as_mut().enable();
            if let Some(why) = self.get() {
                return why;
            }
            noted.await;
        }
    }
}

/// The snapshot of the newest commit that readers share until the next commit replaces it.
#[derive(Clone, Default)]
pub(crate) struct Latest(std::sync::Arc<parking_lot::Mutex<Option<Reader>>>);

impl Latest {
    /// Forgets the shared snapshot: called after every commit, so the next reader sees it and
    /// no snapshot outlives a block (a snapshot keeps the pages it reads from being reused).
    pub(crate) fn forget(&self) {
        let old = self.0.lock().take();
        // Ending its read transaction takes redb's own lock: not while readers wait on ours.
        drop(old);
    }
}

/// The chain database. Cheap to clone; readers run concurrently with the one writer.
#[derive(Clone)]
pub struct Store {
    db: std::sync::Arc<Database>,
    failure: Failure,
    latest: Latest,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the chain database in `dir`, creating it with `spec`'s genesis when new, and
    /// refusing it when it was created for another genesis.
    pub fn open(dir: &Path, spec: &ChainSpec) -> Result<Self, StoreError> {
        spec.validate()?;
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("chain.redb");
        let db = Database::create(&path).map_err(|e| in_use(e, dir))?;
        let store = Self {
            db: std::sync::Arc::new(db),
            failure: Failure::default(),
            latest: Latest::default(),
        };
        let (genesis, state) = genesis_block(spec);
        let genesis_hash = genesis.hash_slow();

        let txn = store.db.begin_write()?;
        let stored = {
            let meta = txn.open_table(META)?;
            let stored_hash = meta
                .get(META_GENESIS_HASH)?
                .map(|v| B256::from_slice(v.value()));
            let stored_spec = meta.get(META_CHAIN_SPEC)?.map(|v| v.value().to_vec());
            let format = meta.get(META_FORMAT)?.map(|v| v.value().to_vec());
            match (&stored_hash, format.as_deref()) {
                (None, _) | (Some(_), Some([FORMAT])) => {}
                (Some(_), None) => return Err(StoreError::OldFormat(dir.to_path_buf())),
                (Some(_), Some(other)) => {
                    return Err(StoreError::UnknownFormat {
                        path: dir.to_path_buf(),
                        format: other.to_vec(),
                    });
                }
            }
            stored_hash.map(|h| (h, stored_spec))
        };
        match stored {
            Some((stored, _)) if stored == genesis_hash => txn.abort()?,
            Some((stored, spec_json)) => {
                let stored_chain_id = spec_json
                    .and_then(|j| serde_json::from_slice::<ChainSpec>(&j).ok())
                    .map_or_else(|| "?".to_string(), |s| s.chain_id.to_string());
                return Err(StoreError::GenesisMismatch {
                    path: dir.to_path_buf(),
                    stored_chain_id,
                    stored,
                    chain_id: spec.chain_id,
                    expected: genesis_hash,
                });
            }
            None => {
                let mut writer = BlockWriter {
                    txn,
                    number: 0,
                    failure: store.failure.clone(),
                    latest: store.latest.clone(),
                };
                let root = writer.apply_state(&state)?;
                if root != genesis.state_root {
                    return Err(StoreError::Trie(format!(
                        "genesis state root {root} differs from the computed {}",
                        genesis.state_root
                    )));
                }
                writer.insert_block(
                    &genesis,
                    genesis_hash,
                    None,
                    &[],
                    &[],
                    &[],
                    spec.genesis_supply(),
                )?;
                {
                    let mut meta = writer.txn.open_table(META)?;
                    meta.insert(META_GENESIS_HASH, genesis_hash.as_slice())?;
                    meta.insert(META_FORMAT, [FORMAT].as_slice())?;
                    let json = serde_json::to_vec(spec)
                        .map_err(|e| StoreError::Corrupt(format!("chain spec: {e}")))?;
                    meta.insert(META_CHAIN_SPEC, json.as_slice())?;
                }
                writer.commit()?;
                tracing::info!(%genesis_hash, chain_id = spec.chain_id, "created chain database");
            }
        }
        Ok(store)
    }

    /// Opens the chain database already in `dir` with the chain spec it was created with.
    pub fn open_existing(dir: &Path) -> Result<(Self, ChainSpec), StoreError> {
        let path = dir.join("chain.redb");
        if !path.exists() {
            return Err(StoreError::NoChain(dir.to_path_buf()));
        }
        let db = Database::open(&path).map_err(|e| in_use(e, dir))?;
        let spec = {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            let json = meta
                .get(META_CHAIN_SPEC)?
                .ok_or_else(|| StoreError::Corrupt("chain spec missing".into()))?;
            serde_json::from_slice::<ChainSpec>(json.value())
                .map_err(|e| StoreError::Corrupt(format!("chain spec: {e}")))?
        };
        drop(db);
        Ok((Self::open(dir, &spec)?, spec))
    }

    /// A consistent read snapshot of the newest commit. Readers asked for between two commits
    /// share one snapshot, opened by the first of them (the lock is held while it opens, so a
    /// commit's invalidation cannot be lost to a snapshot opened before it).
    pub fn reader(&self) -> Result<Reader, StoreError> {
        let mut latest = self.latest.0.lock();
        if let Some(reader) = &*latest {
            return Ok(reader.clone());
        }
        let reader = Reader::open(self.db.begin_read()?)?;
        *latest = Some(reader.clone());
        Ok(reader)
    }

    /// Why the database can no longer be written, once a write failed that way (see
    /// [`Failure`]); `None` while it is healthy.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get()
    }

    /// Resolves with [`Store::failure`] once there is one.
    pub async fn failed(&self) -> &str {
        self.failure.noted().await
    }

    /// Starts writing block `number`, which must follow the current head.
    pub fn begin_block(&self, number: u64) -> Result<BlockWriter, StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.failure.note(e.into()))?;
        let head = {
            let headers = txn.open_table(HEADERS)?;
            let last = headers.last()?;
            last.map(|(k, _)| k.value())
        };
        let expected = head.map_or(0, |h| h + 1);
        if number != expected {
            return Err(StoreError::NotNextBlock {
                expected,
                got: number,
            });
        }
        Ok(BlockWriter {
            txn,
            number,
            failure: self.failure.clone(),
            latest: self.latest.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
