//! Replicated validators on openraft. The raft log carries sealed blocks; a block is imported
//! (and visible over RPC) only once a majority holds it, so a failover never rolls back or forks
//! a block anyone has seen. Only the leader produces. Node-to-node messages are signed by the
//! sender's validator key and accepted only from the chain spec's authorities.
//!
//! The chain itself stays outside this crate, behind [`Ledger`]: this crate replicates opaque,
//! self-verifying blocks.

pub mod admin;
pub mod auth;
mod body;
pub mod consensus_thread;
pub mod fetch;
pub mod follow;
mod log_store;
mod network;
mod producer;
pub mod public;
mod rejections;
mod server;
pub mod share;
mod state_machine;
pub mod types;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Bytes};
use alloy_signer_local::PrivateKeySigner;
use openraft::{Config, SnapshotPolicy};
use tokio::{sync::watch, task::JoinHandle};

pub use admin::{ClusterStatus, MemberStatus};
pub use consensus_thread::ConsensusThread;
pub use fetch::{Fetcher, NodeStatus};
pub use network::CallError;
pub use share::{Hold, ShareError, ShareQueue, Sharer};
pub use types::{ChainPoint, Member};

/// Raft's view of the cluster, as [`ClusterHandle::changes`] reports it.
pub type Metrics = openraft::RaftMetrics<Address, Member>;

use crate::{
    auth::Authenticator,
    log_store::LogStore,
    network::{Caller, Network},
    state_machine::StateMachine,
};

/// An error from the chain behind the cluster.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The bytes are not a sealed block.
    #[error("not a sealed block: {0}")]
    Decode(#[from] alloy_rlp::Error),
    /// The chain refused the block, or could not read or write its store.
    #[error(transparent)]
    Chain(Box<dyn std::error::Error + Send + Sync>),
    /// A block the store's head says exists is not there.
    #[error("block {0} is missing from the store")]
    Missing(u64),
    /// Asked to build a block on a node that holds no validator key.
    #[error("this node does not seal blocks")]
    NotASealer,
    /// The blocking task that ran the ledger call died.
    #[error("the ledger call did not finish: {0}")]
    Aborted(#[from] tokio::task::JoinError),
}

impl LedgerError {
    /// The chain's own error, kept whole.
    pub fn chain(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Chain(Box::new(error))
    }
}

/// The chain as the cluster sees it. Every method may block (storage, execution): the cluster
/// calls them off the async workers.
pub trait Ledger: Send + Sync + 'static {
    /// The last block.
    fn head(&self) -> Result<ChainPoint, LedgerError>;
    /// Imports a committed block (RLP). Idempotent: a block already stored at its height is
    /// accepted when identical, refused when not.
    fn apply(&self, block: &[u8]) -> Result<ChainPoint, LedgerError>;
    /// Up to `max` consecutive stored blocks (RLP) from `from`, stopping once `max_bytes` is
    /// passed (at least one block when `from` exists).
    fn blocks(&self, from: u64, max: usize, max_bytes: usize) -> Result<Vec<Bytes>, LedgerError>;
    /// Builds and seals the next block on the head from the pending transactions (the leader),
    /// without storing it.
    fn build(&self) -> Result<Bytes, LedgerError>;
    /// Pools transactions another validator admitted (EIP-2718 bytes), so they survive that
    /// validator's crash: what became of each.
    fn hold(&self, transactions: &[Bytes]) -> Vec<Hold> {
        transactions
            .iter()
            .map(|_| Hold::Refused("this node pools no transactions".into()))
            .collect()
    }
    /// The protocol upgrade governance scheduled that this node is older than, if any.
    fn pending_upgrade(&self) -> Option<PendingUpgrade> {
        None
    }
}

