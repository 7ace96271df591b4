//! `aicoin devnet --validators 3 --providers 2`: a local network on one machine. Writes one
//! chain spec naming every validator as an authority (with the dev accounts prefunded, and
//! each provider's key funded for its stake), starts each validator and each compute provider
//! as its own `aicoin node` process, and prints their URLs and PIDs; `kill -9` one and watch
//! the others carry on, or watch the providers being measured, audited and paid each epoch
//! (`aic_providers`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use aicoin_inference::LocalModel;
use aicoin_node::{DEFAULT_RPC_PORT, DEFAULT_SYNC_PORT, load_or_create_validator_key};
use aicoin_primitives::{
    AIC, AICOIN_CHAIN_ID, ChainSpec, GenesisAccount, dev::dev_signers, registry::ListedModel,
};
use alloy_primitives::U256;
use clap::Args;
use eyre::{WrapErr, bail};

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// How many validators (3 or 5 to survive one or two failures).
    #[arg(long, env = "AICOIN_DEVNET_VALIDATORS", default_value_t = 3)]
    validators: usize,
    /// How many compute providers (full nodes serving the models with `--provide`).
    #[arg(long, env = "AICOIN_DEVNET_PROVIDERS", default_value_t = 0)]
    providers: usize,
    /// Blocks per proof-of-compute epoch [default: the chain's 100].
    #[arg(long, env = "AICOIN_DEVNET_EPOCH_BLOCKS")]
    epoch_blocks: Option<u64>,
    /// The model the providers serve and the validators audit with: a GGUF file or model
    /// directory [default: every model in the models directory].
    #[arg(long, env = "AICOIN_MODEL")]
    model: Option<PathBuf>,
    /// Where fetched models are [default: ~/.local/share/aicoin/models].
    #[arg(long, env = "AICOIN_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Inference API port of the first provider; the others count up.
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Where the validators' data dirs and the chain spec go [default: ~/.local/share/aicoin/devnet].
    #[arg(long, env = "AICOIN_DEVNET_DIR")]
    dir: Option<PathBuf>,
    /// JSON-RPC port of the first validator; the others count up.
    #[arg(long, default_value_t = DEFAULT_RPC_PORT)]
    rpc_port: u16,
    /// Node-to-node port of the first validator; the others count up (admin ports are 100 above).
    #[arg(long, default_value_t = DEFAULT_SYNC_PORT)]
    sync_port: u16,
    /// Seconds between blocks.
    #[arg(long, default_value_t = 3.0)]
    block_interval: f64,
    /// Write the spec and keys and print each validator's `aicoin node` arguments as JSON,
    /// without starting anything.
    #[arg(long)]
    prepare: bool,
    /// Split the first text model's layers into this many contiguous ranges, served by the
    /// providers as pipeline shards (the first N providers one range each, in order; any
    /// beyond N are spares, from the middle range on), for the gateway to chain: kill the
    /// middle shard and watch the gateway go on.
    #[arg(long, env = "AICOIN_DEVNET_SHARDS", default_value_t = 0)]
    shards: usize,
    /// The first validator also runs the paid gateway, on this port (it registers itself).
    #[arg(long, env = "AICOIN_DEVNET_GATEWAY_PORT")]
    gateway_port: Option<u16>,
    /// A chain parameter's genesis value, `name=value` (repeatable), e.g.
    /// `--param subscriptionBlocks=600`.
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, U256)>,
}

/// `name=value` of a known parameter, the value in its own units (wei, blocks, bps).
fn parse_param(text: &str) -> Result<(String, U256), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not name=value"))?;
    if aicoin_primitives::param_by_key(&aicoin_primitives::param_key(name)).is_none() {
        return Err(format!(
            "{name:?} is not a chain parameter (see aic_getParams)"
        ));
    }
    let value = value
        .parse::<U256>()
        .map_err(|e| format!("{name}={value}: {e}"))?;
    Ok((name.to_string(), value))
}

/// AIC each provider's key is given at genesis, for its stake.
const PROVIDER_FUNDS_AIC: u64 = 1_000;

/// One node process of the devnet.
struct Node {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    rpc_port: u16,
    /// The cluster admin port of a validator, the inference API port of a provider.
    port: u16,
    provider: bool,
}

/// The key of the node whose data dir is `dir` (created on first use).
fn node_key(dir: &Path) -> eyre::Result<alloy_primitives::Address> {
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    Ok(load_or_create_validator_key(dir)?.0.address())
}

