//! An AICoin node: storage, pool, block production and JSON-RPC wired together.
//! [`spawn`] starts one in-process (as anvil's `spawn(NodeConfig)`), so tests and tools can run
//! nodes without a shell; the `aicoin` binary is a thin command line over it.

pub mod chain;
mod config;
mod forward;
mod key;
mod ledger;
mod metrics;
mod producer;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

use aicoin_api::ApiServer;
use aicoin_cluster::{ClusterConfig, ClusterHandle, Fetcher, Member};
use aicoin_primitives::{ChainSpec, dev::dev_signers};
use aicoin_rpc::{RpcState, ServerHandle};
use aicoin_storage::{Store, StoreError};
use aicoin_txpool::TxPool;
use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use tokio::{sync::watch, task::JoinHandle};

pub use aicoin_cluster;
pub use aicoin_primitives::NewBlock;
pub use chain::{BlockTimings, Chain, ChainError, Committed, Produced, Proposal, Sealer};
pub use config::{
    DEFAULT_RPC_PORT, DEFAULT_SYNC_PORT, NodeConfig, PeerConfig, Role, default_data_dir,
    parse_peers,
};
pub use key::{KeyError, VALIDATOR_KEY_FILE, load_or_create as load_or_create_validator_key};
pub use metrics::NodeMetrics;
pub use producer::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "this node's validator {validator} is not an authority of the chain spec ({authorities:?}), so it cannot seal blocks"
    )]
    NotAuthority {
        validator: Address,
        authorities: Vec<Address>,
    },
    #[error("cannot derive the dev accounts: {0}")]
    DevAccounts(String),
    #[error("cannot serve JSON-RPC on {addr}: {source}")]
    Rpc {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve blocks to full nodes on {addr}: {source}")]
    Sync {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Api(#[from] aicoin_api::StartError),
    #[error(transparent)]
    Cluster(#[from] aicoin_cluster::ClusterError),
}

/// A running node. Dropping it leaves the node running until the runtime ends; call
/// [`NodeHandle::stop`] for an orderly shutdown.
#[derive(Debug)]
pub struct NodeHandle {
    rpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    metrics: Arc<NodeMetrics>,
    api: Option<ApiServer>,
    validator: Address,
    beneficiary: Address,
    key_created: bool,
    data_dir: PathBuf,
    spec: Arc<ChainSpec>,
    genesis_hash: B256,
    dev_accounts: Vec<PrivateKeySigner>,
    chain: Arc<Chain>,
    pool: Arc<TxPool>,
    server: ServerHandle,
    shutdown: watch::Sender<bool>,
    cluster: Option<ClusterHandle>,
    sync_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// Where `GET /metrics` is served, when `--metrics-port` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> &Arc<NodeMetrics> {
        &self.metrics
    }

    /// The OpenAI-compatible inference API, when the node serves models.
    pub fn api(&self) -> Option<&ApiServer> {
        self.api.as_ref()
    }

    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.rpc_addr)
    }

    /// The address whose key seals this node's blocks.
    pub fn validator(&self) -> Address {
        self.validator
    }

    /// Where the miner share of block rewards goes.
    pub fn beneficiary(&self) -> Address {
        self.beneficiary
    }

    /// Whether this start created the validator key (a new data dir).
    pub fn key_created(&self) -> bool {
        self.key_created
    }

    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    pub fn spec(&self) -> &Arc<ChainSpec> {
        &self.spec
    }

    pub fn genesis_hash(&self) -> B256 {
        self.genesis_hash
    }

    /// The prefunded `--dev` accounts (empty without `--dev`).
    pub fn dev_accounts(&self) -> &[PrivateKeySigner] {
        &self.dev_accounts
    }

    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    pub fn pool(&self) -> &Arc<TxPool> {
        &self.pool
    }

    /// This validator's cluster membership, when it runs replicated.
    pub fn cluster(&self) -> Option<&ClusterHandle> {
        self.cluster.as_ref()
    }

    /// Where the node-to-node port listens (cluster members, and standalone validators given
    /// `--sync-port`).
    pub fn sync_addr(&self) -> Option<SocketAddr> {
        self.sync_addr
            .or_else(|| self.cluster.as_ref().map(ClusterHandle::sync_addr))
    }

    /// Stops producing, finishes the block in progress, and closes the RPC server.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self.server.stop();
        self.server.stopped().await;
        if let Some(api) = self.api {
            api.stopped().await;
        }
    }
}