/// A protocol version the chain adopts from `activation_block`, newer than this node's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingUpgrade {
    pub version: String,
    pub activation_block: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot open the raft log {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("invalid raft configuration: {0}")]
    Config(#[from] Box<openraft::ConfigError>),
    #[error("cannot open the raft state: {0}")]
    State(#[from] Box<openraft::StorageError<Address>>),
    #[error("raft stopped: {0}")]
    Fatal(#[from] Box<openraft::error::Fatal<Address>>),
    #[error("cannot serve {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How a validator joins its cluster.
#[derive(Debug)]
pub struct ClusterConfig {
    /// Where `raft.redb` lives (the node's data dir).
    pub data_dir: PathBuf,
    /// This validator's key: it signs blocks and node-to-node messages.
    pub key: PrivateKeySigner,
    /// The chain's genesis hash: messages for another chain are refused.
    pub genesis: B256,
    /// Who may take part: the chain spec's authorities.
    pub validators: Vec<Address>,
    /// How others reach this node (its priority included).
    pub me: Member,
    /// Where the node-to-node transport listens.
    pub listen: SocketAddr,
    /// Where the localhost admin API listens (`aicoin cluster …`); off when `None`.
    pub admin: Option<SocketAddr>,
    /// Sync URLs of the other initial members.
    pub peers: Vec<String>,
    /// Whether this node creates the cluster (of itself and `peers`) when none exists yet.
    pub bootstrap: bool,
    pub block_interval: Duration,
    /// Where blocks are built and committed ones imported.
    pub consensus: ConsensusThread,
    /// Transactions this node admitted, to be held by another validator before they are
    /// acknowledged (see [`share`]).
    pub share: Option<ShareQueue>,
}

/// What the transport, the admin API and the producer share.
pub struct Shared {
    raft: openraft::Raft<types::Raft>,
    auth: Arc<Authenticator>,
    caller: Caller,
    fetcher: Fetcher,
    ledger: Arc<dyn Ledger>,
    me: Member,
    rejections: rejections::Rejections,
    /// Large request bodies being read (see [`body::MAX_LARGE_BODIES`]).
    large_bodies: Arc<tokio::sync::Semaphore>,
}

/// A running cluster member.
pub struct ClusterHandle {
    shared: Arc<Shared>,
    sync_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("sync_addr", &self.sync_addr)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

/// Raft timing. Heartbeats every 250 ms (also how long an append may take, a batch of blocks
/// and the follower's fsync included). Priority `p` (1 highest) elects within its own band,
/// `[1000 + 500 (p - 1), 1250 + 500 (p - 1))` ms, so the highest-priority live node times out
/// first; a follower also honours the leader's lease (its own band's end) before voting, so a
/// dead leader is replaced after about lease + timeout: ~3.5 s for priority 2.
fn raft_config(priority: u32) -> Result<Config, ClusterError> {
    let band = u64::from(priority.clamp(1, 16) - 1) * 500;
    Config {
        cluster_name: "aicoin".into(),
        heartbeat_interval: 250,
        election_timeout_min: 1000 + band,
        election_timeout_max: 1250 + band,
        install_snapshot_timeout: 600_000,
        max_payload_entries: 64,
        // A snapshot is a pointer into the chain: cheap to take. Members more than this many
        // entries behind install it and fetch the blocks; closer ones replay the log.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1024),
        max_in_snapshot_log_to_keep: 1024,
        purge_batch_size: 256,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Box::new(e).into())
}

/// Starts this validator's raft member, its transport, admin API and producer.
pub async fn start(
    config: ClusterConfig,
    ledger: Arc<dyn Ledger>,
) -> Result<ClusterHandle, ClusterError> {
    let path = config.data_dir.join("raft.redb");
    let db = Arc::new(
        redb::Database::create(&path).map_err(|source| ClusterError::Open {
            path: path.clone(),
            source,
        })?,
    );
    let me = config.key.address();
    let auth = Arc::new(Authenticator::new(
        config.key.clone(),
        config.genesis,
        config.validators.iter().copied(),
    ));
    let caller = Caller::new(auth.clone());
    let fetcher = Fetcher::new();
    let state_machine = StateMachine::open(
        db.clone(),
        ledger.clone(),
        fetcher.clone(),
        config.consensus.clone(),
    )
    .map_err(Box::new)?;
    let raft = openraft::Raft::new(
        me,
        Arc::new(raft_config(config.me.priority)?),
        Network::new(caller.clone()),
        LogStore::new(db),
        state_machine,
    )
    .await
    .map_err(Box::new)?;
    let shared = Arc::new(Shared {
        raft: raft.clone(),
        auth,
        caller,
        fetcher: fetcher.clone(),
        ledger: ledger.clone(),
        me: config.me.clone(),
        rejections: Default::default(),
        large_bodies: Arc::new(tokio::sync::Semaphore::new(body::MAX_LARGE_BODIES)),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let sync_addr = server::serve(shared.clone(), config.listen, shutdown_rx.clone())
        .await
        .map_err(|source| ClusterError::Bind {
            what: "the node-to-node transport",
            addr: config.listen,
            source,
        })?;
    let admin_addr = match config.admin {
        Some(addr) => Some(
            admin::serve(shared.clone(), addr, shutdown_rx.clone())
                .await
                .map_err(|source| ClusterError::Bind {
                    what: "the cluster admin API",
                    addr,
                    source,
                })?,
        ),
        None => None,
    };
    let mut tasks = vec![tokio::spawn(producer::run(
        raft.clone(),
        ledger,
        config.consensus.clone(),
        me,
        config.block_interval,
        shutdown_rx.clone(),
    ))];
    if let Some(queue) = config.share {
        tasks.push(tokio::spawn(share::run(
            shared.clone(),
            queue,
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(trust_the_membership(
        raft.metrics(),
        shared.auth.clone(),
        shutdown_rx.clone(),
    )));
    let fresh = raft
        .is_initialized()
        .await
        .map(|initialized| !initialized)
        .unwrap_or(false);
    if config.bootstrap && fresh {
        let (shared, peers, mut stop) = (shared.clone(), config.peers.clone(), shutdown_rx);
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = bootstrap(&shared, &peers) => {}
                _ = stop.changed() => {}
            }
        }));
    }
    tracing::info!(validator = %me, %sync_addr, admin = ?admin_addr, "cluster member started");
    Ok(ClusterHandle {
        shared,
        sync_addr,
        admin_addr,
        shutdown,
        tasks,
    })
}

/// Keeps the transport's trust on raft's memberships: a validator removed from the cluster is
/// refused at once, though the chain spec still names it (see [`Authenticator::set_members`]).
async fn trust_the_membership(
    mut metrics: watch::Receiver<Metrics>,
    auth: Arc<Authenticator>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let members: Vec<Address> = {
            let metrics = metrics.borrow_and_update();
            metrics
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect()
        };
        auth.set_members(members);
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// Creates the cluster of this node and `peers` once every peer answers, unless one of them
/// already belongs to a cluster (then this node waits to be added).
async fn bootstrap(shared: &Arc<Shared>, peers: &[String]) {
    let mut members = BTreeMap::from([(shared.auth.address(), shared.me.clone())]);
    let started = Instant::now();
    for url in peers {
        loop {
            match shared.fetcher.status(url).await {
                Ok(status) if status.genesis != shared.auth.chain() => {
                    tracing::error!(%url, theirs = %status.genesis, ours = %shared.auth.chain(),
                        "peer runs another chain; not creating the cluster");
                    return;
                }
                Ok(status) if status.leader.is_some() || status.term > 0 => {
                    tracing::info!(%url, "peer already belongs to a cluster; waiting to be added");
                    return;
                }
                Ok(status) => {
                    members.insert(status.address, status.member);
                    break;
                }
                Err(e) => {
                    if started.elapsed() > Duration::from_secs(5) {
                        tracing::info!(%url, error = %e, "waiting for peer to start");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    match shared.raft.initialize(members.clone()).await {
        Ok(()) => tracing::info!(members = members.len(), "created the validator cluster"),
        Err(e) => tracing::info!(error = %e, "cluster already initialized"),
    }
}

impl ClusterHandle {
    pub fn sync_addr(&self) -> SocketAddr {
        self.sync_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The current leader and how to reach it.
    pub fn leader(&self) -> Option<(Address, Member)> {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let member = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .clone();
        Some((leader, member))
    }

    pub fn is_leader(&self) -> bool {
        self.leader()
            .is_some_and(|(leader, _)| leader == self.shared.auth.address())
    }

    /// Fires whenever raft's view changes (leader, term, applied entries).
    pub fn changes(&self) -> watch::Receiver<Metrics> {
        self.shared.raft.metrics()
    }

    /// Stops producing, serving and replicating.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.shared.raft.shutdown().await;
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
