//! Full-node sync benchmark: a validator's chain of `--blocks` blocks (built in-process, then
//! served by a standalone validator on its sync port), fetched by height by a fresh full node
//! that checks every seal and re-executes every block. Both nodes run in this process, on the
//! loopback interface; the figure is blocks (and transactions) imported per second.

use std::time::{Duration, Instant};

use aicoin_node::{NodeConfig, Role};
use alloy_primitives::{Bytes, TxKind, U256};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{execute::Setup, median};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Blocks in the chain to sync.
    #[arg(long, default_value_t = 10_000)]
    blocks: u64,
    /// Transfers in each block.
    #[arg(long, default_value_t = 0)]
    txs: usize,
    /// Fresh full nodes that sync the same chain, one after another.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub async fn run(args: SyncArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.blocks > 0 && args.rounds > 0,
        "--blocks and --rounds must be positive"
    );
    let (setup, built) = {
        let (blocks, txs) = (args.blocks, args.txs);
        tokio::task::spawn_blocking(move || build(blocks, txs)).await??
    };
    println!(
        "built {} blocks of {} transfers in {:.1} s",
        args.blocks,
        args.txs,
        built.as_secs_f64()
    );
    let spec = setup.chain.spec().clone();
    let data_dir = setup.dir.path().to_path_buf();
    drop(setup.chain);

    let mut config = NodeConfig::new(data_dir);
    config.chain_spec = Some(spec.as_ref().clone());
    config.chain_id = spec.chain_id;
    config.rpc_port = 0;
    config.sync_port = Some(0);
    // Nothing new while the full nodes sync.
    config.block_interval = Duration::from_secs(3600);
    let validator = aicoin_node::spawn(config).await?;
    let sync_url = format!(
        "http://{}",
        validator
            .sync_addr()
            .ok_or_else(|| eyre::eyre!("the validator serves no sync port"))?
    );
    let head = validator.chain().store().reader()?.head_number()?;
    eyre::ensure!(head == args.blocks, "the validator has {head} blocks");
    let expected = validator.chain().store().reader()?.block_hash(head)?;

    let mut times = Vec::new();
    for round in 1..=args.rounds {
        let dir = tempfile::tempdir()?;
        let mut config = NodeConfig::new(dir.path().join("data"));
        config.chain_spec = Some(spec.as_ref().clone());
        config.chain_id = spec.chain_id;
        config.rpc_port = 0;
        config.role = Role::Full;
        config.bootnodes = vec![sync_url.clone()];
        let started = Instant::now();
        let full = aicoin_node::spawn(config).await?;
        loop {
            let reader = full.chain().store().reader()?;
            if reader.head_number()? >= head {
                eyre::ensure!(
                    reader.block_hash(head)? == expected,
                    "the full node synced another chain"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        full.stop().await;
        println!(
            "  round {round}: {:.2} s, {:.0} blocks/s",
            elapsed.as_secs_f64(),
            args.blocks as f64 / elapsed.as_secs_f64()
        );
        times.push(elapsed);
    }
    validator.stop().await;
    let time = median(times).as_secs_f64();
    println!(
        "full-node sync of {} blocks × {} transfers (median of {}): {:.2} s, {:.0} blocks/s, \
         {:.0} tx/s",
        args.blocks,
        args.txs,
        args.rounds,
        time,
        args.blocks as f64 / time,
        (args.blocks as f64 * args.txs as f64) / time,
    );
    Ok(())
}

/// Produces the chain to sync, each block paying `txs` fresh recipients from ten senders.
fn build(blocks: u64, txs: usize) -> eyre::Result<(Setup, Duration)> {
    let senders = 10;
    let mut setup = Setup::new(senders, senders, txs.max(1))?;
    let bar = ProgressBar::new(blocks).with_style(ProgressStyle::with_template(
        "building the chain {bar:40} {pos}/{len} blocks, {per_sec}, ETA {eta}",
    )?);
    let started = Instant::now();
    for _ in 0..blocks {
        let block = (0..txs)
            .map(|i| {
                let to = setup.fresh_recipient();
                setup.sign(
                    i % senders,
                    TxKind::Call(to),
                    Bytes::new(),
                    U256::from(1u64),
                    21_000,
                )
            })
            .collect();
        setup.block(block)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((setup, started.elapsed()))
}
