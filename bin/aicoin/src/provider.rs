//! `aicoin provider status`: a compute provider's registration, stake and last epochs (what
//! the validators measured, the score parts, the score and the reward), read from any node.

use aicoin_modules::registry::IComputeRegistry;
use aicoin_primitives::modules::REGISTRY_ADDRESS;
use aicoin_rpc::{EpochInfo, ProviderInfo};
use aicoin_wallet::format_aic;
use alloy_primitives::{Address, Bytes};
use alloy_sol_types::SolCall;
use clap::{Args, Subcommand};
use eyre::{WrapErr, bail, eyre};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use serde_json::json;

use crate::wallet::RpcUrl;

#[derive(Debug, Args)]
pub struct ProviderArgs {
    #[command(subcommand)]
    command: ProviderCommand,
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// A provider's registration, stake, and its last epochs' scores and rewards.
    Status {
        /// The provider's address [default: the key in --data-dir].
        #[arg(long)]
        address: Option<Address>,
        /// The provider node's data dir, whose key is the provider's address.
        #[arg(long, env = "AICOIN_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
        /// How many settled epochs to show.
        #[arg(long, default_value_t = 5)]
        epochs: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: RpcUrl,
    },
}

pub async fn run(args: ProviderArgs) -> eyre::Result<()> {
    match args.command {
        ProviderCommand::Status {
            address,
            data_dir,
            epochs,
            json,
            rpc,
        } => {
            let address = match (address, data_dir) {
                (Some(address), _) => address,
                (None, Some(dir)) => aicoin_node::load_or_create_validator_key(&dir)
                    .wrap_err_with(|| format!("cannot read the key in {}", dir.display()))?
                    .0
                    .address(),
                (None, None) => bail!("say which provider: --address, or --data-dir of its node"),
            };
            status(&rpc.rpc_url, address, epochs, json).await
        }
    }
}

async fn status(url: &str, address: Address, epochs: u64, json: bool) -> eyre::Result<()> {
    let client = HttpClientBuilder::default()
        .build(url)
        .wrap_err_with(|| format!("bad --rpc-url {url}"))?;
    let providers: Vec<ProviderInfo> = client
        .request("aic_providers", rpc_params![])
        .await
        .wrap_err_with(|| format!("cannot read the providers from {url}"))?;
    let epoch: EpochInfo = client.request("aic_epoch", rpc_params![]).await?;
    let Some(provider) = providers.into_iter().find(|p| p.address == address) else {
        bail!(
            "{address} is not registered as a provider (a provider node registers itself with \
             `aicoin node --provide` once its key holds the stake)"
        );
    };
    // Epochs up to `epoch - 2` are settled.
    let last_settled = epoch.epoch.checked_sub(2);
    let mut records = Vec::new();
    if let Some(last) = last_settled {
        for e in (last.saturating_sub(epochs.saturating_sub(1))..=last).rev() {
            let record = call(
                &client,
                IComputeRegistry::epochRecordCall {
                    account: address,
                    epoch: e,
                },
            )
            .await?;
            if record.settled && record.reporters > 0 {
                records.push((e, record));
            }
        }
    }
    if json {
        let rows: Vec<_> = records
            .iter()
            .map(|(e, r)| {
                json!({
                    "epoch": e, "reporters": r.reporters, "jobs": r.median.jobs,
                    "answered": r.median.answered, "audited": r.median.audited,
                    "auditFailed": r.auditFailed, "ttftMs": r.median.ttftMs,
                    "tokens": r.median.tokens, "rate": r.median.rate,
                    "utilization": r.utilization, "throughput": r.throughput,
                    "uptime": r.uptime, "completion": r.completion, "score": r.score,
                    "reward": r.reward.to_string(), "slashed": r.slashed.to_string(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "provider": provider, "epoch": epoch, "epochs": rows })
            )?
        );
        return Ok(());
    }
    let status = match provider.status.as_str() {
        "leaving" => format!(
            "leaving (stake unbonds at epoch {})",
            provider.unbonding_epoch
        ),
        other => other.to_string(),
    };
    println!("Provider {}  {status}", provider.address);
    println!("  API:        {}", provider.api_url);
    println!("  Models:     {}", provider.models.join(", "));
    for shard in &provider.shards {
        println!(
            "  Shard:      layers {}..{} of {} (a pipeline shard)",
            shard.start, shard.end, shard.model
        );
    }
    println!("  Hardware:   {}", provider.hardware);
    println!("  Payout:     {}", provider.payout);
    println!("  Stake:      {} AIC", format_aic(provider.stake));
    println!("  Registered: block {}", provider.registered_at);
    match provider.up_since {
        0 => println!("  Up since:   not up"),
        block => println!("  Up since:   block {block}"),
    }
    println!("  Audit failures: {}", provider.audit_failures);
    println!(
        "  Epoch:      {} (ends at block {}; epochs up to {} are settled)",
        epoch.epoch,
        epoch.last_block,
        last_settled.map_or("none".into(), |e| e.to_string())
    );
    if records.is_empty() {
        println!("\nNo settled epoch measured this provider yet.");
        return Ok(());
    }
    println!();
    println!(
        "{:>6} {:>4} {:>5} {:>8} {:>8} {:>6} {:>7} {:>7} {:>11} {:>6} {:>6} {:>6} {:>6} {:>6} {:>24}",
        "epoch",
        "vals",
        "jobs",
        "answered",
        "audited",
        "failed",
        "ttft ms",
        "tokens",
        "rate",
        "util",
        "thru",
        "uptime",
        "compl",
        "score",
        "reward (AIC)"
    );
    for (e, r) in &records {
        let failed = match r.auditFailed {
            true => format!("{}!", r.median.auditFailed),
            false => r.median.auditFailed.to_string(),
        };
        println!(
            "{:>6} {:>4} {:>5} {:>8} {:>8} {:>6} {:>7} {:>7} {:>11} {:>6} {:>6} {:>6} {:>6} {:>6} {:>24}",
            e,
            r.reporters,
            r.median.jobs,
            r.median.answered,
            r.median.audited,
            failed,
            r.median.ttftMs,
            r.median.tokens,
            r.median.rate,
            r.utilization,
            r.throughput,
            r.uptime,
            r.completion,
            r.score,
            format_aic(r.reward),
        );
        if !r.slashed.is_zero() {
            println!(
                "{:>6} slashed {} AIC for failed audits",
                "",
                format_aic(r.slashed)
            );
        }
    }
    Ok(())
}

async fn call<C: SolCall>(client: &HttpClient, call: C) -> eyre::Result<C::Return> {
    let data = Bytes::from(call.abi_encode());
    let out: Bytes = client
        .request(
            "eth_call",
            rpc_params![json!({ "to": REGISTRY_ADDRESS, "data": data }), "latest"],
        )
        .await?;
    C::abi_decode_returns(&out).map_err(|e| eyre!("the registry answered something else: {e}"))
}