/// Starts a node: opens (or creates) its data dir, starts JSON-RPC and block production.
pub async fn spawn(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    config.validate().map_err(NodeError::Config)?;
    let (key, key_created) = key::load_or_create(&config.data_dir)?;
    let dev_accounts = match config.dev {
        true => dev_signers().map_err(|e| NodeError::DevAccounts(e.to_string()))?,
        false => Vec::new(),
    };
    let dev_addresses: Vec<Address> = dev_accounts.iter().map(|s| s.address()).collect();
    let spec = Arc::new(match &config.chain_spec {
        Some(spec) => spec.clone(),
        None => ChainSpec::local(config.chain_id, key.address(), &dev_addresses),
    });
    if config.role != Role::Full && !spec.is_authority(&key.address()) {
        return Err(NodeError::NotAuthority {
            validator: key.address(),
            authorities: spec.authorities.clone(),
        });
    }
    let store = {
        let (dir, spec) = (config.data_dir.clone(), spec.clone());
        tokio::task::spawn_blocking(move || Store::open(&dir, &spec))
            .await
            .map_err(|e| StoreError::Corrupt(format!("opening the store panicked: {e}")))??
    };
    let genesis_hash = store.reader()?.block_hash(0)?.unwrap_or_default();
    let pool = Arc::new(TxPool::new(config.pool.clone()));
    let chain = Arc::new(Chain::new(store.clone(), spec.clone()));
    let beneficiary = config.miner_address.unwrap_or(key.address());
    let metrics = Arc::new(NodeMetrics::new(store.clone(), pool.clone()));
    let (shutdown, shutdown_rx) = watch::channel(false);

    let rpc_state = Arc::new(RpcState {
        store,
        pool: pool.clone(),
        spec: spec.clone(),
        new_blocks: chain.new_blocks(),
        coinbase: beneficiary,
        block_gas_limit: config.gas_limit,
        mining: config.role != Role::Full,
        signers: dev_accounts.clone(),
        limits: config.rpc_limits.clone(),
    });
    let addr = SocketAddr::new(config.host, config.rpc_port);
    let rpc = aicoin_rpc::start(rpc_state, addr, &config.rpc, Some(metrics.rpc.clone()))
        .await
        .map_err(|source| NodeError::Rpc { addr, source })?;
    let rpc_addr = rpc.addr;
    let metrics_addr = match config.metrics_port {
        Some(port) => {
            let addr = SocketAddr::new(config.host, port);
            let bound = metrics::serve(metrics.clone(), addr, shutdown_rx.clone())
                .await
                .map_err(|source| NodeError::Metrics { addr, source })?;
            Some(bound)
        }
        None => None,
    };

    let api = match config.api.clone() {
        Some(api) => {
            let mut stop = shutdown_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let inference = metrics.inference.clone();
            let explicit = api.explicit;
            match aicoin_api::start(api, inference, metrics.registry().clone(), stopped).await {
                Ok(server) => Some(server),
                // Models found lying in the models directory are a convenience: the chain runs
                // without them.
                Err(e) if !explicit => {
                    tracing::warn!(error = %e, "not serving the inference API");
                    None
                }
                Err(e) => {
                    // Leave nothing running behind a node that did not start.
                    let _ = shutdown.send(true);
                    let _ = rpc.handle.stop();
                    return Err(e.into());
                }
            }
        }
        None => None,
    };

    let sealer = Sealer {
        key: key.clone(),
        beneficiary,
        gas_limit: config.gas_limit,
    };
    let mut tasks = Vec::new();
    let mut cluster = None;
    let mut sync_addr = None;
    // Where other nodes forward transactions to this one (behind a proxy, the public URL).
    let rpc_url = config
        .rpc
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{rpc_addr}"));
    let chain_ledger = |sealer| {
        Arc::new(ledger::ChainLedger {
            chain: chain.clone(),
            pool: pool.clone(),
            sealer,
        })
    };
    // How other nodes reach this one, when it serves blocks on `sync_port`.
    let me = |sync_port| Member {
        name: config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{}", rpc_addr.port())),
        sync_url: config
            .advertise_sync_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", SocketAddr::new(config.host, sync_port))),
        rpc_url: rpc_url.clone(),
        priority: config.priority,
    };
    if config.role == Role::Full {
        let ledger = chain_ledger(None);
        let fetcher = Fetcher::new();
        let (target, target_rx) = watch::channel(None);
        tasks.push(tokio::spawn(forward::run(
            pool.clone(),
            target_rx,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(producer_rpc_of_bootnode(
            fetcher.clone(),
            config.bootnodes.clone(),
            target,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(aicoin_cluster::follow::run(
            ledger,
            config.bootnodes.clone(),
            fetcher,
            shutdown_rx,
        )));
    } else if config.replicated() {
        let ledger = chain_ledger(Some(sealer));
        let handle = aicoin_cluster::start(
            ClusterConfig {
                data_dir: config.data_dir.clone(),
                key: key.clone(),
                genesis: genesis_hash,
                validators: spec.authorities.clone(),
                me: me(config.sync_port()),
                listen: SocketAddr::new(config.host, config.sync_port()),
                admin: Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    config.admin_port(),
                )),
                peers: config
                    .peers
                    .iter()
                    .map(|p| format!("http://{}:{}", p.host, p.sync_port))
                    .collect(),
                bootstrap: config.bootstraps_cluster(),
                block_interval: config.block_interval,
            },
            ledger,
        )
        .await?;
        let (target, target_rx) = watch::channel(None);
        tasks.push(tokio::spawn(forward::run(
            pool.clone(),
            target_rx,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(follow_leader(
            handle.changes(),
            key.address(),
            target,
            shutdown_rx,
        )));
        cluster = Some(handle);
    } else {
        if let Some(port) = config.sync_port {
            let addr = SocketAddr::new(config.host, port);
            let served = aicoin_cluster::public::serve(
                chain_ledger(None),
                key.address(),
                me(port),
                genesis_hash,
                addr,
                shutdown_rx.clone(),
            )
            .await;
            match served {
                Ok(bound) => sync_addr = Some(bound),
                Err(source) => {
                    let _ = shutdown.send(true);
                    let _ = rpc.handle.stop();
                    return Err(NodeError::Sync { addr, source });
                }
            }
        }
        tasks.push(tokio::spawn(producer::run(
            chain.clone(),
            pool.clone(),
            sealer,
            config.block_interval,
            metrics.clone(),
            shutdown_rx,
        )));
    }
    tracing::info!(%rpc_addr, validator = %key.address(), chain_id = spec.chain_id, "node started");
    Ok(NodeHandle {
        rpc_addr,
        metrics_addr,
        metrics,
        api,
        validator: key.address(),
        beneficiary,
        key_created,
        data_dir: config.data_dir,
        spec,
        genesis_hash,
        dev_accounts,
        chain,
        pool,
        server: rpc.handle,
        shutdown,
        cluster,
        sync_addr,
        tasks,
    })
}

/// Keeps `target` at the leader's JSON-RPC URL while another node leads (`None` while this one
/// does or none is known). The URL is asked of the leader itself: the membership records where
/// a validator's RPC was when it joined, which a restart may have changed.
async fn follow_leader(
    mut changes: watch::Receiver<aicoin_cluster::Metrics>,
    me: Address,
    target: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let fetcher = Fetcher::new();
    let mut current: Option<Address> = None;
    loop {
        let leader = {
            let metrics = changes.borrow_and_update();
            metrics
                .current_leader
                .filter(|leader| *leader != me)
                .and_then(|leader| {
                    let membership = metrics.membership_config.membership();
                    membership
                        .get_node(&leader)
                        .map(|m| (leader, m.sync_url.clone()))
                })
        };
        if leader.as_ref().map(|(a, _)| *a) != current {
            current = leader.as_ref().map(|(a, _)| *a);
            let url = match &leader {
                Some((_, sync_url)) => match fetcher.status(sync_url).await {
                    Ok(status) => Some(status.member.rpc_url),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot ask the leader for its RPC URL");
                        current = None;
                        None
                    }
                },
                None => None,
            };
            let _ = target.send(url);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            // Retry a leader that did not answer.
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)), if current.is_none() && leader.is_some() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Points `target` at the JSON-RPC URL of the first bootnode that answers.
async fn producer_rpc_of_bootnode(
    fetcher: Fetcher,
    bootnodes: Vec<String>,
    target: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        for bootnode in &bootnodes {
            if let Ok(status) = fetcher.status(bootnode).await {
                let _ = target.send(Some(status.member.rpc_url));
                // The forwarder stops when `target` is dropped.
                let _ = shutdown.wait_for(|stop| *stop).await;
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
