//! `aicoin node`: flags (each also an `AICOIN_*` variable and a key of the `--config` TOML file),
//! the start-up banner, and running until Ctrl-C or SIGTERM.
//!
//! Precedence: command line, then environment, then the config file, then the embedded default.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use aicoin_node::{NodeConfig, Role, default_data_dir, parse_peers};
use aicoin_primitives::ChainSpec;
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
    /// Node-to-node port [default: 9551].
    #[arg(long, env = "AICOIN_SYNC_PORT")]
    sync_port: Option<u16>,
    /// This node's id in the cluster.
    #[arg(long, env = "AICOIN_NODE_ID")]
    node_id: Option<String>,
    /// Failover priority; higher wins elections [default: 1].
    #[arg(long, env = "AICOIN_PRIORITY")]
    priority: Option<u32>,
    /// Peers, as the spec's JSON list: [{"node_id","host","sync_port","rpc_port","role","priority"}].
    #[arg(long, env = "AICOIN_PEERS")]
    peers: Option<String>,
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
}

macro_rules! prefer {
    ($cli:ident, $file:ident; $($field:ident),*) => {
        NodeArgs { config: $cli.config, dev: $cli.dev || $file.dev, $($field: $cli.$field.or($file.$field)),* }
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
            gas_limit, chain, role, sync_port, node_id, priority, peers, txpool_max_txs,
            txpool_max_bytes, txpool_max_queued, txpool_max_per_sender, txpool_max_nonce_gap,
            txpool_queued_lifetime),
        )
    }

    fn into_config(self) -> eyre::Result<NodeConfig> {
        let a = self.with_config_file()?;
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
            if !secs.is_finite() || secs <= 0.0 {
                bail!("--block-interval must be a positive number of seconds, got {secs}");
            }
            c.block_interval = Duration::from_secs_f64(secs);
        }
        if let Some(v) = a.gas_limit {
            c.gas_limit = v
        }
        if let Some(v) = a.role {
            c.role = v
        }
        if let Some(v) = a.sync_port {
            c.sync_port = v
        }
        c.node_id = a.node_id;
        if let Some(v) = a.priority {
            c.priority = v
        }
        if let Some(json) = &a.peers {
            c.peers = parse_peers(json).map_err(|e| eyre::eyre!(e))?;
        }
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
        c.validate().map_err(|e| eyre::eyre!(e))?;
        Ok(c)
    }
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
    println!("  Chain id:    {} (0x{:x})", spec.chain_id, spec.chain_id);
    println!("  Validator:   {}{key_note}", node.validator());
    println!("  Rewards to:  {}", node.beneficiary());
    println!("  Genesis:     {}", node.genesis_hash());
    println!("  Data dir:    {}", node.data_dir().display());
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

async fn wait_for_shutdown_signal() -> eyre::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
