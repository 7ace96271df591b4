//! An AICoin node: storage, pool, block production and JSON-RPC wired together.
//! [`spawn`] starts one in-process (as anvil's `spawn(NodeConfig)`), so tests and tools can run
//! nodes without a shell; the `aicoin` binary is a thin command line over it. What each role
//! runs is in `roles`; what start-up has set running, and its cleanup, in `services`.

pub mod chain;
mod compute;
mod config;
mod forward;
mod key;
mod ledger;
mod metrics;
mod producer;
mod roles;
mod services;
pub mod upgrade;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use aicoin_api::ApiServer;
use aicoin_cluster::ClusterHandle;
use aicoin_primitives::{ChainSpec, dev::dev_signers};
use aicoin_rpc::RpcState;
use aicoin_storage::{Store, StoreError};
use aicoin_txpool::TxPool;
use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;

use crate::{roles::Core, services::Services};

pub use aicoin_cluster;
pub use aicoin_primitives::NewBlock;
pub use chain::{BlockTimings, Chain, ChainError, Committed, Produced, Proposal, Sealer};
pub use config::{
    ConfigError, DEFAULT_RPC_PORT, DEFAULT_SYNC_PORT, NodeConfig, PeerConfig, ProbeConfig,
    ProvideConfig, Role, default_data_dir, parse_peers,
};
pub use key::{KeyError, VALIDATOR_KEY_FILE, load_or_create as load_or_create_validator_key};
pub use metrics::NodeMetrics;
pub use producer::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
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
    #[error(
        "cannot serve the shard {spec}: no such model among the node's (see --model and --models-dir)"
    )]
    ShardModelMissing { spec: aicoin_shard::ShardSpec },
    #[error(
        "cannot serve the shard {spec}: another --shard names the same model, and a node serves one range of it"
    )]
    ShardTwice { spec: aicoin_shard::ShardSpec },
    #[error("cannot serve the shard {spec}: {source}")]
    ShardLoad {
        spec: aicoin_shard::ShardSpec,
        source: aicoin_inference::InferenceError,
    },
    #[error(transparent)]
    Cluster(#[from] aicoin_cluster::ClusterError),
    #[error(transparent)]
    Gateway(#[from] aicoin_gateway::GatewayError),
    #[error("cannot start the consensus thread: {0}")]
    ConsensusThread(std::io::Error),
}

/// A running node. Dropping it leaves the node running until the runtime ends; call
/// [`NodeHandle::stop`] for an orderly shutdown.
#[derive(Debug)]
pub struct NodeHandle {
    rpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    api: Option<ApiServer>,
    gateway: Option<aicoin_gateway::GatewayServer>,
    beneficiary: Address,
    identity: Identity,
    data_dir: PathBuf,
    core: Core,
    started: roles::Started,
    services: Services,
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
        &self.core.metrics
    }

    /// The OpenAI-compatible inference API, when the node serves models.
    pub fn api(&self) -> Option<&ApiServer> {
        self.api.as_ref()
    }

    /// The paid inference gateway, when the node runs one.
    pub fn gateway(&self) -> Option<&aicoin_gateway::GatewayServer> {
        self.gateway.as_ref()
    }

    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.rpc_addr)
    }

    /// The address whose key seals this node's blocks.
    pub fn validator(&self) -> Address {
        self.identity.key.address()
    }

    /// Where the miner share of block rewards goes.
    pub fn beneficiary(&self) -> Address {
        self.beneficiary
    }

    /// Whether this start created the validator key (a new data dir).
    pub fn key_created(&self) -> bool {
        self.identity.key_created
    }

    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    pub fn spec(&self) -> &Arc<ChainSpec> {
        &self.identity.spec
    }

    pub fn genesis_hash(&self) -> B256 {
        self.core.genesis_hash
    }

    /// The prefunded `--dev` accounts (empty without `--dev`).
    pub fn dev_accounts(&self) -> &[PrivateKeySigner] {
        &self.identity.dev_accounts
    }

    pub fn chain(&self) -> &Arc<Chain> {
        &self.core.chain
    }

    pub fn pool(&self) -> &Arc<TxPool> {
        &self.core.pool
    }

    /// This validator's cluster membership, when it runs replicated.
    pub fn cluster(&self) -> Option<&ClusterHandle> {
        self.started.cluster.as_ref()
    }

    /// Where the node-to-node port listens (cluster members, and standalone validators given
    /// `--sync-port`).
    pub fn sync_addr(&self) -> Option<SocketAddr> {
        self.started
            .sync_addr
            .or_else(|| self.cluster().map(ClusterHandle::sync_addr))
    }

    /// Resolves, with why, once the chain database can no longer be written (a full disk, say):
    /// the node cannot go on, and its caller should stop it and exit non-zero so that a
    /// supervisor restarts it once the cause is gone. `GET /health` says so meanwhile.
    pub async fn storage_failed(&self) -> String {
        self.core.chain.store().failed().await.to_string()
    }

    /// Stops producing, finishes the block in progress, and closes the RPC server.
    pub async fn stop(self) {
        let cluster = self.started.cluster;
        self.services
            .stop(async move {
                if let Some(cluster) = cluster {
                    cluster.stop().await;
                }
            })
            .await;
        if let Some(api) = self.api {
            api.stopped().await;
        }
        if let Some(gateway) = self.gateway {
            gateway.stopped().await;
        }
    }
}

