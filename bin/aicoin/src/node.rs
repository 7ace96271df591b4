//! `aicoin node`: flags (each also an `AICOIN_*` variable and a key of the `--config` TOML file),
//! the start-up banner, and running until Ctrl-C or SIGTERM. With models fetched (or `--model`)
//! the node also serves the OpenAI-compatible inference API.
//!
//! Precedence: command line, then environment, then the config file, then the embedded default.

use std::{net::IpAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use aicoin_node::{NodeConfig, Role, default_data_dir, parse_peers};
use aicoin_primitives::ChainSpec;
use aicoin_rpc::CorsOrigins;

use crate::serve::{ApiArgs, ModelArgs};
use alloy_primitives::{Address, hex};
use clap::Args;
use eyre::{WrapErr, bail};
use serde::Deserialize;

#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeArgs {
    /// TOML file with any of these settings (keys named like the flags, e.g. `rpc-port = 8546`).
    #[arg(long, env = "AICOIN_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address the JSON-RPC server binds [default: 127.0.0.1].
    #[arg(long, env = "AICOIN_HOST")]
    host: Option<IpAddr>,
    /// JSON-RPC port, HTTP and WebSocket; 0 picks a free one [default: 8546].
    #[arg(long, env = "AICOIN_RPC_PORT")]
    rpc_port: Option<u16>,
    /// Chain id [default: 2108].
    #[arg(long, env = "AICOIN_CHAIN_ID")]
    chain_id: Option<u64>,
    /// Receives the miner share (80%) of block rewards [default: the validator address].
    #[arg(long, env = "AICOIN_MINER_ADDRESS")]
    miner_address: Option<Address>,
    /// Where the chain and the validator key live [default: ~/.local/share/aicoin/<chain-id>].
    #[arg(long, env = "AICOIN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds between blocks; fractions allowed [default: 3.0].
    #[arg(long, env = "AICOIN_BLOCK_INTERVAL")]
    block_interval: Option<f64>,
    /// Gas limit of produced blocks [default: 30000000].
    #[arg(long, env = "AICOIN_GAS_LIMIT")]
    gas_limit: Option<u64>,
    /// Development chain: prefund the ten `test … junk` mnemonic accounts with 10,000 AIC each.
    #[arg(long, env = "AICOIN_DEV")]
    #[serde(default)]
    dev: bool,
    /// Chain spec file (JSON, as `aicoin chain-spec` prints) instead of the built-in one.
    #[arg(long, env = "AICOIN_CHAIN")]
    chain: Option<PathBuf>,
    /// Cluster role: leader, follower, validator or full [default: leader].
    #[arg(long, env = "AICOIN_ROLE")]
    role: Option<Role>,
    /// Node-to-node port of a cluster member [default: 9551]. A standalone validator serves its
    /// blocks there to full nodes (`--role full --bootnodes`) only when it is given.
    #[arg(long, env = "AICOIN_SYNC_PORT")]
    sync_port: Option<u16>,
    /// The URL other nodes reach this node's sync port at, when not http://host:sync-port
    /// (NAT, a proxy).
    #[arg(long, env = "AICOIN_ADVERTISE_SYNC_URL")]
    advertise_sync_url: Option<String>,
    /// This node's id in the cluster.
    #[arg(long, env = "AICOIN_NODE_ID")]
    node_id: Option<String>,
    /// Failover priority: 1 is the highest (wins elections first), then 2, 3, … [default: 1].
    #[arg(long, env = "AICOIN_PRIORITY")]
    priority: Option<u32>,
    /// Peers, as the spec's JSON list: [{"node_id","host","sync_port","rpc_port","role","priority"}].
    #[arg(long, env = "AICOIN_PEERS")]
    peers: Option<String>,
    /// Validators' sync URLs a full node (`--role full`) follows, comma-separated
    /// (`http://host:9551`).
    #[arg(long, env = "AICOIN_BOOTNODES", value_delimiter = ',')]
    bootnodes: Option<Vec<String>>,
    /// Cluster admin API port on 127.0.0.1, for `aicoin cluster` [default: --sync-port + 100].
    #[arg(long, env = "AICOIN_ADMIN_PORT")]
    admin_port: Option<u16>,
    /// Pool: most transactions held, pending and queued [default: 16384].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_TXS")]
    txpool_max_txs: Option<usize>,
    /// Pool: most bytes of encoded transactions held [default: 134217728].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_BYTES")]
    txpool_max_bytes: Option<usize>,
    /// Pool: most queued (nonce-gapped) transactions across senders [default: 2048].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_QUEUED")]
    txpool_max_queued: Option<usize>,
    /// Pool: most transactions one sender may hold [default: 256].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_PER_SENDER")]
    txpool_max_per_sender: Option<usize>,
    /// Pool: how far a nonce may run ahead of the account's [default: 64].
    #[arg(long, env = "AICOIN_TXPOOL_MAX_NONCE_GAP")]
    txpool_max_nonce_gap: Option<u64>,
    /// Pool: seconds a queued transaction may wait before eviction [default: 10800].
    #[arg(long, env = "AICOIN_TXPOOL_QUEUED_LIFETIME")]
    txpool_queued_lifetime: Option<u64>,
    /// Origins browsers may call the RPC from: `*` or a comma-separated list [default: *].
    #[arg(long, env = "AICOIN_RPC_CORS")]
    rpc_cors: Option<String>,
    /// Requests per second one client address may make; 0 for no limit [default: 0].
    #[arg(long, env = "AICOIN_RPC_RATE_LIMIT")]
    rpc_rate_limit: Option<u32>,
    /// Most simultaneous RPC connections [default: 500].
    #[arg(long, env = "AICOIN_RPC_MAX_CONNECTIONS")]
    rpc_max_connections: Option<u32>,
    /// Most simultaneous RPC connections from one client address [default: 128].
    #[arg(long, env = "AICOIN_RPC_MAX_CONNECTIONS_PER_IP")]
    rpc_max_connections_per_ip: Option<u32>,
    /// Most calls in one JSON-RPC batch [default: 100].
    #[arg(long, env = "AICOIN_RPC_MAX_BATCH")]
    rpc_max_batch: Option<u32>,
    /// Largest request body, in bytes [default: 5242880].
    #[arg(long, env = "AICOIN_RPC_MAX_REQUEST_BYTES")]
    rpc_max_request_bytes: Option<u32>,
    /// Largest response body, in bytes [default: 104857600].
    #[arg(long, env = "AICOIN_RPC_MAX_RESPONSE_BYTES")]
    rpc_max_response_bytes: Option<u32>,
    /// Most blocks one eth_getLogs may scan [default: 10000].
    #[arg(long, env = "AICOIN_RPC_MAX_LOGS_RANGE")]
    rpc_max_logs_range: Option<u64>,
    /// Most logs one eth_getLogs may return [default: 20000].
    #[arg(long, env = "AICOIN_RPC_MAX_LOGS")]
    rpc_max_logs: Option<usize>,
    /// This node's public RPC URL: the one the MetaMask page at GET / hands to wallets, and the
    /// one other nodes forward transactions to [default: the page's own origin; http://host:port].
    #[arg(long, env = "AICOIN_PUBLIC_RPC_URL")]
    public_rpc_url: Option<String>,
    /// Serve Prometheus metrics at GET /metrics on this port of --host [default: off].
    #[arg(long, env = "AICOIN_METRICS_PORT")]
    metrics_port: Option<u16>,
    /// Do not serve the inference API even when models are fetched.
    #[arg(long, env = "AICOIN_NO_API")]
    #[serde(default)]
    no_api: bool,
    #[command(flatten)]
    #[serde(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    #[serde(flatten)]
    models: ModelArgs,
}

