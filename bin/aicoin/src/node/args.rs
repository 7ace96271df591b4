//! `aicoin node`'s flags, one struct per concern (as reth's `args/`), each flattened into
//! [`super::NodeArgs`]. Every flag is also an `AICOIN_*` variable and a key of the `--config`
//! TOML file; each struct fills its gaps from the file ([`Self::or`]) and writes what it was given
//! over the embedded defaults of [`NodeConfig`] ([`Self::apply`]). The defaults the help text
//! shows are checked against `NodeConfig::new` by a test.

use std::{net::IpAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use aicoin_node::{NodeConfig, Role, parse_peers};
use aicoin_rpc::CorsOrigins;
use alloy_primitives::Address;
use clap::Args;
use eyre::bail;
use serde::Deserialize;

/// `Self { field: self.field.or(file.field), … }` for a struct of optional flags.
macro_rules! fill_gaps {
    ($($field:ident),* $(,)?) => {
        /// These flags, with gaps filled from the config file's.
        pub fn or(self, file: Self) -> Self {
            Self { $($field: self.$field.or(file.$field)),* }
        }
    };
}

/// The chain: which one, where it lives, and the blocks this node makes.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChainArgs {
    /// Chain id [default: 2108].
    #[arg(long, env = "AICOIN_CHAIN_ID")]
    pub chain_id: Option<u64>,
    /// Chain spec file (JSON, as `aicoin chain-spec` prints) instead of the built-in one.
    #[arg(long, env = "AICOIN_CHAIN")]
    pub chain: Option<PathBuf>,
    /// Where the chain and the validator key live [default: ~/.local/share/aicoin/<chain-id>].
    #[arg(long, env = "AICOIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Receives the miner share (80%) of block rewards [default: the validator address].
    #[arg(long, env = "AICOIN_MINER_ADDRESS")]
    pub miner_address: Option<Address>,
    /// Seconds between blocks; fractions allowed [default: 3.0].
    #[arg(long, env = "AICOIN_BLOCK_INTERVAL")]
    pub block_interval: Option<f64>,
    /// Gas limit of produced blocks [default: 30000000].
    #[arg(long, env = "AICOIN_GAS_LIMIT")]
    pub gas_limit: Option<u64>,
}

impl ChainArgs {
    fill_gaps!(
        chain_id,
        chain,
        data_dir,
        miner_address,
        block_interval,
        gas_limit
    );

    /// The block settings (the chain itself, id, spec and data dir, is settled by the caller).
    pub fn apply(&self, c: &mut NodeConfig) -> eyre::Result<()> {
        c.miner_address = self.miner_address;
        if let Some(secs) = self.block_interval {
            c.block_interval = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    eyre::eyre!("--block-interval must be a positive number of seconds, got {secs}")
                })?;
        }
        if let Some(v) = self.gas_limit {
            c.gas_limit = v
        }
        Ok(())
    }
}

