//! `aicoin bench`: block production at different state sizes, what a chain-module call costs,
//! the ingest→receipt rate of a node
//! over JSON-RPC, and JSON-RPC read load (against this node in-process, or any node with the dev
//! accounts, e.g. anvil), a full node's sync speed, a text model's inference speed, and what a
//! proof-of-compute audit costs beside the generation it checks, and what a governance vote and a
//! snapshot-weight read cost as history grows, and what a pipeline of shards costs beside one
//! node.
//! Every figure is the median over rounds; run on a quiet machine and compare side by side.

mod audit;
mod execute;
mod gateway;
mod governance;
mod inference;
mod ingest;
mod modules;
mod pipeline;
mod rpc;
mod sync;

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U64};
use clap::{Args, Subcommand};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Build, execute, root and commit blocks of transfers and ERC-20 transfers.
    Execute(execute::ExecuteArgs),
    /// Send signed transfers over JSON-RPC as fast as the node takes them; time until mined.
    Ingest(ingest::IngestArgs),
    /// Gas and time of one call into a chain module, beside a built-in precompile and a plain
    /// call.
    Modules(modules::ModulesArgs),
    /// Mixed JSON-RPC reads from many concurrent clients: req/s, latency, server memory.
    Rpc(rpc::RpcLoadArgs),
    /// Prefill and decode tokens/s, time to first token and peak memory of a text model, for
    /// one and several concurrent streams.
    Inference(inference::InferenceArgs),
    /// Blocks/s of a fresh full node syncing a validator's chain by height (seal checks and
    /// re-execution included).
    Sync(sync::SyncArgs),
    /// What auditing an answer costs beside generating it (validator CPU per probe).
    Audit(audit::AuditArgs),
    /// Gas and time of a governance vote, and of a snapshot-weight read as history grows.
    Governance(governance::GovernanceArgs),
    /// Latency the paid gateway adds, and its throughput beside calling the provider directly.
    Gateway(gateway::GatewayArgs),
    /// Decode tokens/s of a model split in shards over loopback beside one node, and the pause
    /// a dying shard costs (kill to next token).
    Pipeline(pipeline::PipelineArgs),
}

pub async fn run(args: BenchArgs) -> eyre::Result<()> {
    match args.command {
        BenchCommand::Execute(a) => tokio::task::spawn_blocking(move || execute::run(a)).await?,
        BenchCommand::Ingest(a) => ingest::run(a).await,
        BenchCommand::Modules(a) => tokio::task::spawn_blocking(move || modules::run(a)).await?,
        BenchCommand::Rpc(a) => rpc::run(a).await,
        BenchCommand::Inference(a) => inference::run(a).await,
        BenchCommand::Sync(a) => sync::run(a).await,
        BenchCommand::Audit(a) => tokio::task::spawn_blocking(move || audit::run(a)).await?,
        BenchCommand::Governance(a) => {
            tokio::task::spawn_blocking(move || governance::run(a)).await?
        }
        BenchCommand::Gateway(a) => gateway::run(a).await,
        BenchCommand::Pipeline(a) => tokio::task::spawn_blocking(move || pipeline::run(a)).await?,
    }
}

/// A JSON-RPC client for a node under load: a generous timeout, since a loaded node is slow.
fn http_client(url: &str) -> eyre::Result<HttpClient> {
    Ok(HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(60))
        .build(url)?)
}

/// Waits until each account's mined nonce reaches its target, asking about one account at a
/// time (so the waiting does not load the node it measures); at most 10 minutes.
async fn wait_until_mined(
    client: &HttpClient,
    targets: impl IntoIterator<Item = (Address, u64)>,
) -> eyre::Result<()> {
    let started = Instant::now();
    for (account, target) in targets {
        loop {
            let nonce: U64 = client
                .request("eth_getTransactionCount", rpc_params![account, "latest"])
                .await?;
            if nonce.to::<u64>() >= target {
                break;
            }
            eyre::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "transactions not mined within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Median of `values` (upper median for even counts).
fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// A `/proc/<pid>/status` memory figure (`VmRSS`, `VmHWM`, …) in KiB (Linux).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time a process has used, user and system, from `/proc/<pid>/stat` (Linux; its clock ticks
/// are `USER_HZ`, 100 a second on every Linux build).
fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let (user, system): (u64, u64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some(Duration::from_millis((user + system) * 10))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
