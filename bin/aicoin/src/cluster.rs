//! `aicoin cluster status|add|remove`: the validator cluster's admin API (localhost on each
//! validator, `--admin-port`), as a command line.

use aicoin_node::aicoin_cluster::ClusterStatus;
use clap::{Args, Subcommand};
use eyre::{WrapErr, bail};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The validator's admin API.
    #[arg(
        long,
        global = true,
        env = "AICOIN_ADMIN_URL",
        default_value = "http://127.0.0.1:9651"
    )]
    admin_url: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Leader, term, last committed block, and each validator's lag.
    Status,
    /// Add a running validator (an authority of the chain spec) by its sync URL.
    Add {
        /// The new validator's node-to-node URL, e.g. http://10.0.0.4:9551.
        sync_url: String,
    },
    /// Remove a validator by its address.
    Remove { address: alloy_primitives::Address },
}

pub async fn run(args: ClusterArgs) -> eyre::Result<()> {
    let base = args.admin_url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let request = match &args.command {
        ClusterCommand::Status => http.get(format!("{base}/cluster/status")),
        ClusterCommand::Add { sync_url } => http
            .post(format!("{base}/cluster/add"))
            .json(&serde_json::json!({ "sync_url": sync_url })),
        ClusterCommand::Remove { address } => http
            .post(format!("{base}/cluster/remove"))
            .json(&serde_json::json!({ "address": address })),
    };
    let response = request
        .send()
        .await
        .wrap_err_with(|| format!("cannot reach the admin API at {base}"))?;
    let ok = response.status().is_success();
    let body: serde_json::Value = response.json().await?;
    if !ok {
        bail!(
            "{}",
            body["error"].as_str().unwrap_or("the admin API refused")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let status: ClusterStatus = serde_json::from_value(body)?;
    print_status(&status);
    Ok(())
}

fn print_status(status: &ClusterStatus) {
    match status.leader {
        Some(leader) => println!("leader:            {leader}"),
        None => println!("leader:            none (election under way)"),
    }
    println!("term:              {}", status.term);
    println!(
        "committed block:   #{} {}",
        status.committed_block.number, status.committed_block.hash
    );
    println!();
    println!(
        "{:<44} {:<12} {:>8} {:<8} {:>8} {:>6}  sync / rpc",
        "validator", "name", "priority", "role", "matched", "lag"
    );
    for m in &status.members {
        let role = match (Some(m.address) == status.leader, m.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<44} {:<12} {:>8} {:<8} {:>8} {:>6}  {} / {}",
            m.address.to_string(),
            m.member.name,
            m.member.priority,
            role,
            show(m.matched_index),
            show(m.lag),
            m.member.sync_url,
            m.member.rpc_url
        );
    }
}