/// The JSON-RPC server: where it listens and what one client may ask of it.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RpcArgs {
    /// Address the JSON-RPC server binds [default: 127.0.0.1].
    #[arg(long, env = "AICOIN_HOST")]
    pub host: Option<IpAddr>,
    /// JSON-RPC port, HTTP and WebSocket; 0 picks a free one [default: 8546].
    #[arg(long, env = "AICOIN_RPC_PORT")]
    pub rpc_port: Option<u16>,
    /// Origins browsers may call the RPC from: `*` or a comma-separated list [default: *].
    #[arg(long, env = "AICOIN_RPC_CORS")]
    pub rpc_cors: Option<String>,
    /// Requests per second one client address may make (each call of a batch counts); 0 for no
    /// limit. A --dev chain has none unless given [default: 1000].
    #[arg(long, env = "AICOIN_RPC_RATE_LIMIT")]
    pub rpc_rate_limit: Option<u32>,
    /// Most simultaneous RPC connections [default: 500].
    #[arg(long, env = "AICOIN_RPC_MAX_CONNECTIONS")]
    pub rpc_max_connections: Option<u32>,
    /// Most simultaneous RPC connections from one client address [default: 128].
    #[arg(long, env = "AICOIN_RPC_MAX_CONNECTIONS_PER_IP")]
    pub rpc_max_connections_per_ip: Option<u32>,
    /// Most calls in one JSON-RPC batch [default: 100].
    #[arg(long, env = "AICOIN_RPC_MAX_BATCH")]
    pub rpc_max_batch: Option<u32>,
    /// Largest request body, in bytes [default: 5242880].
    #[arg(long, env = "AICOIN_RPC_MAX_REQUEST_BYTES")]
    pub rpc_max_request_bytes: Option<u32>,
    /// Largest response body, in bytes [default: 104857600].
    #[arg(long, env = "AICOIN_RPC_MAX_RESPONSE_BYTES")]
    pub rpc_max_response_bytes: Option<u32>,
    /// Most blocks one eth_getLogs may scan [default: 10000].
    #[arg(long, env = "AICOIN_RPC_MAX_LOGS_RANGE")]
    pub rpc_max_logs_range: Option<u64>,
    /// Most logs one eth_getLogs may return [default: 20000].
    #[arg(long, env = "AICOIN_RPC_MAX_LOGS")]
    pub rpc_max_logs: Option<usize>,
    /// This node's public RPC URL: the one the MetaMask page at GET / hands to wallets, and the
    /// one full nodes forward transactions to [default: the page's own origin; http://host:port].
    #[arg(long, env = "AICOIN_PUBLIC_RPC_URL")]
    pub public_rpc_url: Option<String>,
    /// Reverse proxies in front of the RPC (nginx on this host: 127.0.0.1), comma-separated:
    /// their requests count as the client named in X-Forwarded-For, and the per-client
    /// connection cap does not apply to them [default: none].
    #[arg(long, env = "AICOIN_RPC_TRUSTED_PROXIES", value_delimiter = ',')]
    pub rpc_trusted_proxies: Option<Vec<IpAddr>>,
}

impl RpcArgs {
    fill_gaps!(
        host,
        rpc_port,
        rpc_cors,
        rpc_rate_limit,
        rpc_max_connections,
        rpc_max_connections_per_ip,
        rpc_max_batch,
        rpc_max_request_bytes,
        rpc_max_response_bytes,
        rpc_max_logs_range,
        rpc_max_logs,
        public_rpc_url,
        rpc_trusted_proxies,
    );

    pub fn apply(&self, c: &mut NodeConfig) -> eyre::Result<()> {
        if let Some(v) = self.host {
            c.host = v
        }
        if let Some(v) = self.rpc_port {
            c.rpc_port = v
        }
        let r = &mut c.rpc;
        if let Some(origins) = &self.rpc_cors {
            r.cors = parse_cors(origins)?;
        }
        if let Some(v) = self.rpc_rate_limit {
            r.rate_limit = NonZeroU32::new(v)
        }
        if let Some(v) = self.rpc_max_connections {
            r.max_connections = v
        }
        if let Some(v) = self.rpc_max_connections_per_ip {
            r.max_connections_per_ip = v
        }
        if let Some(v) = self.rpc_max_batch {
            r.max_batch_len = v
        }
        if let Some(v) = self.rpc_max_request_bytes {
            r.max_request_body_bytes = v
        }
        if let Some(v) = self.rpc_max_response_bytes {
            r.max_response_body_bytes = v
        }
        r.public_url = self.public_rpc_url.clone();
        if let Some(proxies) = &self.rpc_trusted_proxies {
            r.trusted_proxies = proxies.clone();
        }
        if let Some(v) = self.rpc_max_logs_range {
            c.rpc_limits.max_logs_range = v
        }
        if let Some(v) = self.rpc_max_logs {
            c.rpc_limits.max_logs = v
        }
        Ok(())
    }
}