macro_rules! prefer {
    ($cli:ident, $file:ident; $($field:ident),*) => {
        NodeArgs {
            config: $cli.config,
            dev: $cli.dev || $file.dev,
            no_api: $cli.no_api || $file.no_api,
            api: $cli.api.or($file.api),
            models: $cli.models.or($file.models),
            $($field: $cli.$field.or($file.$field)),*
        }
    };
}

impl NodeArgs {
    /// These arguments, with gaps filled from the `--config` file.
    fn with_config_file(self) -> eyre::Result<Self> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .wrap_err_with(|| format!("cannot read config file {}", path.display()))?;
        let file: NodeArgs = toml::from_str(&text)
            .wrap_err_with(|| format!("invalid config file {}", path.display()))?;
        let cli = self;
        Ok(
            prefer!(cli, file; host, rpc_port, chain_id, miner_address, data_dir, block_interval,
            gas_limit, chain, role, sync_port, advertise_sync_url, node_id, priority, peers, admin_port, bootnodes, txpool_max_txs,
            txpool_max_bytes, txpool_max_queued, txpool_max_per_sender, txpool_max_nonce_gap,
            txpool_queued_lifetime, rpc_cors, rpc_rate_limit, rpc_max_connections, rpc_max_connections_per_ip, rpc_max_batch,
            rpc_max_request_bytes, rpc_max_response_bytes, rpc_max_logs_range, rpc_max_logs,
            public_rpc_url, metrics_port),
        )
    }

    fn into_config(self) -> eyre::Result<NodeConfig> {
        let a = self.with_config_file()?;
        if a.chain.is_some() && (a.dev || a.chain_id.is_some()) {
            bail!(
                "--chain gives the whole chain spec: it cannot be combined with --dev or \
                 --chain-id (put prefunded accounts and the chain id in the spec file)"
            );
        }
        let chain_spec = match &a.chain {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .wrap_err_with(|| format!("cannot read chain spec {}", path.display()))?;
                let spec: ChainSpec = serde_json::from_str(&text)
                    .wrap_err_with(|| format!("invalid chain spec {}", path.display()))?;
                Some(spec)
            }
            None => None,
        };
        let chain_id = chain_spec
            .as_ref()
            .map(|s| s.chain_id)
            .or(a.chain_id)
            .unwrap_or(aicoin_primitives::AICOIN_CHAIN_ID);
        let data_dir = a
            .data_dir
            .clone()
            .unwrap_or_else(|| default_data_dir(chain_id, a.dev));
        let mut c = NodeConfig::new(data_dir);
        c.chain_id = chain_id;
        c.chain_spec = chain_spec;
        c.dev = a.dev;
        c.miner_address = a.miner_address;
        if let Some(v) = a.host {
            c.host = v
        }
        if let Some(v) = a.rpc_port {
            c.rpc_port = v
        }
        if let Some(secs) = a.block_interval {
            c.block_interval = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    eyre::eyre!("--block-interval must be a positive number of seconds, got {secs}")
                })?;
        }
        if let Some(v) = a.gas_limit {
            c.gas_limit = v
        }
        if let Some(v) = a.role {
            c.role = v
        }
        c.sync_port = a.sync_port;
        c.advertise_sync_url = a.advertise_sync_url;
        c.node_id = a.node_id;
        if let Some(v) = a.priority {
            c.priority = v
        }
        if let Some(json) = &a.peers {
            c.peers = parse_peers(json).map_err(|e| eyre::eyre!(e))?;
        }
        c.bootnodes = a.bootnodes.clone().unwrap_or_default();
        c.admin_port = a.admin_port;
        let p = &mut c.pool;
        if let Some(v) = a.txpool_max_txs {
            p.max_txs = v
        }
        if let Some(v) = a.txpool_max_bytes {
            p.max_bytes = v
        }
        if let Some(v) = a.txpool_max_queued {
            p.max_queued = v
        }
        if let Some(v) = a.txpool_max_per_sender {
            p.max_per_sender = v
        }
        if let Some(v) = a.txpool_max_nonce_gap {
            p.max_nonce_gap = v
        }
        if let Some(v) = a.txpool_queued_lifetime {
            p.queued_lifetime = Duration::from_secs(v)
        }
        let r = &mut c.rpc;
        if let Some(origins) = &a.rpc_cors {
            r.cors = parse_cors(origins)?;
        }
        r.rate_limit = a.rpc_rate_limit.and_then(NonZeroU32::new);
        if let Some(v) = a.rpc_max_connections {
            r.max_connections = v
        }
        if let Some(v) = a.rpc_max_connections_per_ip {
            r.max_connections_per_ip = v
        }
        if let Some(v) = a.rpc_max_batch {
            r.max_batch_len = v
        }
        if let Some(v) = a.rpc_max_request_bytes {
            r.max_request_body_bytes = v
        }
        if let Some(v) = a.rpc_max_response_bytes {
            r.max_response_body_bytes = v
        }
        r.public_url = a.public_rpc_url;
        if let Some(v) = a.rpc_max_logs_range {
            c.rpc_limits.max_logs_range = v
        }
        if let Some(v) = a.rpc_max_logs {
            c.rpc_limits.max_logs = v
        }
        c.metrics_port = a.metrics_port;
        if !a.no_api {
            c.api = a.api.config(&a.models, a.data_dir.as_deref())?;
            if c.api.is_none() {
                tracing::info!(
                    models_dir = %a.models.models_dir(a.data_dir.as_deref()).path().display(),
                    "no models fetched, so no inference API (`aicoin model fetch smollm2` adds one)"
                );
            }
        }
        c.validate().map_err(|e| eyre::eyre!(e))?;
        Ok(c)
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

