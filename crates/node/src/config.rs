//! Everything a node is started with, its defaults, and the checks that refuse a configuration
//! that cannot work before anything is opened.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use aicoin_api::ApiConfig;
use aicoin_inference::{LocalModel, WeightFormat};
use aicoin_primitives::{AICOIN_CHAIN_ID, ChainSpec, DEFAULT_GAS_LIMIT};
use aicoin_rpc::{RpcLimits, RpcServerConfig};
use aicoin_txpool::PoolConfig;
use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};

/// Default JSON-RPC port (the spec's).
pub const DEFAULT_RPC_PORT: u16 = 8546;
/// Default node-to-node port (the spec's).
pub const DEFAULT_SYNC_PORT: u16 = 9551;
/// Shortest block interval accepted.
pub const MIN_BLOCK_INTERVAL: Duration = Duration::from_millis(50);
/// Longest block interval accepted.
pub const MAX_BLOCK_INTERVAL: Duration = Duration::from_secs(3600);

/// A node's part in the cluster. `leader` and `follower` are the spec's names; they are the
/// starting preference of a validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A validator that prefers to produce blocks.
    #[default]
    Leader,
    /// A validator that prefers to follow.
    Follower,
    /// A validator with no preference.
    Validator,
    /// A non-validator that syncs and serves.
    Full,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Validator => "validator",
            Role::Full => "full",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "leader" => Ok(Role::Leader),
            "follower" => Ok(Role::Follower),
            "validator" => Ok(Role::Validator),
            "full" => Ok(Role::Full),
            other => Err(format!(
                "unknown role {other:?}: expected leader, follower, validator or full"
            )),
        }
    }
}

/// One entry of `--peers` (the spec's JSON list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub node_id: String,
    pub host: String,
    pub sync_port: u16,
    pub rpc_port: u16,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub priority: u32,
}

/// Parses the spec's `--peers` JSON list.
pub fn parse_peers(json: &str) -> Result<Vec<PeerConfig>, String> {
    serde_json::from_str(json).map_err(|e| format!("--peers is not a valid peer list: {e}"))
}

/// A configuration that cannot work, named by its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--block-interval {0:?} is outside {MIN_BLOCK_INTERVAL:?}..={MAX_BLOCK_INTERVAL:?}")]
    BlockInterval(Duration),
    #[error("--gas-limit {0} is below the 21000 a transfer needs")]
    GasLimit(u64),
    #[error("--rpc-max-connections and --rpc-max-connections-per-ip must be at least 1")]
    NoConnections,
    #[error("--chain-id must not be 0")]
    ZeroChainId,
    #[error("--node-id must not be empty")]
    EmptyNodeId,
    #[error("--peers: node id {0:?} appears twice")]
    DuplicateNodeId(String),
    #[error("--role full needs --bootnodes (validators' sync URLs) to sync from")]
    FullWithoutBootnodes,
    #[error("--role follower needs --peers: the cluster it follows")]
    FollowerWithoutPeers,
    #[error(
        "--role {} with peers needs the cluster's shared chain spec (--chain spec.json; \
         `aicoin devnet` writes one)",
        .0.as_str()
    )]
    NoSharedSpec(Role),
    #[error("--sync-port must be set (not 0) for a cluster member")]
    NoSyncPort,
    #[error("--advertise-sync-url must be an http:// or https:// URL, got {0:?}")]
    AdvertiseUrl(String),
    #[error("--peers: peer {0:?} needs a host and a non-zero sync_port")]
    PeerAddress(String),
    #[error("--provide needs models to serve (`aicoin model fetch`, or --model) and the API on")]
    ProvideWithoutModels,
    #[error("--provide-url must be an http:// or https:// URL, got {0:?}")]
    ProvideUrl(String),
}

/// Serving the node's models to the network as a compute provider (`--provide`): the API
/// admits only requests signed by the chain's validators (and gateways), and the node keeps
/// itself registered in the compute registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProvideConfig {
    /// The API URL others reach this provider at [default: the API's own address].
    pub api_url: Option<String>,
    /// Receives this provider's rewards [default: the node's key address].
    pub payout: Option<Address>,
    /// Register as a GPU provider (counted only when the measured throughput backs it).
    pub gpu: bool,
    /// The stake to lock [default: the chain's `minStake`].
    pub stake: Option<U256>,
    /// Models served only as a layer range (pipeline shards), never whole.
    pub shards: Vec<aicoin_shard::ShardSpec>,
    /// The shards' KV budget and idle timeout.
    pub shard: aicoin_shard::ShardConfig,
}