/// `*` for any origin, or a comma-separated list of origins such as `https://app.example`.
fn parse_cors(text: &str) -> eyre::Result<CorsOrigins> {
    let origins: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    if origins.iter().any(|o| o == "*") {
        return Ok(CorsOrigins::Any);
    }
    if let Some(bad) = origins
        .iter()
        .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'))
    {
        bail!("--rpc-cors: {bad:?} is not an origin such as https://app.example (or *)");
    }
    Ok(CorsOrigins::List(origins))
}

/// The transaction pool's caps (the spam defence of a chain where sending is free).
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PoolArgs {
    /// Pool: most transactions held, pending and queued [default: 16384].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_TXS")]
    pub txpool_max_txs: Option<usize>,
    /// Pool: most bytes of encoded transactions held [default: 134217728].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_BYTES")]
    pub txpool_max_bytes: Option<usize>,
    /// Pool: most queued (nonce-gapped) transactions across senders [default: 2048].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_QUEUED")]
    pub txpool_max_queued: Option<usize>,
    /// Pool: most transactions one sender may hold [default: 256].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_PER_SENDER")]
    pub txpool_max_per_sender: Option<usize>,
    /// Pool: how far a nonce may run ahead of the account's [default: 64].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_NONCE_GAP")]
    pub txpool_max_nonce_gap: Option<u64>,
    /// Pool: seconds a queued transaction may wait before eviction [default: 10800].
    #[arg(long, env = "AICOIN_TXPOOL_QUEUED_LIFETIME")]
    pub txpool_queued_lifetime: Option<u64>,
}

impl PoolArgs {
    fill_gaps!(
        txpool_max_txs,
        txpool_max_bytes,
        txpool_max_queued,
        txpool_max_per_sender,
        txpool_max_nonce_gap,
        txpool_queued_lifetime,
    );

    pub fn apply(&self, c: &mut NodeConfig) {
        let p = &mut c.pool;
        if let Some(v) = self.txpool_max_txs {
            p.max_txs = v
        }
        if let Some(v) = self.txpool_max_bytes {
            p.max_bytes = v
        }
        if let Some(v) = self.txpool_max_queued {
            p.max_queued = v
        }
        if let Some(v) = self.txpool_max_per_sender {
            p.max_per_sender = v
        }
        if let Some(v) = self.txpool_max_nonce_gap {
            p.max_nonce_gap = v
        }
        if let Some(v) = self.txpool_queued_lifetime {
            p.queued_lifetime = Duration::from_secs(v)
        }
    }
}

/// The node's place among others: its role, its cluster and how peers reach it.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterArgs {
    /// Cluster role: leader, follower, validator or full [default: leader].
    #[arg(long, env = "AICOIN_ROLE")]
    pub role: Option<Role>,
    /// Node-to-node port of a cluster member [default: 9551]. A standalone validator serves its
    /// blocks there to full nodes (`--role full --bootnodes`) only when it is given.
    #[arg(long, env = "AICOIN_SYNC_PORT")]
    pub sync_port: Option<u16>,
    /// Address the sync port binds, when not --host (a validator's RPC on 127.0.0.1 behind a
    /// proxy, its sync port on the interface the other validators reach) [default: --host].
    #[arg(long, env = "AICOIN_SYNC_HOST")]
    pub sync_host: Option<IpAddr>,
    /// The URL other nodes reach this node's sync port at, when not http://host:sync-port
    /// (NAT, a proxy).
    #[arg(long, env = "AICOIN_ADVERTISE_SYNC_URL")]
    pub advertise_sync_url: Option<String>,
    /// This node's id in the cluster.
    #[arg(long, env = "AICOIN_NODE_ID")]
    pub node_id: Option<String>,
    /// Failover priority: 1 is the highest (wins elections first), then 2, 3, … [default: 1].
    #[arg(long, env = "AICOIN_PRIORITY")]
    pub priority: Option<u32>,
    /// Peers, as the spec's JSON list: [{"node_id","host","sync_port","rpc_port","role","priority"}].
    #[arg(long, env = "AICOIN_PEERS")]
    pub peers: Option<String>,
    /// Validators' sync URLs a full node (`--role full`) follows, comma-separated
    /// (`http://host:9551`).
    #[arg(long, env = "AICOIN_BOOTNODES", value_delimiter = ',')]
    pub bootnodes: Option<Vec<String>>,
    /// Cluster admin API port on 127.0.0.1, for `aicoin cluster` [default: --sync-port + 100].
    #[arg(long, env = "AICOIN_ADMIN_PORT")]
    pub admin_port: Option<u16>,
}

