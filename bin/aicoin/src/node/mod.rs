//! `aicoin node`: flags (each also an `AICOIN_*` variable and a key of the `--config` TOML file),
//! the start-up banner, and running until Ctrl-C or SIGTERM, or until the chain database can no
//! longer be written (then exiting non-zero, for a supervisor to restart it). With models fetched (or `--model`)
//! the node also serves the OpenAI-compatible inference API.
//!
//! Precedence: command line, then environment, then the config file, then the embedded default.

use std::{path::PathBuf, time::Duration};

use aicoin_node::{NodeConfig, default_data_dir};
use aicoin_primitives::ChainSpec;

use crate::serve::{ApiArgs, ModelArgs};
use alloy_primitives::hex;
use clap::Args;
use eyre::{WrapErr, bail};
use serde::Deserialize;

mod args;

pub use args::{ChainArgs, ClusterArgs, GatewayArgs, PoolArgs, ProvideArgs, RpcArgs};

#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeArgs {
    /// TOML file with any of these settings (keys named like the flags, e.g. `rpc-port = 8546`).
    #[arg(long, env = "AICOIN_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Development chain: prefund the ten `test … junk` mnemonic accounts with 10,000 AIC each.
    #[arg(long, env = "AICOIN_DEV")]
    #[serde(default)]
    dev: bool,
    #[command(flatten)]
    #[serde(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    #[serde(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pool: PoolArgs,
    #[command(flatten)]
    #[serde(flatten)]
    cluster: ClusterArgs,
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
    #[command(flatten)]
    #[serde(default)]
    provide: ProvideArgs,
    /// Do not probe and audit the compute providers (validators do by default).
    #[arg(long, env = "AICOIN_NO_PROBE")]
    #[serde(default)]
    no_probe: bool,
    #[command(flatten)]
    #[serde(flatten)]
    gateway: GatewayArgs,
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
        Ok(NodeArgs {
            config: self.config,
            dev: self.dev || file.dev,
            chain: self.chain.or(file.chain),
            rpc: self.rpc.or(file.rpc),
            pool: self.pool.or(file.pool),
            cluster: self.cluster.or(file.cluster),
            metrics_port: self.metrics_port.or(file.metrics_port),
            no_api: self.no_api || file.no_api,
            api: self.api.or(file.api),
            models: self.models.or(file.models),
            provide: self.provide.or(file.provide),
            no_probe: self.no_probe || file.no_probe,
            gateway: self.gateway.or(file.gateway),
        })
    }

    fn into_config(self) -> eyre::Result<NodeConfig> {
        let a = self.with_config_file()?;
        if a.chain.chain.is_some() && (a.dev || a.chain.chain_id.is_some()) {
            bail!(
                "--chain gives the whole chain spec: it cannot be combined with --dev or \
                 --chain-id (put prefunded accounts and the chain id in the spec file)"
            );
        }
        let chain_spec = match &a.chain.chain {
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
            .or(a.chain.chain_id)
            .unwrap_or(aicoin_primitives::AICOIN_CHAIN_ID);
        let data_dir = a
            .chain
            .data_dir
            .clone()
            .unwrap_or_else(|| default_data_dir(chain_id, a.dev));
        let mut c = NodeConfig::new(data_dir);
        c.chain_id = chain_id;
        c.chain_spec = chain_spec;
        c.dev = a.dev;
        if a.dev {
            // A development chain is its developer's: their test suites may call it as fast as
            // they like.
            c.rpc.rate_limit = None;
        }
        a.chain.apply(&mut c)?;
        a.rpc.apply(&mut c)?;
        a.pool.apply(&mut c);
        a.cluster.apply(&mut c)?;
        c.metrics_port = a.metrics_port;
        a.provide.apply(&mut c)?;
        c.probe.enabled = !a.no_probe;
        if c.role != aicoin_node::Role::Full && c.probe.enabled {
            let data_dir = a.chain.data_dir.as_deref();
            c.probe.audit_models =
                crate::model::resolve(&a.models.models_dir(data_dir), &a.models.model)?;
            c.probe.weights = a.models.weight_format();
        }
        if a.gateway.gateway {
            let data_dir = a.chain.data_dir.as_deref();
            let local = crate::model::resolve(&a.models.models_dir(data_dir), &a.models.model)?;
            c.gateway = a.gateway.config(local)?;
        }
        if !a.no_api {
            let data_dir = a.chain.data_dir.as_deref();
            c.api = a.api.config(&a.models, data_dir)?;
            if c.api.is_none() {
                tracing::info!(
                    models_dir = %a.models.models_dir(data_dir).path().display(),
                    "no models fetched, so no inference API (`aicoin model fetch smollm2` adds one)"
                );
            }
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
    let failed = tokio::select! {
        signal = wait_for_shutdown_signal() => {
            signal?;
            None
        }
        why = node.storage_failed() => Some(why),
    };
    tracing::info!("shutting down");
    node.stop().await;
    match failed {
        None => Ok(()),
        Some(why) => bail!(
            "the chain database can no longer be written ({why}); stopped, so that a supervisor \
             restarts the node once the disk has room again (every committed block is kept)"
        ),
    }
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
    if let Some(gateway) = node.gateway() {
        println!(
            "  Gateway:     {}/v1  (paid API: keys from `aicoin api-key create`)",
            gateway.url()
        );
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use aicoin_inference::SchedulerConfig;
    use aicoin_node::DEFAULT_SYNC_PORT;
    use aicoin_rpc::CorsOrigins;
    use clap::Args;

    use super::*;
    use crate::serve::{DEFAULT_API_PORT, DEFAULT_CONTEXT_LENGTH};

    /// Every `[default: …]` that `aicoin node --help` shows, by flag.
    fn documented_defaults() -> BTreeMap<String, String> {
        let command = NodeArgs::augment_args(clap::Command::new("node"));
        command
            .get_arguments()
            .filter_map(|arg| {
                let help = arg.get_long_help().or(arg.get_help())?.to_string();
                let (_, rest) = help.split_once("[default: ")?;
                let (default, _) = rest.split_once(']')?;
                Some((arg.get_long()?.to_string(), default.to_string()))
            })
            .collect()
    }

    /// The config file deploy/ ships is one `aicoin node` reads, and it sets what its comments
    /// say: RPC on loopback behind one trusted proxy, the sync port on every interface, two peers.
    #[test]
    fn the_deployment_config_file_is_read_as_documented() {
        let text = include_str!("../../../../deploy/aicoin.toml");
        let args: NodeArgs = toml::from_str(text).unwrap();
        let mut c = NodeConfig::new(PathBuf::from("/unused"));
        args.rpc.apply(&mut c).unwrap();
        args.cluster.apply(&mut c).unwrap();
        args.pool.apply(&mut c);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.rpc.trusted_proxies, vec![c.host]);
        assert_eq!(c.rpc.rate_limit.map(|r| r.get()), Some(1000));
        assert_eq!(c.sync_host().to_string(), "0.0.0.0");
        assert_eq!(c.role.as_str(), "validator");
        assert_eq!(c.peers.len(), 2);
        assert_eq!(
            args.chain.chain.as_deref(),
            Some(std::path::Path::new("/etc/aicoin/chain.json"))
        );
    }

    fn parse(args: &[&str]) -> NodeConfig {
        use clap::FromArgMatches;
        let command = NodeArgs::augment_args(clap::Command::new("node").no_binary_name(true));
        let matches = command.try_get_matches_from(args).unwrap();
        let args = NodeArgs::from_arg_matches(&matches).unwrap();
        args.into_config().unwrap()
    }

    /// A public node limits each client unless told otherwise; a development chain does not
    /// (its developer's test suites call it as fast as they like) unless given a limit.
    #[test]
    fn the_rate_limit_is_on_except_on_a_dev_chain() {
        let rate = |args: &[&str]| parse(args).rpc.rate_limit.map(|r| r.get());
        assert_eq!(rate(&["--data-dir", "/unused"]), Some(1000));
        assert_eq!(
            rate(&["--data-dir", "/unused", "--rpc-rate-limit", "0"]),
            None
        );
        assert_eq!(rate(&["--data-dir", "/unused", "--dev"]), None);
        assert_eq!(
            rate(&["--dev", "--data-dir", "/unused", "--rpc-rate-limit", "50"]),
            Some(50)
        );
    }

    /// Every default `--help` states is the value the node runs with when the flag is absent.
    #[test]
    fn help_defaults_are_the_config_defaults() {
        let c = NodeConfig::new(PathBuf::from("/unused"));
        let scheduler = SchedulerConfig::default();
        let shard = aicoin_shard::ShardConfig::default();
        let cors = match &c.rpc.cors {
            CorsOrigins::Any => "*".to_string(),
            CorsOrigins::List(origins) => origins.join(","),
        };
        let expected: BTreeMap<&str, String> = [
            ("chain-id", c.chain_id.to_string()),
            (
                "block-interval",
                format!("{:.1}", c.block_interval.as_secs_f64()),
            ),
            ("gas-limit", c.gas_limit.to_string()),
            ("host", c.host.to_string()),
            ("rpc-port", c.rpc_port.to_string()),
            ("rpc-cors", cors),
            (
                "rpc-rate-limit",
                c.rpc.rate_limit.map_or(0, |r| r.get()).to_string(),
            ),
            ("rpc-max-connections", c.rpc.max_connections.to_string()),
            (
                "rpc-max-connections-per-ip",
                c.rpc.max_connections_per_ip.to_string(),
            ),
            ("rpc-max-batch", c.rpc.max_batch_len.to_string()),
            (
                "rpc-max-request-bytes",
                c.rpc.max_request_body_bytes.to_string(),
            ),
            (
                "rpc-max-response-bytes",
                c.rpc.max_response_body_bytes.to_string(),
            ),
            (
                "rpc-max-logs-range",
                c.rpc_limits.max_logs_range.to_string(),
            ),
            ("rpc-max-logs", c.rpc_limits.max_logs.to_string()),
            (
                "rpc-trusted-proxies",
                match c.rpc.trusted_proxies.is_empty() {
                    true => "none".to_string(),
                    false => format!("{:?}", c.rpc.trusted_proxies),
                },
            ),
            ("txpool-max-txs", c.pool.max_txs.to_string()),
            ("txpool-max-bytes", c.pool.max_bytes.to_string()),
            ("txpool-max-queued", c.pool.max_queued.to_string()),
            ("txpool-max-per-sender", c.pool.max_per_sender.to_string()),
            ("txpool-max-nonce-gap", c.pool.max_nonce_gap.to_string()),
            (
                "txpool-queued-lifetime",
                c.pool.queued_lifetime.as_secs().to_string(),
            ),
            ("role", c.role.as_str().to_string()),
            ("sync-port", DEFAULT_SYNC_PORT.to_string()),
            ("priority", c.priority.to_string()),
            ("api-host", "127.0.0.1".to_string()),
            ("api-port", DEFAULT_API_PORT.to_string()),
            ("api-max-queue", scheduler.max_queue.to_string()),
            ("api-max-active", scheduler.max_active.to_string()),
            ("context-length", DEFAULT_CONTEXT_LENGTH.to_string()),
            ("device", "cpu".to_string()),
            ("weights", "fast".to_string()),
            ("gateway-host", "127.0.0.1".to_string()),
            ("gateway-port", args::DEFAULT_GATEWAY_PORT.to_string()),
            ("shard-kv-budget-mb", (shard.kv_budget >> 20).to_string()),
            ("shard-idle-secs", shard.idle.as_secs().to_string()),
        ]
        .into_iter()
        .collect();
        // Defaults that are described rather than a value.
        let described = [
            "data-dir",
            "miner-address",
            "admin-port",
            "sync-host",
            "public-rpc-url",
            "metrics-port",
            "model",
            "models-dir",
            "provide-url",
            "payout",
            "stake",
            "gateway-url",
        ];
        let documented = documented_defaults();
        for (flag, shown) in &documented {
            if described.contains(&flag.as_str()) {
                continue;
            }
            let Some(actual) = expected.get(flag.as_str()) else {
                panic!("--{flag} shows [default: {shown}]: add it to this test");
            };
            assert_eq!(shown, actual, "--{flag}: help and NodeConfig disagree");
        }
        for flag in expected.keys() {
            assert!(documented.contains_key(*flag), "--{flag} shows no default");
        }
    }
}
