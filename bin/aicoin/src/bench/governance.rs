//! What governance costs: a vote (its gas, and the time of the whole `vote` call on the
//! `eth_call` path, EVM built per call) and a snapshot-weight read (`getVotes`) as the chain's
//! history grows. Each run builds a real chain (blocks produced, executed and committed by the
//! node's engine) in which the voter's balance changes in every block, so its history holds one
//! entry per block, and the treasury, registry and supply change every block too; the proposal
//! was made at block 1, so its snapshot is the oldest state there is.

use std::time::Instant;

use aicoin_execution::{CallEnv, CallOutcome, StateDb, block_env, call};
use aicoin_modules::governance::IGovernance;
use aicoin_primitives::{modules::GOVERNANCE_ADDRESS, param_key};
use alloy_primitives::{Bytes, TxKind, U256};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_sol_types::{SolCall, SolValue};
use clap::Args;

use super::{execute::Setup, median};

#[derive(Debug, Args)]
pub struct GovernanceArgs {
    /// Blocks of history, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 1_000_000])]
    history: Vec<u64>,
    /// Calls per round.
    #[arg(long, default_value_t = 1_000)]
    calls: usize,
    /// Measured rounds (after one warm-up round).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

struct Row {
    history: u64,
    build_s: f64,
    oldest_ns: u128,
    middle_ns: u128,
    head_ns: u128,
    vote_gas: u64,
    vote_ns: u128,
}

pub fn run(args: GovernanceArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.calls > 0 && args.rounds > 0 && args.history.iter().all(|&h| h >= 2),
        "--calls and --rounds must be positive and every --history at least 2"
    );
    let mut rows = Vec::new();
    for &history in &args.history {
        rows.push(bench(history, &args)?);
    }
    println!(
        "governance: eth_call path, median of {} rounds of {} calls",
        args.rounds, args.calls
    );
    println!(
        "| history (blocks) | build (s) | getVotes at block 0 (ns) | getVotes mid-history (ns) | \
         getVotes at head-1 (ns) | vote gas | vote (ns) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} |",
            r.history, r.build_s, r.oldest_ns, r.middle_ns, r.head_ns, r.vote_gas, r.vote_ns
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last())
        && rows.len() > 1
    {
        println!(
            "getVotes at block 0: {:.2}x from {} to {} blocks of history",
            last.oldest_ns as f64 / first.oldest_ns as f64,
            first.history,
            last.history
        );
    }
    Ok(())
}

fn bench(history: u64, args: &GovernanceArgs) -> eyre::Result<Row> {
    // Anyone may propose, and the vote stays open for the whole run (the longest vote allowed).
    let voting_blocks = aicoin_primitives::PARAMS
        .iter()
        .find(|p| p.name == "votingBlocks")
        .map_or(U256::ZERO, |p| p.max);
    eyre::ensure!(
        U256::from(history) < voting_blocks,
        "--history must stay under votingBlocks' bound ({voting_blocks} blocks)"
    );
    let mut s = Setup::with_spec(1, 1, 1, |spec| {
        spec.params.insert("minProposerBalance".into(), U256::ZERO);
        spec.params.insert("votingBlocks".into(), voting_blocks);
    })?;
    let started = Instant::now();
    let payload = (param_key("epochLength"), U256::from(50u64)).abi_encode();
    let propose = IGovernance::proposeCall {
        kind: 0,
        payload: payload.into(),
        description: "bench".into(),
    };
    let tx = s.sign(
        0,
        TxKind::Call(GOVERNANCE_ADDRESS),
        propose.abi_encode().into(),
        U256::ZERO,
        1_000_000,
    );
    s.block(vec![tx])?;
    let voter = s.sender(0);
    for _ in 2..=history {
        let to = s.fresh_recipient();
        let tx = s.sign(0, TxKind::Call(to), Bytes::new(), U256::ONE, 21_000);
        s.block(vec![tx])?;
    }
    let build_s = started.elapsed().as_secs_f64();
    let store = s.chain.store();
    let head = store.reader()?.head_number()?;
    let header = store
        .reader()?
        .header(head)?
        .ok_or_else(|| eyre::eyre!("no head"))?;
    let mut env = CallEnv::new(
        StateDb::at(store.reader()?, head)?,
        block_env(2108, &header),
        Default::default(),
    )?;
    let get_votes = |block: u64| {
        TransactionRequest::default().to(GOVERNANCE_ADDRESS).input(
            Bytes::from(
                IGovernance::getVotesCall {
                    account: voter,
                    blockNumber: U256::from(block),
                }
                .abi_encode(),
            )
            .into(),
        )
    };
    let vote = TransactionRequest::default()
        .from(voter)
        .to(GOVERNANCE_ADDRESS)
        .input(
            Bytes::from(
                IGovernance::voteCall {
                    proposalId: U256::ONE,
                    support: 1,
                }
                .abi_encode(),
            )
            .into(),
        );
    let mut time = |request: TransactionRequest| -> eyre::Result<(u64, u128)> {
        let gas = match call(&mut env, request.clone())? {
            CallOutcome::Success { gas_used, .. } => gas_used,
            other => eyre::bail!("{other:?}"),
        };
        let mut rounds = Vec::with_capacity(args.rounds);
        for round in 0..=args.rounds {
            let started = Instant::now();
            for _ in 0..args.calls {
                call(&mut env, request.clone())?;
            }
            if round > 0 {
                rounds.push(started.elapsed());
            }
        }
        Ok((gas, median(rounds).as_nanos() / args.calls as u128))
    };
    let (_, oldest_ns) = time(get_votes(0))?;
    let (_, middle_ns) = time(get_votes(head / 2))?;
    let (_, head_ns) = time(get_votes(head - 1))?;
    let (vote_gas, vote_ns) = time(vote)?;
    Ok(Row {
        history,
        build_s,
        oldest_ns,
        middle_ns,
        head_ns,
        vote_gas,
        vote_ns,
    })
}