/// A validator's probing of the compute providers (on by default for validators).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub enabled: bool,
    /// The validator's own copies of the models, to audit answers with (an answer of a model it
    /// lacks is measured but not audited).
    pub audit_models: Vec<LocalModel>,
    /// How the audit copies' weights are held: as providers hold theirs by default.
    pub weights: WeightFormat,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            audit_models: Vec::new(),
            weights: WeightFormat::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub host: IpAddr,
    /// 0 picks a free port (reported by the node handle).
    pub rpc_port: u16,
    pub chain_id: u64,
    /// Receives the miner share of block rewards; the validator address when unset.
    pub miner_address: Option<Address>,
    pub data_dir: PathBuf,
    pub block_interval: Duration,
    pub gas_limit: u64,
    /// Prefund the ten standard test accounts.
    pub dev: bool,
    pub role: Role,
    /// The node-to-node port. Cluster members always listen (on 9551 when unset); a standalone
    /// validator serves its blocks there to full nodes only when it is set.
    pub sync_port: Option<u16>,
    /// The address the sync port binds, when not `host` (validators reach each other on a
    /// public or private interface while the RPC stays on loopback behind a proxy).
    pub sync_host: Option<IpAddr>,
    /// The URL other nodes reach this node's sync transport at, when it is not
    /// `http://host:sync-port` (NAT, a proxy, a load balancer).
    pub advertise_sync_url: Option<String>,
    pub node_id: Option<String>,
    pub priority: u32,
    pub peers: Vec<PeerConfig>,
    /// Sync URLs (`http://host:sync-port`) a full node follows.
    pub bootnodes: Vec<String>,
    /// The cluster admin API's port on 127.0.0.1 (`aicoin cluster …`); `--sync-port` + 100 when
    /// unset.
    pub admin_port: Option<u16>,
    pub pool: PoolConfig,
    /// JSON-RPC server limits, CORS, rate limit and the MetaMask page's public URL.
    pub rpc: RpcServerConfig,
    /// What one RPC request may cost (log ranges, filters).
    pub rpc_limits: RpcLimits,
    /// Serve Prometheus metrics on this port of `host` (0 picks a free one); off when `None`.
    pub metrics_port: Option<u16>,
    /// Serve these models over the OpenAI-compatible API; off when `None`.
    pub api: Option<ApiConfig>,
    /// Run the paid inference gateway; off when `None`.
    pub gateway: Option<aicoin_gateway::GatewayConfig>,
    /// Serve them to the network as a compute provider; off when `None`.
    pub provide: Option<ProvideConfig>,
    /// A validator's probes and audits of the providers.
    pub probe: ProbeConfig,
    /// A chain spec to start from instead of the one built from the flags above (chain id,
    /// `dev`) with this node's validator as the only authority.
    pub chain_spec: Option<ChainSpec>,
}

impl NodeConfig {
    /// The address the sync port binds.
    pub fn sync_host(&self) -> IpAddr {
        self.sync_host.unwrap_or(self.host)
    }

