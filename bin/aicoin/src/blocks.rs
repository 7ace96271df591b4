//! `aicoin import`, `export` and `chain-spec`: moving sealed blocks between data dirs as an RLP
//! stream, one [`SealedBlock`] (`[header, seal, [transactions…]]`) after another, as geth's
//! export streams its blocks. Import checks every seal against the authority set and
//! re-executes every block, so a file cannot smuggle in anything an authority did not seal or
//! that does not execute to the sealed roots.

use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use aicoin_node::{Chain, unix_now};
use aicoin_primitives::{ChainSpec, SealedBlock};
use aicoin_storage::{Store, StoreError};
use alloy_rlp::{Decodable, Encodable};
use clap::Args;
use eyre::{WrapErr, bail};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Data dir to import into (created if new; then --chain is required).
    #[arg(long, env = "AICOIN_DATA_DIR")]
    data_dir: PathBuf,
    /// Chain spec (JSON) for a new data dir.
    #[arg(long, env = "AICOIN_CHAIN")]
    chain: Option<PathBuf>,
    /// RLP block file.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, env = "AICOIN_DATA_DIR")]
    data_dir: PathBuf,
    /// First block [default: 1].
    #[arg(long)]
    from: Option<u64>,
    /// Last block [default: the head].
    #[arg(long)]
    to: Option<u64>,
    /// RLP block file to write.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ChainSpecArgs {
    #[arg(long, env = "AICOIN_DATA_DIR")]
    data_dir: PathBuf,
}

fn open(data_dir: &Path, chain: Option<&PathBuf>) -> eyre::Result<(Store, ChainSpec)> {
    match Store::open_existing(data_dir) {
        Ok(opened) => Ok(opened),
        Err(StoreError::NoChain(_)) => {
            let Some(path) = chain else {
                bail!(
                    "{} holds no chain yet: pass --chain with its chain spec",
                    data_dir.display()
                );
            };
            let text = std::fs::read_to_string(path)
                .wrap_err_with(|| format!("cannot read chain spec {}", path.display()))?;
            let spec: ChainSpec = serde_json::from_str(&text)
                .wrap_err_with(|| format!("invalid chain spec {}", path.display()))?;
            Ok((Store::open(data_dir, &spec)?, spec))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn import(args: ImportArgs) -> eyre::Result<()> {
    let bytes = std::fs::read(&args.file)
        .wrap_err_with(|| format!("cannot read {}", args.file.display()))?;
    let (store, spec) = open(&args.data_dir, args.chain.as_ref())?;
    let chain = Chain::new(store.clone(), Arc::new(spec));
    let mut rest = bytes.as_slice();
    let bar = ProgressBar::new(bytes.len() as u64).with_style(ProgressStyle::with_template(
        "{spinner} importing [{bar:30}] {bytes}/{total_bytes} {per_sec} {msg}",
    )?);
    let (mut imported, mut known) = (0u64, 0u64);
    while !rest.is_empty() {
        let block = SealedBlock::decode(&mut rest).wrap_err(
            "the file is not a stream of sealed AICoin blocks (exported by aicoin 0.6 or newer)",
        )?;
        let number = block.number();
        let head = store.reader()?.head_number()?;
        if number <= head {
            let stored = store.reader()?.block_hash(number)?;
            if stored != Some(block.hash()) {
                bail!("block {number} differs from the block {number} already in the data dir");
            }
            known += 1;
        } else {
            chain
                .import(block, unix_now())
                .wrap_err_with(|| format!("block {number} rejected"))?;
            imported += 1;
        }
        bar.set_position((bytes.len() - rest.len()) as u64);
        bar.set_message(format!("#{number}"));
    }
    bar.finish_and_clear();
    let head = store.reader()?.head_number()?;
    println!("imported {imported} blocks ({known} already present); head is now #{head}");
    Ok(())
}

pub fn export(args: ExportArgs) -> eyre::Result<()> {
    let (store, spec) = Store::open_existing(&args.data_dir)?;
    let head = store.reader()?.head_number()?;
    let chain = Chain::new(store, Arc::new(spec));
    let from = args.from.unwrap_or(1);
    let to = args.to.unwrap_or(head).min(head);
    let file = std::fs::File::create(&args.file)
        .wrap_err_with(|| format!("cannot create {}", args.file.display()))?;
    let mut out = BufWriter::new(file);
    let mut buf = Vec::new();
    for number in from..=to {
        let Some(block) = chain.block(number)? else {
            bail!("block {number} is missing")
        };
        buf.clear();
        block.encode(&mut buf);
        out.write_all(&buf)?;
    }
    out.flush()?;
    let count = (to + 1).saturating_sub(from);
    println!(
        "exported {count} blocks (#{from}..=#{to}) to {}",
        args.file.display()
    );
    Ok(())
}

pub fn chain_spec(args: ChainSpecArgs) -> eyre::Result<()> {
    let (_, spec) = Store::open_existing(&args.data_dir)?;
    println!("{}", serde_json::to_string_pretty(&spec)?);
    Ok(())
}