/// The models the providers serve: `--model`, else the models directory's models.
fn models(args: &DevnetArgs) -> eyre::Result<Vec<LocalModel>> {
    let dir = crate::model::ModelsDir {
        data_dir: None,
        models_dir: args.models_dir.clone(),
    };
    let given: Vec<String> = args.model.iter().map(|p| p.display().to_string()).collect();
    crate::model::resolve(&dir, &given)
}

/// `--shards N`: the first text model's layers in N contiguous ranges, as even as they go.
fn shard_ranges(
    args: &DevnetArgs,
    models: &[aicoin_inference::LocalModel],
) -> eyre::Result<Vec<aicoin_shard::ShardSpec>> {
    if args.shards == 0 {
        return Ok(Vec::new());
    }
    if args.providers < args.shards {
        bail!(
            "--shards {} needs at least as many --providers",
            args.shards
        );
    }
    let Some(model) = models
        .iter()
        .find(|m| m.kind == aicoin_inference::ModelKind::Text)
    else {
        bail!("--shards needs a text model");
    };
    let layers = aicoin_inference::llama::Config::read(&model.path)
        .map_err(|e| eyre::eyre!("--shards needs a GGUF model of the llama family: {e}"))?
        .layers;
    if args.shards > layers {
        bail!(
            "{} has {layers} layers: --shards must be at most that",
            model.id
        );
    }
    Ok((0..args.shards)
        .map(|i| aicoin_shard::ShardSpec {
            model: model.id.clone(),
            layers: layers * i / args.shards..layers * (i + 1) / args.shards,
        })
        .collect())
}

fn prepare(args: &DevnetArgs, dir: &Path) -> eyre::Result<Vec<Node>> {
    if !(1..=16).contains(&args.validators) {
        bail!("--validators must be between 1 and 16");
    }
    if args.providers > 16 {
        bail!("--providers must be at most 16");
    }
    let models = models(args)?;
    if args.providers > 0
        && !models
            .iter()
            .any(|m| m.kind == aicoin_inference::ModelKind::Text)
    {
        bail!("--providers needs a text model: `aicoin model fetch smollm2`, or --model PATH");
    }
    let mut addresses = Vec::new();
    for i in 0..args.validators {
        addresses.push(node_key(&dir.join(format!("node-{}", i + 1)))?);
    }
    let mut provider_keys = Vec::new();
    for i in 0..args.providers {
        provider_keys.push(node_key(&dir.join(format!("provider-{}", i + 1)))?);
    }
    let spec_path = dir.join("chain.json");
    if !spec_path.exists() {
        let dev: Vec<_> = dev_signers()?.iter().map(|s| s.address()).collect();
        let mut spec = ChainSpec::local(AICOIN_CHAIN_ID, addresses[0], &dev);
        spec.authorities = addresses.clone();
        for key in &provider_keys {
            spec.genesis.alloc.insert(
                *key,
                GenesisAccount {
                    balance: AIC * U256::from(PROVIDER_FUNDS_AIC),
                    ..Default::default()
                },
            );
        }
        if let Some(blocks) = args.epoch_blocks {
            spec.params
                .insert("epochLength".into(), U256::from(blocks.max(1)));
        }
        for (name, value) in &args.params {
            spec.params.insert(name.clone(), *value);
        }
        for model in &models {
            // The default list holds the catalog's models; any other counts one unit a token.
            if !spec.models.iter().any(|m| m.id == model.id) {
                spec.models.push(ListedModel {
                    id: model.id.clone(),
                    units: 1,
                    ..ListedModel::default()
                });
            }
        }
        std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)?;
    }
    let model_args: Vec<String> = models
        .iter()
        .flat_map(|m| ["--model".to_string(), m.path.display().to_string()])
        .collect();
    let port = |base: u16, i: usize| base + i as u16;
    let mut nodes = Vec::new();
    for i in 0..args.validators {
        let name = format!("node-{}", i + 1);
        let peers: Vec<_> = (0..args.validators)
            .filter(|j| *j != i)
            .map(|j| {
                serde_json::json!({
                    "node_id": format!("node-{}", j + 1),
                    "host": "127.0.0.1",
                    "sync_port": port(args.sync_port, j),
                    "rpc_port": port(args.rpc_port, j),
                    "role": "validator",
                    "priority": j + 1,
                })
            })
            .collect();
        let node_dir = dir.join(&name);
        let node_args = vec![
            "node".to_string(),
            "--chain".into(),
            spec_path.display().to_string(),
            "--data-dir".into(),
            node_dir.display().to_string(),
            "--rpc-port".into(),
            port(args.rpc_port, i).to_string(),
            "--sync-port".into(),
            port(args.sync_port, i).to_string(),
            "--node-id".into(),
            name.clone(),
            "--priority".into(),
            (i + 1).to_string(),
            "--role".into(),
            "validator".into(),
            "--block-interval".into(),
            args.block_interval.to_string(),
            "--no-api".into(),
            "--peers".into(),
            serde_json::to_string(&peers)?,
        ];
        let mut node_args = node_args;
        node_args.extend(model_args.iter().cloned());
        if let (0, Some(port)) = (i, args.gateway_port) {
            node_args.extend([
                "--gateway".into(),
                "--gateway-port".into(),
                port.to_string(),
            ]);
        }
        nodes.push(Node {
            name,
            dir: node_dir,
            args: node_args,
            rpc_port: port(args.rpc_port, i),
            port: port(args.sync_port, i) + 100,
            provider: false,
        });
    }
    let shards = shard_ranges(args, &models)?;
    let bootnodes: Vec<String> = (0..args.validators)
        .map(|j| format!("http://127.0.0.1:{}", port(args.sync_port, j)))
        .collect();
    for i in 0..args.providers {
        let name = format!("provider-{}", i + 1);
        let node_dir = dir.join(&name);
        let rpc_port = port(args.rpc_port, args.validators + i);
        let api_port = port(args.api_port, i);
        let mut node_args = vec![
            "node".to_string(),
            "--chain".into(),
            spec_path.display().to_string(),
            "--data-dir".into(),
            node_dir.display().to_string(),
            "--role".into(),
            "full".into(),
            "--bootnodes".into(),
            bootnodes.join(","),
            "--rpc-port".into(),
            rpc_port.to_string(),
            "--api-port".into(),
            api_port.to_string(),
            "--block-interval".into(),
            args.block_interval.to_string(),
            "--provide".into(),
        ];
        node_args.extend(model_args.iter().cloned());
        if !shards.is_empty() {
            let n = shards.len();
            let range = match i < n {
                true => i,
                false => (n / 2 + i - n) % n,
            };
            node_args.extend(["--shard".into(), shards[range].to_string()]);
        }
        nodes.push(Node {
            name,
            dir: node_dir,
            args: node_args,
            rpc_port,
            port: api_port,
            provider: true,
        });
    }
    Ok(nodes)
}

