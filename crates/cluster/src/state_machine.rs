//! Raft's state machine is the chain: applying a committed entry imports its block through the
//! [`Ledger`]. A snapshot is a pointer into the chain (height and hash), not a copy of state:
//! a member too far behind for the log installs it by fetching the missing blocks from its peers
//! and importing them, each checked against its seal and re-executed.

// openraft's storage traits fix the error type (`StorageError`, ~256 bytes).
#![allow(clippy::result_large_err)]

use std::{io::Cursor, sync::Arc};

use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
    storage::{RaftStateMachine, Snapshot},
};
use redb::Database;
use serde::{Deserialize, Serialize};

use crate::{
    ConsensusThread, Ledger,
    fetch::Fetcher,
    log_store::{get_meta, put_meta},
    types::{Applied, ChainPoint, Member, Raft},
};

type NodeId = alloy_primitives::Address;
type Error = StorageError<NodeId>;

const APPLIED: &str = "applied";

/// What the state machine records after every batch: the last applied entry and membership.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    log_id: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
}

/// A snapshot's payload: the block the chain had reached.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    head: ChainPoint,
}

pub struct StateMachine {
    db: Arc<Database>,
    ledger: Arc<dyn Ledger>,
    fetcher: Fetcher,
    /// Where committed blocks are imported.
    consensus: ConsensusThread,
    state: AppliedState,
}

fn sm_err(e: impl std::error::Error + 'static) -> Error {
    StorageIOError::write_state_machine(&e).into()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl StateMachine {
    pub fn open(
        db: Arc<Database>,
        ledger: Arc<dyn Ledger>,
        fetcher: Fetcher,
        consensus: ConsensusThread,
    ) -> Result<Self, Error> {
        let state = get_meta(&db, APPLIED)?.unwrap_or_default();
        Ok(Self {
            db,
            ledger,
            fetcher,
            consensus,
            state,
        })
    }

    async fn head(&self) -> Result<ChainPoint, Error> {
        let ledger = self.ledger.clone();
        self.consensus
            .run(move || ledger.head())
            .await
            .map_err(sm_err)?
            .map_err(sm_err)
    }

    fn snapshot(&self, head: ChainPoint) -> Result<Snapshot<Raft>, Error> {
        let data = serde_json::to_vec(&SnapshotData { head }).map_err(sm_err)?;
        let snapshot_id = match &self.state.log_id {
            Some(id) => format!("{}-{}-block-{}", id.leader_id, id.index, head.number),
            None => format!("block-{}", head.number),
        };
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: self.state.log_id,
                last_membership: self.state.membership.clone(),
                snapshot_id,
            },
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// A snapshot taken when raft asks for a builder, so that it matches the applied log id.
pub struct Builder(Option<Snapshot<Raft>>, Option<Error>);

impl RaftSnapshotBuilder<Raft> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Raft>, Error> {
        match (self.0.take(), self.1.take()) {
            (Some(snapshot), _) => Ok(snapshot),
            (None, Some(e)) => Err(e),
            (None, None) => Err(sm_err(Message("snapshot already built".into()))),
        }
    }
}

impl RaftStateMachine<Raft> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), Error> {
        Ok((self.state.log_id, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, Error>
    where
        I: IntoIterator<Item = Entry<Raft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = Vec::new();
        for entry in entries {
            let result = match entry.payload {
                EntryPayload::Blank => Applied(None),
                EntryPayload::Normal(block) => {
                    let ledger = self.ledger.clone();
                    let point = self
                        .consensus
                        .run(move || ledger.apply(&block.0))
                        .await
                        .map_err(sm_err)?
                        .map_err(|e| {
                            // A committed block this node cannot import: stop rather than diverge.
                            tracing::error!(index = entry.log_id.index, error = %e,
                                "cannot import a committed block; stopping replication");
                            Error::from(StorageIOError::apply(entry.log_id, &e))
                        })?;
                    Applied(Some(point))
                }
                EntryPayload::Membership(membership) => {
                    self.state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied(None)
                }
            };
            self.state.log_id = Some(entry.log_id);
            applied.push(result);
        }
        // Recorded after the blocks: a crash in between replays entries whose blocks are stored,
        // which the ledger accepts as already known.
        put_meta(&self.db, APPLIED, &self.state)?;
        Ok(applied)
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        match self.head().await.and_then(|head| self.snapshot(head)) {
            Ok(snapshot) => Builder(Some(snapshot), None),
            Err(e) => Builder(None, Some(e)),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let read_err = |e: &dyn std::error::Error| -> Error {
            StorageIOError::read_snapshot(Some(meta.signature()), &Message(e.to_string())).into()
        };
        let data: SnapshotData =
            serde_json::from_slice(&snapshot.into_inner()).map_err(|e| read_err(&e))?;
        let peers: Vec<String> = meta
            .last_membership
            .nodes()
            .map(|(_, member)| member.sync_url.clone())
            .collect();
        tracing::info!(
            target = data.head.number,
            "installing a snapshot: fetching blocks"
        );
        self.fetcher
            .sync_to(&self.ledger, &peers, data.head)
            .await
            .map_err(|e| read_err(&e))?;
        self.state = AppliedState {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        put_meta(&self.db, APPLIED, &self.state)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Raft>>, Error> {
        let head = self.head().await?;
        self.snapshot(head).map(Some)
    }
}