/// Starts a node: its identity and chain spec, the store, JSON-RPC, metrics and the inference
/// API, then what its role runs. If any step fails, what was started is stopped again.
pub async fn spawn(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    config.validate()?;
    let identity = Identity::load(&config)?;
    let store = open_store(&config, &identity.spec).await?;
    let genesis_hash = store.reader()?.block_hash(0)?.unwrap_or_default();
    let pool = Arc::new(TxPool::new(config.pool.clone()));
    let chain = Arc::new(Chain::new(store.clone(), identity.spec.clone()));
    let metrics = Arc::new(NodeMetrics::new(store.clone(), pool.clone()));
    let beneficiary = config.miner_address.unwrap_or(identity.key.address());
    let mut services = Services::new();

    let access = config
        .provide
        .as_ref()
        .map(|_| compute::provider_access(store.clone(), identity.key.address()));
    let forwarding = forward::Forwarding::for_role(&config);
    let rpc_state = RpcState {
        store,
        pool: pool.clone(),
        spec: identity.spec.clone(),
        new_blocks: chain.new_blocks(),
        coinbase: beneficiary,
        block_gas_limit: config.gas_limit,
        mining: config.role != Role::Full,
        signers: identity.dev_accounts.clone(),
        limits: config.rpc_limits.clone(),
        replicate: forwarding.replicate(),
    };
    let rpc_addr = serve_rpc(&config, rpc_state, &metrics, &mut services).await?;
    let metrics_addr = serve_metrics(&config, &metrics, &services).await?;
    let api = serve_api(&config, &metrics, access, &services).await?;

    let core = Core {
        sealer: Sealer {
            key: identity.key.clone(),
            beneficiary,
            gas_limit: config.gas_limit,
        },
        genesis_hash,
        chain,
        pool,
        metrics,
        rpc_addr,
        rpc_url: config
            .rpc
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{rpc_addr}")),
        consensus: aicoin_cluster::ConsensusThread::start().map_err(NodeError::ConsensusThread)?,
    };
    let started = match forwarding {
        forward::Forwarding::Full { forward, target } => {
            roles::start_full(&config, &core, &mut services, forward, target)
        }
        forward::Forwarding::Cluster { sharer, queue } => {
            roles::start_replicated(&config, &core, &mut services, sharer, queue).await?
        }
        forward::Forwarding::Alone => {
            roles::start_standalone(&config, &core, &mut services).await?
        }
    };
    if config.role != Role::Full && config.probe.enabled {
        compute::start_prober(&config, &core, &mut services);
    }
    if let Some(api) = &api {
        compute::start_provider(&config, &core, api, &mut services);
    }
    let gateway = match &config.gateway {
        Some(gateway) => Some(compute::start_gateway(gateway, &config, &core, &services).await?),
        None => None,
    };
    upgrade::start_watch(&core, &mut services);
    tracing::info!(%rpc_addr, validator = %identity.key.address(), chain_id = identity.spec.chain_id, "node started");
    Ok(NodeHandle {
        rpc_addr,
        metrics_addr,
        api,
        gateway,
        beneficiary,
        identity,
        data_dir: config.data_dir,
        core,
        started,
        services: services.started(),
    })
}

/// Who this node is: its validator key, the prefunded dev accounts, and the chain spec.
#[derive(Debug)]
struct Identity {
    key: PrivateKeySigner,
    /// Whether this start created the key (a new data dir).
    key_created: bool,
    dev_accounts: Vec<PrivateKeySigner>,
    spec: Arc<ChainSpec>,
}

