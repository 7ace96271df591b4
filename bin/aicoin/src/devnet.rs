//! `aicoin devnet --validators 3`: a local replicated cluster on one machine, to try failover.
//! Writes one chain spec naming every validator as an authority (with the dev accounts
//! prefunded), starts each validator as its own `aicoin node` process, and prints their URLs and
//! PIDs; `kill -9` one and watch the others carry on.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use aicoin_node::{DEFAULT_RPC_PORT, DEFAULT_SYNC_PORT, load_or_create_validator_key};
use aicoin_primitives::{AICOIN_CHAIN_ID, ChainSpec, dev::dev_signers};
use clap::Args;
use eyre::{WrapErr, bail};

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// How many validators (3 or 5 to survive one or two failures).
    #[arg(long, env = "AICOIN_DEVNET_VALIDATORS", default_value_t = 3)]
    validators: usize,
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
}

struct Validator {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    rpc_port: u16,
    admin_port: u16,
}

fn prepare(args: &DevnetArgs, dir: &Path) -> eyre::Result<Vec<Validator>> {
    if !(1..=16).contains(&args.validators) {
        bail!("--validators must be between 1 and 16");
    }
    let mut addresses = Vec::new();
    for i in 0..args.validators {
        let node_dir = dir.join(format!("node-{}", i + 1));
        std::fs::create_dir_all(&node_dir)
            .wrap_err_with(|| format!("cannot create {}", node_dir.display()))?;
        let (key, _) = load_or_create_validator_key(&node_dir)?;
        addresses.push(key.address());
    }
    let spec_path = dir.join("chain.json");
    if !spec_path.exists() {
        let dev: Vec<_> = dev_signers()?.iter().map(|s| s.address()).collect();
        let mut spec = ChainSpec::local(AICOIN_CHAIN_ID, addresses[0], &dev);
        spec.authorities = addresses.clone();
        std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)?;
    }
    let port = |base: u16, i: usize| base + i as u16;
    let mut validators = Vec::new();
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
        validators.push(Validator {
            name,
            dir: node_dir,
            args: node_args,
            rpc_port: port(args.rpc_port, i),
            admin_port: port(args.sync_port, i) + 100,
        });
    }
    Ok(validators)
}

pub async fn run(args: DevnetArgs) -> eyre::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("aicoin")
            .join("devnet")
    });
    let validators = prepare(&args, &dir)?;
    if args.prepare {
        let nodes: Vec<_> = validators
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
    println!(
        "AICoin devnet: {} validators in {}",
        validators.len(),
        dir.display()
    );
    for v in &validators {
        let log = std::fs::File::create(v.dir.join("node.log"))?;
        let child = Command::new(&exe)
            .args(&v.args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .wrap_err_with(|| format!("cannot start {}", v.name))?;
        println!(
            "  {}  pid {:<7}  RPC http://127.0.0.1:{}  admin http://127.0.0.1:{}  log {}",
            v.name,
            child.id(),
            v.rpc_port,
            v.admin_port,
            v.dir.join("node.log").display()
        );
        children.push(child);
    }
    println!();
    println!(
        "Status: aicoin cluster status --admin-url http://127.0.0.1:{}",
        validators[0].admin_port
    );
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
