//! What each role runs once the chain and JSON-RPC are up: a standalone validator produces on
//! its own (and serves its blocks to full nodes when given a sync port), a replicated validator
//! joins its raft cluster and forwards transactions to the leader, a full node follows its
//! bootnodes and forwards transactions to their producer.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use aicoin_cluster::{ClusterConfig, ClusterHandle, ConsensusThread, Fetcher, Member};
use aicoin_txpool::TxPool;
use alloy_primitives::B256;
use tokio::sync::watch;

use crate::{
    NodeConfig, NodeError, NodeMetrics, chain::Chain, chain::Sealer, forward, ledger::ChainLedger,
    producer, services::Services,
};

/// What every role works with.
#[derive(Debug)]
pub(crate) struct Core {
    pub genesis_hash: B256,
    pub chain: Arc<Chain>,
    pub pool: Arc<TxPool>,
    pub metrics: Arc<NodeMetrics>,
    /// This node's validator key, reward address and gas limit (full nodes hold a key too).
    pub sealer: Sealer,
    pub rpc_addr: SocketAddr,
    /// Where other nodes forward transactions to this one (behind a proxy, the public URL).
    pub rpc_url: String,
    /// Where this node builds and imports blocks, apart from client requests.
    pub consensus: ConsensusThread,
}

impl Core {
    /// The chain as the cluster and sync code see it; `sealer` for a validator that builds.
    fn ledger(&self, sealer: Option<Sealer>) -> Arc<ChainLedger> {
        Arc::new(ChainLedger {
            chain: self.chain.clone(),
            pool: self.pool.clone(),
            sealer,
        })
    }

    /// How other nodes reach this one, when it serves blocks on `sync_port`.
    fn member(&self, config: &NodeConfig, sync_port: u16) -> Member {
        let sync_url = SocketAddr::new(config.sync_host(), sync_port);
        Member {
            name: config
                .node_id
                .clone()
                .unwrap_or_else(|| format!("node-{}", self.rpc_addr.port())),
            sync_url: config
                .advertise_sync_url
                .clone()
                .unwrap_or_else(|| format!("http://{sync_url}")),
            rpc_url: self.rpc_url.clone(),
            priority: config.priority,
        }
    }
}

/// What a role started that the node handle keeps.
#[derive(Debug, Default)]
pub(crate) struct Started {
    pub cluster: Option<ClusterHandle>,
    pub sync_addr: Option<SocketAddr>,
}

/// A validator alone: it produces every block, and serves them to full nodes on
/// `--sync-port` when given.
pub(crate) async fn start_standalone(
    config: &NodeConfig,
    core: &Core,
    services: &mut Services,
) -> Result<Started, NodeError> {
    let mut started = Started::default();
    if let Some(port) = config.sync_port {
        let addr = SocketAddr::new(config.sync_host(), port);
        let bound = aicoin_cluster::public::serve(
            core.ledger(None),
            core.sealer.key.address(),
            core.member(config, port),
            core.genesis_hash,
            addr,
            services.shutdown(),
        )
        .await
        .map_err(|source| NodeError::Sync { addr, source })?;
        started.sync_addr = Some(bound);
    }
    services.spawn(producer::run(
        core.chain.clone(),
        core.pool.clone(),
        core.consensus.clone(),
        core.sealer.clone(),
        config.block_interval,
        core.metrics.clone(),
        services.shutdown(),
    ));
    Ok(started)
}

/// A member of a replicated validator cluster: raft decides who produces, and the others
/// forward their transactions to the leader.
pub(crate) async fn start_replicated(
    config: &NodeConfig,
    core: &Core,
    services: &mut Services,
    sharer: aicoin_cluster::Sharer,
    share_queue: aicoin_cluster::ShareQueue,
) -> Result<Started, NodeError> {
    let cluster = aicoin_cluster::start(
        ClusterConfig {
            data_dir: config.data_dir.clone(),
            key: core.sealer.key.clone(),
            genesis: core.genesis_hash,
            validators: core.chain.spec().authorities.clone(),
            me: core.member(config, config.sync_port()),
            listen: SocketAddr::new(config.sync_host(), config.sync_port()),
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
            consensus: core.consensus.clone(),
            share: Some(share_queue),
        },
        core.ledger(Some(core.sealer.clone())),
    )
    .await?;
    services.spawn(forward::offer_pool_to_new_leaders(
        core.pool.clone(),
        sharer,
        cluster.changes(),
        core.sealer.key.address(),
        services.shutdown(),
    ));
    Ok(Started {
        cluster: Some(cluster),
        sync_addr: None,
    })
}

/// A full node: follows its bootnodes' chain and forwards transactions to their producer.
pub(crate) fn start_full(
    config: &NodeConfig,
    core: &Core,
    services: &mut Services,
    forward: forward::ForwardToProducer,
    target: watch::Sender<Option<String>>,
) -> Started {
    let fetcher = Fetcher::new();
    services.spawn(forward.resend(core.pool.clone(), services.shutdown()));
    services.spawn(producer_rpc_of_bootnode(
        fetcher.clone(),
        config.bootnodes.clone(),
        target,
        services.shutdown(),
    ));
    services.spawn(aicoin_cluster::follow::run(
        core.ledger(None),
        config.bootnodes.clone(),
        fetcher,
        services.shutdown(),
    ));
    Started::default()
}

/// Keeps `target` at the JSON-RPC URL of the first bootnode that answers, asking again every
/// few seconds: when that bootnode dies, or names another producer, transactions go to the next
/// one's (and the pool is resent there), instead of to a dead URL for good.
async fn producer_rpc_of_bootnode(
    fetcher: Fetcher,
    bootnodes: Vec<String>,
    target: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut producer = None;
        for bootnode in &bootnodes {
            if let Ok(status) = fetcher.status(bootnode).await {
                producer = Some(status.member.rpc_url);
                break;
            }
        }
        // Only a change wakes the forwarder (which resends the pool); none answering keeps the
        // last known producer, which may be back by the next look.
        if let Some(url) = producer {
            target.send_if_modified(|current| {
                let changed = current.as_deref() != Some(url.as_str());
                if changed {
                    *current = Some(url);
                }
                changed
            });
        }
        let pause = match target.borrow().is_some() {
            true => Duration::from_secs(5),
            false => Duration::from_secs(1),
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}