    /// The embedded defaults, with data under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rpc_port: DEFAULT_RPC_PORT,
            chain_id: AICOIN_CHAIN_ID,
            miner_address: None,
            data_dir,
            block_interval: Duration::from_secs(3),
            gas_limit: DEFAULT_GAS_LIMIT,
            dev: false,
            role: Role::default(),
            sync_port: None,
            sync_host: None,
            advertise_sync_url: None,
            node_id: None,
            priority: 1,
            peers: Vec::new(),
            bootnodes: Vec::new(),
            admin_port: None,
            pool: PoolConfig::default(),
            rpc: RpcServerConfig::default(),
            rpc_limits: RpcLimits::default(),
            metrics_port: None,
            api: None,
            gateway: None,
            provide: None,
            probe: ProbeConfig::default(),
            chain_spec: None,
        }
    }

    /// A `--dev` node on a free port, for tests and local development.
    pub fn dev(data_dir: PathBuf) -> Self {
        let mut config = Self {
            dev: true,
            rpc_port: 0,
            ..Self::new(data_dir)
        };
        config.rpc.rate_limit = None;
        config
    }

    /// Refuses settings that cannot work, with a message naming the flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_BLOCK_INTERVAL..=MAX_BLOCK_INTERVAL).contains(&self.block_interval) {
            return Err(ConfigError::BlockInterval(self.block_interval));
        }
        if self.gas_limit < 21_000 {
            return Err(ConfigError::GasLimit(self.gas_limit));
        }
        if self.rpc.max_connections == 0 || self.rpc.max_connections_per_ip == 0 {
            return Err(ConfigError::NoConnections);
        }
        if self.chain_id == 0 {
            return Err(ConfigError::ZeroChainId);
        }
        if self.node_id.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::EmptyNodeId);
        }
        let mut ids: Vec<&str> = self.peers.iter().map(|p| p.node_id.as_str()).collect();
        ids.extend(self.node_id.as_deref());
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateNodeId(w[0].to_string()));
        }
        if let Some(provide) = &self.provide {
            if self.api.is_none() {
                return Err(ConfigError::ProvideWithoutModels);
            }
            if let Some(url) = provide
                .api_url
                .as_deref()
                .filter(|url| !(url.starts_with("http://") || url.starts_with("https://")))
            {
                return Err(ConfigError::ProvideUrl(url.to_string()));
            }
        }
        if self.role == Role::Full && self.bootnodes.is_empty() {
            return Err(ConfigError::FullWithoutBootnodes);
        }
        if self.role == Role::Follower && self.peers.is_empty() {
            return Err(ConfigError::FollowerWithoutPeers);
        }
        if (self.role == Role::Full || !self.peers.is_empty()) && self.chain_spec.is_none() {
            return Err(ConfigError::NoSharedSpec(self.role));
        }
        if !self.peers.is_empty() && self.sync_port() == 0 {
            return Err(ConfigError::NoSyncPort);
        }
        if let Some(url) = self
            .advertise_sync_url
            .as_deref()
            .filter(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err(ConfigError::AdvertiseUrl(url.to_string()));
        }
        if let Some(p) = self
            .peers
            .iter()
            .find(|p| p.host.is_empty() || p.sync_port == 0)
        {
            return Err(ConfigError::PeerAddress(p.node_id.clone()));
        }
        Ok(())
    }

    /// The node-to-node port of a cluster member.
    pub fn sync_port(&self) -> u16 {
        self.sync_port.unwrap_or(DEFAULT_SYNC_PORT)
    }

    /// Whether this node runs as a member of a replicated validator cluster.
    pub fn replicated(&self) -> bool {
        self.role != Role::Full && !self.peers.is_empty()
    }

    /// Whether this node creates the cluster when none exists: the most preferred of the initial
    /// members (the spec's `leader` role first, then the highest priority, i.e. the lowest
    /// number, then the node id), so that exactly one of them does.
    pub fn bootstraps_cluster(&self) -> bool {
        let rank = |role: Option<Role>, priority: u32, id: &str| {
            (role != Some(Role::Leader), priority, id.to_string())
        };
        let mine = rank(
            Some(self.role),
            self.priority,
            self.node_id.as_deref().unwrap_or_default(),
        );
        self.peers
            .iter()
            .all(|p| mine < rank(p.role, p.priority, &p.node_id))
    }

    /// The admin API's port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
            .unwrap_or_else(|| self.sync_port().saturating_add(100))
    }
}

/// Where a node keeps its data when `--data-dir` is not given: the platform's data directory
/// (`~/.local/share/aicoin/…` on Linux), one folder per chain id, dev chains apart.
pub fn default_data_dir(chain_id: u64, dev: bool) -> PathBuf {
    let base = dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("aicoin");
    base.join(if dev {
        format!("dev-{chain_id}")
    } else {
        chain_id.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_peer_list_parses() {
        let peers = parse_peers(
            r#"[{"node_id":"node-8547","host":"acer.t.aicq.online","sync_port":9552,"rpc_port":8547,"role":"follower","priority":2}]"#,
        )
        .unwrap();
        assert_eq!(peers[0].role, Some(Role::Follower));
        assert_eq!(peers[0].priority, 2);
        assert!(parse_peers(r#"[{"node_id":"x"}]"#).is_err());
        assert!(parse_peers("not json").is_err());
    }

    #[test]
    fn invalid_settings_are_refused() {
        let ok = NodeConfig::new(PathBuf::from("/tmp/x"));
        assert!(ok.validate().is_ok());
        let bad = NodeConfig {
            block_interval: Duration::from_millis(1),
            ..ok.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("--block-interval")
        );
        let bad = NodeConfig {
            gas_limit: 100,
            ..ok.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("--gas-limit")
        );
        let peer = PeerConfig {
            node_id: "a".into(),
            host: "h".into(),
            sync_port: 1,
            rpc_port: 2,
            role: None,
            priority: 0,
        };
        let bad = NodeConfig {
            peers: vec![peer.clone(), peer],
            ..ok
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
        assert_eq!("LEADER".parse::<Role>(), Ok(Role::Leader));
        assert!("boss".parse::<Role>().is_err());
    }
}
