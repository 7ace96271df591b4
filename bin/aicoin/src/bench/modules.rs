//! What a chain module costs per call: an `eth_call` of `IParams.epochLength()` (one metered
//! storage read inside the module's precompile) beside the same call to a built-in precompile
//! (identity, which reads no state) and to an account with no code, on the same EVM setup (the
//! one factory every call and block uses). Reports gas and nanoseconds per call, medians of
//! rounds; the difference to the plain call is what the module mechanism adds.

use std::time::Instant;

use aicoin_execution::{CallEnv, CallOutcome, StateDb, block_env, call};
use aicoin_primitives::{ChainSpec, modules::PARAMS_ADDRESS};
use aicoin_storage::Store;
use alloy_primitives::{Address, Bytes, address};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_sol_types::{SolCall, sol};
use clap::Args;

use super::median;

sol! {
    function epochLength() returns (uint256);
}

#[derive(Debug, Args)]
pub struct ModulesArgs {
    /// Calls per round.
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
    /// Measured rounds (after one warm-up round).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

const IDENTITY: Address = address!("0x0000000000000000000000000000000000000004");

pub fn run(args: ModulesArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.calls > 0 && args.rounds > 0,
        "--calls and --rounds must be positive"
    );
    let dir = tempfile::tempdir()?;
    let spec = ChainSpec::local(2108, Address::repeat_byte(1), &[]);
    let store = Store::open(dir.path(), &spec)?;
    let header = store
        .reader()?
        .header(0)?
        .ok_or_else(|| eyre::eyre!("no genesis"))?;
    let cases = [
        (
            "IParams.epochLength() (module)",
            PARAMS_ADDRESS,
            Bytes::from(epochLengthCall {}.abi_encode()),
        ),
        (
            "identity precompile, 4 bytes",
            IDENTITY,
            Bytes::from_static(&[0, 0, 0, 0]),
        ),
        (
            "account without code",
            Address::repeat_byte(0x42),
            Bytes::new(),
        ),
    ];
    println!(
        "module call cost: eth_call path (EVM built per call), median of {} rounds of {} calls",
        args.rounds, args.calls
    );
    println!("| call | gas | ns/call |");
    println!("|---|---|---|");
    for (label, to, input) in cases {
        let request = TransactionRequest::default().to(to).input(input.into());
        let mut env = CallEnv::new(
            StateDb::at(store.reader()?, 0)?,
            block_env(spec.chain_id, &header),
            Default::default(),
        )?;
        let gas = match call(&mut env, request.clone())? {
            CallOutcome::Success { gas_used, .. } => gas_used,
            other => eyre::bail!("{label}: {other:?}"),
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
        let per_call = median(rounds).as_nanos() / args.calls as u128;
        println!("| {label} | {gas} | {per_call} |");
    }
    Ok(())
}