impl ClusterArgs {
    fill_gaps!(
        role,
        sync_port,
        sync_host,
        advertise_sync_url,
        node_id,
        priority,
        peers,
        bootnodes,
        admin_port,
    );

    pub fn apply(&self, c: &mut NodeConfig) -> eyre::Result<()> {
        if let Some(v) = self.role {
            c.role = v
        }
        c.sync_port = self.sync_port;
        c.sync_host = self.sync_host;
        c.advertise_sync_url = self.advertise_sync_url.clone();
        c.node_id = self.node_id.clone();
        if let Some(v) = self.priority {
            c.priority = v
        }
        if let Some(json) = &self.peers {
            c.peers = parse_peers(json).map_err(|e| eyre::eyre!(e))?;
        }
        c.bootnodes = self.bootnodes.clone().unwrap_or_default();
        c.admin_port = self.admin_port;
        Ok(())
    }
}

fn enabled() -> bool {
    true
}

/// Serving the node's models to the network as a compute provider. In the config file these
/// are the `[provide]` table (`url`, `payout`, `gpu`, `stake`), which turns providing on unless
/// it says `enabled = false`.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProvideArgs {
    /// Serve the node's models to the network as a compute provider: register in the compute
    /// registry with a stake, and answer only requests signed by the chain's validators.
    #[arg(long = "provide", env = "AICOIN_PROVIDE")]
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The URL the network reaches this provider's API at [default: the API's address].
    #[arg(long = "provide-url", env = "AICOIN_PROVIDE_URL")]
    pub url: Option<String>,
    /// Receives this provider's rewards [default: the node's key address].
    #[arg(long, env = "AICOIN_PAYOUT")]
    pub payout: Option<Address>,
    /// Register as a GPU provider (the full score counts only when the measured throughput
    /// backs the claim).
    #[arg(long = "provide-gpu", env = "AICOIN_PROVIDE_GPU")]
    #[serde(default)]
    pub gpu: bool,
    /// The stake to lock, in AIC [default: the chain's minStake].
    #[arg(long, env = "AICOIN_STAKE")]
    pub stake: Option<String>,
    /// Serve only layers START..END of MODEL, as a pipeline shard that gateways chain with
    /// other providers' (MODEL:START-END, e.g. smollm2-135m-instruct:0-15; repeatable). Only
    /// those layers of the model are loaded.
    #[arg(long = "shard", env = "AICOIN_SHARD", value_delimiter = ',')]
    #[serde(default)]
    pub shards: Vec<String>,
    /// KV cache, in MiB, that the shards' sessions may reserve together [default: 1024].
    #[arg(long = "shard-kv-budget-mb", env = "AICOIN_SHARD_KV_BUDGET_MB")]
    pub shard_kv_budget_mb: Option<u64>,
    /// Seconds a shard session may go without a step before it is closed [default: 60].
    #[arg(long = "shard-idle-secs", env = "AICOIN_SHARD_IDLE_SECS")]
    pub shard_idle_secs: Option<u64>,
}