pub async fn run(args: NodeArgs) -> eyre::Result<()> {
    let config = args.into_config()?;
    let interval = config.block_interval;
    let gas_limit = config.gas_limit;
    let node = aicoin_node::spawn(config).await?;
    print_banner(&node, interval, gas_limit);
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down");
    node.stop().await;
    Ok(())
}

fn print_banner(node: &aicoin_node::NodeHandle, interval: Duration, gas_limit: u64) {
    let spec = node.spec();
    let key_note = match node.key_created() {
        true => " (new key created)",
        false => "",
    };
    println!("AICoin node v{}", env!("CARGO_PKG_VERSION"));
    println!(
        "  RPC URL:     {}  (WebSocket {})",
        node.rpc_url(),
        node.ws_url()
    );
    println!(
        "  MetaMask:    {}/  (a page that adds this network)",
        node.rpc_url()
    );
    println!("  Chain id:    {} (0x{:x})", spec.chain_id, spec.chain_id);
    println!("  Validator:   {}{key_note}", node.validator());
    println!("  Rewards to:  {}", node.beneficiary());
    println!("  Genesis:     {}", node.genesis_hash());
    println!("  Data dir:    {}", node.data_dir().display());
    if let Some(api) = node.api() {
        crate::serve::print_banner(api);
    }
    if let Some(addr) = node.metrics_addr() {
        println!("  Metrics:     http://{addr}/metrics");
    }
    if let Some(addr) = node.sync_addr() {
        println!("  Sync:        http://{addr}  (full nodes: --role full --bootnodes <this>)");
    }
    if let Some(admin) = node.cluster().and_then(|c| c.admin_addr()) {
        println!("  Admin:       http://{admin}  (aicoin cluster status --admin-url …)");
    }
    println!(
        "  Blocks:      every {:?}, gas limit {gas_limit}, zero fees",
        interval
    );
    if !node.dev_accounts().is_empty() {
        let each = aicoin_primitives::chain_spec::DEV_ACCOUNT_BALANCE_AIC;
        println!();
        println!(
            "Dev mode: {} accounts prefunded with {each} AIC each",
            node.dev_accounts().len()
        );
        println!("(mnemonic \"{}\")", aicoin_primitives::dev::DEV_MNEMONIC);
        for (i, signer) in node.dev_accounts().iter().enumerate() {
            println!(
                "  ({i}) {}  key 0x{}",
                signer.address(),
                hex::encode(signer.to_bytes())
            );
        }
    }
    println!();
}

pub async fn wait_for_shutdown_signal() -> eyre::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