pub async fn run(args: DevnetArgs) -> eyre::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("aicoin")
            .join("devnet")
    });
    let nodes = prepare(&args, &dir)?;
    if args.prepare {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|v| serde_json::json!({ "name": v.name, "data_dir": v.dir, "args": v.args }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "chain_spec": dir.join("chain.json"),
                "nodes": nodes,
            }))?
        );
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut children: Vec<Child> = Vec::new();
    let validators = nodes.iter().filter(|n| !n.provider).count();
    println!(
        "AICoin devnet: {validators} validators, {} providers in {}",
        nodes.len() - validators,
        dir.display()
    );
    for v in &nodes {
        let log = std::fs::File::create(v.dir.join("node.log"))?;
        let child = Command::new(&exe)
            .args(&v.args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .wrap_err_with(|| format!("cannot start {}", v.name))?;
        let role = match v.provider {
            true => "API  ",
            false => "admin",
        };
        println!(
            "  {:<10}  pid {:<7}  RPC http://127.0.0.1:{}  {role} http://127.0.0.1:{}  log {}",
            v.name,
            child.id(),
            v.rpc_port,
            v.port,
            v.dir.join("node.log").display()
        );
        children.push(child);
    }
    println!();
    println!(
        "Status: aicoin cluster status --admin-url http://127.0.0.1:{}",
        nodes[0].port
    );
    if nodes.len() > validators {
        println!(
            "Providers: aicoin provider status --rpc-url http://127.0.0.1:{} (all of them: aic_providers)",
            nodes[0].rpc_port
        );
    }
    println!("Try failover: kill -9 the leader's pid; a new leader produces within seconds.");
    println!("Dev accounts (test … junk mnemonic) hold 10,000 AIC each. Ctrl-C stops the devnet.");
    crate::node::wait_for_shutdown_signal().await?;
    for child in &mut children {
        let _ = Command::new("kill").arg(child.id().to_string()).status();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    Ok(())
}