impl ProvideArgs {
    pub fn or(self, file: Self) -> Self {
        Self {
            enabled: self.enabled || file.enabled,
            url: self.url.or(file.url),
            payout: self.payout.or(file.payout),
            gpu: self.gpu || file.gpu,
            stake: self.stake.or(file.stake),
            shards: match self.shards.is_empty() {
                true => file.shards,
                false => self.shards,
            },
            shard_kv_budget_mb: self.shard_kv_budget_mb.or(file.shard_kv_budget_mb),
            shard_idle_secs: self.shard_idle_secs.or(file.shard_idle_secs),
        }
    }

    pub fn apply(&self, c: &mut NodeConfig) -> eyre::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let stake = self
            .stake
            .as_deref()
            .map(aicoin_wallet::parse_aic)
            .transpose()
            .map_err(|e| eyre::eyre!("--stake: {e}"))?;
        let shards = self
            .shards
            .iter()
            .map(|s| s.parse::<aicoin_shard::ShardSpec>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| eyre::eyre!("--shard: {e}"))?;
        let defaults = aicoin_shard::ShardConfig::default();
        let shard = aicoin_shard::ShardConfig {
            kv_budget: self
                .shard_kv_budget_mb
                .map_or(defaults.kv_budget, |mb| mb.saturating_mul(1 << 20)),
            idle: self
                .shard_idle_secs
                .map_or(defaults.idle, std::time::Duration::from_secs),
        };
        c.provide = Some(aicoin_node::ProvideConfig {
            api_url: self.url.clone(),
            payout: self.payout,
            gpu: self.gpu,
            stake,
            shards,
            shard,
        });
        Ok(())
    }
}

/// Default port of the paid gateway's OpenAI-compatible API.
pub const DEFAULT_GATEWAY_PORT: u16 = 8090;

/// Running the paid inference gateway (`--gateway`): OpenAI's `/v1` sold by API tiers, routed
/// to the registered providers.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GatewayArgs {
    /// Serve the paid gateway: API keys of accounts with a tier, routed to the compute
    /// providers (a validator's gateway registers itself; others are added by a validator).
    #[arg(long, env = "AICOIN_GATEWAY")]
    #[serde(default)]
    pub gateway: bool,
    /// Interface the gateway listens on [default: 127.0.0.1].
    #[arg(long, env = "AICOIN_GATEWAY_HOST")]
    pub gateway_host: Option<std::net::IpAddr>,
    /// Port of the gateway [default: 8090].
    #[arg(long, env = "AICOIN_GATEWAY_PORT")]
    pub gateway_port: Option<u16>,
    /// The URL users reach the gateway at, recorded on chain [default: its own address].
    #[arg(long, env = "AICOIN_GATEWAY_URL")]
    pub gateway_url: Option<String>,
}

impl GatewayArgs {
    pub fn or(self, file: Self) -> Self {
        Self {
            gateway: self.gateway || file.gateway,
            gateway_host: self.gateway_host.or(file.gateway_host),
            gateway_port: self.gateway_port.or(file.gateway_port),
            gateway_url: self.gateway_url.or(file.gateway_url),
        }
    }

    /// The gateway's settings, counting prompts with `models` (the local copies found).
    pub fn config(
        &self,
        models: Vec<aicoin_inference::LocalModel>,
    ) -> eyre::Result<Option<aicoin_gateway::GatewayConfig>> {
        if !self.gateway {
            return Ok(None);
        }
        if let Some(url) = &self.gateway_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            eyre::bail!("--gateway-url must be an http:// or https:// URL, got {url:?}");
        }
        let host = self
            .gateway_host
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Ok(Some(aicoin_gateway::GatewayConfig {
            addr: std::net::SocketAddr::new(
                host,
                self.gateway_port.unwrap_or(DEFAULT_GATEWAY_PORT),
            ),
            public_url: self.gateway_url.clone(),
            models,
            pipeline: aicoin_shard::CoordinatorConfig::default(),
        }))
    }
}
