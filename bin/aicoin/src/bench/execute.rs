//! Block production benchmark: blocks of plain transfers and of ERC-20 transfers, produced by the
//! real chain engine (pool order, revm execution, reward, incremental state root, redb commit),
//! at a small and a large number of funded accounts.
//!
//! Every run does the same work per block (the same senders paying fresh recipients), so the only
//! difference between runs is how much state already exists. The incremental state root is what
//! keeps the block time close to flat as accounts grow.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_node::{Chain, Sealer};
use aicoin_primitives::{AIC, ChainSpec, GenesisAccount, testing::contract_bytecode};
use aicoin_storage::Store;
use aicoin_txpool::{PoolConfig, SenderState, TxPool};
use alloy_consensus::{TxEnvelope, TxLegacy, transaction::Recovered};
use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolValue, sol};
use clap::Args;

use super::{median, ms};

sol! {
    function transfer(address to, uint256 value) returns (bool);
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Transactions per block.
    #[arg(long, default_value_t = 1000)]
    txs: usize,
    /// Funded accounts in the genesis state, one run each (at least `--senders`).
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 100_000])]
    accounts: Vec<usize>,
    /// Funded accounts that send; each block's transactions are spread over them.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Measured blocks per run (after one warm-up block).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Transfer,
    Erc20,
}

struct Row {
    workload: Workload,
    accounts: usize,
    total: Duration,
    execution: Duration,
    state_root: Duration,
    commit: Duration,
    /// The same root rebuilt from every account, as a node without an incremental trie would.
    full_root: Duration,
    gas: u64,
}