impl Identity {
    /// Loads (or creates) the key and settles the spec: the given one, or a local chain with
    /// this validator as its only authority. A validator must be an authority of its spec.
    fn load(config: &NodeConfig) -> Result<Self, NodeError> {
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
        Ok(Self {
            key,
            key_created,
            dev_accounts,
            spec,
        })
    }
}

/// Opens (or creates) the chain database off the async workers: a first open writes genesis.
async fn open_store(config: &NodeConfig, spec: &Arc<ChainSpec>) -> Result<Store, NodeError> {
    let (dir, spec) = (config.data_dir.clone(), spec.clone());
    Ok(
        tokio::task::spawn_blocking(move || Store::open(&dir, &spec))
            .await
            .map_err(|e| StoreError::Corrupt(format!("opening the store panicked: {e}")))??,
    )
}

async fn serve_rpc(
    config: &NodeConfig,
    state: RpcState,
    metrics: &NodeMetrics,
    services: &mut Services,
) -> Result<SocketAddr, NodeError> {
    let addr = SocketAddr::new(config.host, config.rpc_port);
    let rpc = aicoin_rpc::start(
        Arc::new(state),
        addr,
        &config.rpc,
        Some(metrics.rpc.clone()),
    )
    .await
    .map_err(|source| NodeError::Rpc { addr, source })?;
    services.set_rpc(rpc.handle);
    Ok(rpc.addr)
}

/// `GET /metrics` on `--metrics-port`, when given.
async fn serve_metrics(
    config: &NodeConfig,
    metrics: &Arc<NodeMetrics>,
    services: &Services,
) -> Result<Option<SocketAddr>, NodeError> {
    let Some(port) = config.metrics_port else {
        return Ok(None);
    };
    let addr = SocketAddr::new(config.host, port);
    let bound = metrics::serve(metrics.clone(), addr, services.shutdown())
        .await
        .map_err(|source| NodeError::Metrics { addr, source })?;
    Ok(Some(bound))
}

/// The layer ranges `specs` names, each from its model's file among `models`.
async fn load_shards(
    specs: &[aicoin_shard::ShardSpec],
    models: Vec<aicoin_inference::LocalModel>,
) -> Result<Vec<(String, Arc<aicoin_inference::llama::Llama>)>, NodeError> {
    use aicoin_inference::llama::Llama;
    let mut loaded: Vec<(String, Arc<Llama>)> = Vec::new();
    for spec in specs {
        if loaded.iter().any(|(id, _)| *id == spec.model) {
            return Err(NodeError::ShardTwice { spec: spec.clone() });
        }
        let Some(model) = models.iter().find(|m| m.id == spec.model) else {
            return Err(NodeError::ShardModelMissing { spec: spec.clone() });
        };
        let (path, layers) = (model.path.clone(), spec.layers.clone());
        let shard = tokio::task::spawn_blocking(move || {
            Llama::layers_from_file(&path, &candle_core::Device::Cpu, layers).map(Arc::new)
        })
        .await
        .unwrap_or_else(|e| Err(aicoin_inference::InferenceError::Crashed(e.to_string())))
        .map_err(|source| NodeError::ShardLoad {
            spec: spec.clone(),
            source,
        })?;
        tracing::info!(shard = %spec, "serving a pipeline shard");
        loaded.push((spec.model.clone(), shard));
    }
    Ok(loaded)
}

/// The inference API over the configured models. Models merely found in the models directory
/// are a convenience: when they fail to load, the chain runs without them.
async fn serve_api(
    config: &NodeConfig,
    metrics: &NodeMetrics,
    access: Option<Arc<dyn aicoin_api::Access>>,
    services: &Services,
) -> Result<Option<ApiServer>, NodeError> {
    let Some(mut api) = config.api.clone() else {
        return Ok(None);
    };
    let explicit = api.explicit;
    let registry = metrics.registry().clone();
    let shards = match config.provide.as_ref() {
        Some(provide) if !provide.shards.is_empty() => {
            // A sharded model serves its layers alone, never whole.
            let (sharded, whole) = std::mem::take(&mut api.models)
                .into_iter()
                .partition(|m| provide.shards.iter().any(|s| s.model == m.id));
            api.models = whole;
            let loaded = load_shards(&provide.shards, sharded).await?;
            let server = aicoin_shard::ShardServer::new(loaded, provide.shard, access.clone());
            Some(server.router())
        }
        _ => None,
    };
    match aicoin_api::start(
        api,
        metrics.inference.clone(),
        registry,
        access,
        shards,
        services.stopped(),
    )
    .await
    {
        Ok(server) => Ok(Some(server)),
        Err(e) if !explicit => {
            tracing::warn!(error = %e, "not serving the inference API");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