pub fn run(args: ExecuteArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.txs > 0 && args.rounds > 0 && args.senders > 0,
        "--txs, --rounds and --senders must be positive"
    );
    eyre::ensure!(
        args.accounts.iter().all(|&a| a >= args.senders),
        "every --accounts value must be at least --senders ({})",
        args.senders
    );
    println!(
        "block production: {} txs/block, median of {} blocks",
        args.txs, args.rounds
    );
    let mut rows = Vec::new();
    for workload in [Workload::Transfer, Workload::Erc20] {
        for &accounts in &args.accounts {
            rows.push(bench(workload, accounts, &args)?);
        }
    }
    println!();
    println!(
        "{:<9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>13} {:>11} {:>10} {:>8}",
        "workload",
        "accounts",
        "block ms",
        "exec ms",
        "root ms",
        "commit ms",
        "full root ms",
        "exec ns/tx",
        "tx/s",
        "Mgas/s"
    );
    for r in &rows {
        let n = args.txs as f64;
        println!(
            "{:<9} {:>9} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>13.2} {:>11.0} {:>10.0} {:>8.1}",
            match r.workload {
                Workload::Transfer => "transfer",
                Workload::Erc20 => "erc20",
            },
            r.accounts,
            ms(r.total),
            ms(r.execution),
            ms(r.state_root),
            ms(r.commit),
            ms(r.full_root),
            r.execution.as_nanos() as f64 / n,
            n / r.total.as_secs_f64(),
            r.gas as f64 / r.execution.as_secs_f64() / 1e6,
        );
    }
    let (fewest, most) = (
        args.accounts.iter().min().copied().unwrap_or_default(),
        args.accounts.iter().max().copied().unwrap_or_default(),
    );
    for workload in [Workload::Transfer, Workload::Erc20] {
        let of = |a: usize| {
            rows.iter()
                .find(|r| r.workload == workload && r.accounts == a)
        };
        if let (Some(small), Some(large)) = (of(fewest), of(most))
            && fewest != most
        {
            println!(
                "{workload:?}: block time at {most} accounts / at {fewest} accounts = {:.2}",
                large.total.as_secs_f64() / small.total.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Deterministic keys for the senders; the other funded accounts need no key.
fn sender_key(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256((i as u64 + 1).to_be_bytes()))
        .expect("keccak output is a valid key")
}

fn funded_address(i: usize) -> Address {
    Address::from_slice(&keccak256((i as u64).to_le_bytes())[12..])
}

/// A chain in a temporary data dir (its validator key included) and funded senders, producing
/// blocks of given transactions.
pub(super) struct Setup {
    pub(super) dir: tempfile::TempDir,
    pub(super) chain: Chain,
    pool: TxPool,
    sealer: Sealer,
    senders: Vec<PrivateKeySigner>,
    nonces: Vec<u64>,
    time: u64,
    /// Recipients handed out so far; each transaction pays a new one.
    recipients: u64,
}

impl Setup {
    pub(super) fn new(accounts: usize, sender_count: usize, txs: usize) -> eyre::Result<Self> {
        Self::with_spec(accounts, sender_count, txs, |_| {})
    }

    /// As [`Setup::new`], with `edit`'s changes to the chain spec.
    pub(super) fn with_spec(
        accounts: usize,
        sender_count: usize,
        txs: usize,
        edit: impl FnOnce(&mut ChainSpec),
    ) -> eyre::Result<Self> {
        let dir = tempfile::tempdir()?;
        // Kept in the data dir, so a node can be started on the chain built here.
        let (validator, _) = aicoin_node::load_or_create_validator_key(dir.path())?;
        let senders: Vec<_> = (0..sender_count).map(sender_key).collect();
        let mut funded: Vec<Address> = senders.iter().map(|s| s.address()).collect();
        funded.extend((funded.len()..accounts).map(funded_address));
        let mut spec = ChainSpec::local(2108, validator.address(), &[]);
        for address in &funded {
            let account = GenesisAccount {
                balance: AIC,
                ..Default::default()
            };
            spec.genesis.alloc.insert(*address, account);
        }
        edit(&mut spec);
        let store = Store::open(dir.path(), &spec)?;
        let pool = TxPool::new(PoolConfig {
            max_txs: 10 * txs + 10,
            max_per_sender: 10 * txs + 10,
            max_nonce_gap: 10 * txs as u64,
            ..Default::default()
        });
        let sealer = Sealer {
            key: validator,
            beneficiary: Address::repeat_byte(0xbe),
            gas_limit: 2_000_000_000,
        };
        Ok(Self {
            dir,
            chain: Chain::new(store, Arc::new(spec)),
            pool,
            sealer,
            nonces: vec![0; senders.len()],
            senders,
            time: 1,
            recipients: 0,
        })
    }

    pub(super) fn sender(&self, i: usize) -> Address {
        self.senders[i].address()
    }

    /// An address that holds nothing yet (and is none of the funded ones).
    pub(super) fn fresh_recipient(&mut self) -> Address {
        self.recipients += 1;
        Address::from_slice(
            &keccak256([&b"recipient"[..], &self.recipients.to_be_bytes()].concat())[12..],
        )
    }

    pub(super) fn sign(
        &mut self,
        sender: usize,
        to: TxKind,
        input: Bytes,
        value: U256,
        gas: u64,
    ) -> Recovered<TxEnvelope> {
        let tx = TxLegacy {
            chain_id: Some(2108),
            nonce: self.nonces[sender],
            gas_price: 0,
            gas_limit: gas,
            to,
            value,
            input,
        };
        self.nonces[sender] += 1;
        let key = &self.senders[sender];
        let tx = aicoin_primitives::sign_transaction(key, tx).expect("signing with a valid key");
        Recovered::new_unchecked(tx, key.address())
    }

    /// Pools `txs` and produces one block holding all of them.
    pub(super) fn block(
        &mut self,
        txs: Vec<Recovered<TxEnvelope>>,
    ) -> eyre::Result<aicoin_node::Produced> {
        let count = txs.len();
        let reader = self.chain.store().reader()?;
        let state = reader.state_at(reader.head_number()?)?;
        for tx in txs {
            let account = state.account(&tx.signer())?.unwrap_or_default();
            let sender = SenderState {
                nonce: account.nonce,
                balance: account.balance,
            };
            self.pool.add(tx, sender)?;
        }
        self.time += 1;
        let produced = self
            .chain
            .produce(&self.sealer, self.time, &mut self.pool.best())?;
        self.pool.on_new_block(produced.next_nonces.clone());
        eyre::ensure!(
            produced.block.transactions.len() == count && produced.rejected.is_empty(),
            "block took {} of {count} transactions: {:?}",
            produced.block.transactions.len(),
            produced.rejected
        );
        Ok(produced)
    }
}

fn bench(workload: Workload, accounts: usize, args: &ExecuteArgs) -> eyre::Result<Row> {
    let mut s = Setup::new(accounts, args.senders, args.txs)?;
    let senders = s.senders.len();
    let token = match workload {
        Workload::Transfer => None,
        Workload::Erc20 => {
            let mut init = contract_bytecode("Token").to_vec();
            init.extend(("Bench", "BNC", AIC * U256::from(1_000_000_000u64)).abi_encode_params());
            let deploy = s.sign(0, TxKind::Create, init.into(), U256::ZERO, 3_000_000);
            s.block(vec![deploy])?;
            let token = s.senders[0].address().create(0);
            // Give every sender tokens to spend.
            let funding = (1..senders)
                .map(|i| {
                    let to = s.senders[i].address();
                    let input = transferCall {
                        to,
                        value: AIC * U256::from(1_000_000u64),
                    }
                    .abi_encode();
                    s.sign(0, TxKind::Call(token), input.into(), U256::ZERO, 100_000)
                })
                .collect();
            s.block(funding)?;
            Some(token)
        }
    };
    let mut samples = Vec::new();
    for round in 0..=args.rounds {
        let txs = (0..args.txs)
            .map(|i| {
                let to = s.fresh_recipient();
                match token {
                    None => s.sign(
                        i % senders,
                        TxKind::Call(to),
                        Bytes::new(),
                        U256::from(1u64),
                        21_000,
                    ),
                    Some(token) => {
                        let input = transferCall {
                            to,
                            value: U256::from(1u64),
                        }
                        .abi_encode();
                        s.sign(
                            i % senders,
                            TxKind::Call(token),
                            input.into(),
                            U256::ZERO,
                            100_000,
                        )
                    }
                }
            })
            .collect();
        let produced = s.block(txs)?;
        if round > 0 {
            samples.push((produced.timings, produced.block.header.gas_used));
        }
    }
    // What a node without the incremental trie would pay for this block's root, and a check
    // that the incremental root is right.
    let full_root = {
        let reader = s.chain.store().reader()?;
        let head = reader.header(reader.head_number()?)?;
        let started = Instant::now();
        let rebuilt = reader.rebuild_state_root()?;
        let elapsed = started.elapsed();
        eyre::ensure!(
            head.map(|h| h.state_root) == Some(rebuilt),
            "the incremental state root differs from a full rebuild"
        );
        elapsed
    };
    let pick = |f: fn(&aicoin_node::BlockTimings) -> Duration| {
        median(samples.iter().map(|(t, _)| f(t)).collect())
    };
    let row = Row {
        workload,
        accounts,
        total: pick(|t| t.execution + t.state_root + t.commit),
        execution: pick(|t| t.execution),
        state_root: pick(|t| t.state_root),
        commit: pick(|t| t.commit),
        full_root,
        gas: samples.first().map_or(0, |(_, gas)| *gas),
    };
    println!(
        "  {workload:?} at {accounts} accounts: block {:.2} ms",
        ms(row.total)
    );
    Ok(row)
}
