//! `aicoin import`, `export` and `chain-spec`: moving sealed blocks between data dirs as an RLP
//! stream, one [`SealedBlock`] (`[header, seal, [transactions…]]`) after another, as geth's
//! export streams its blocks, and the chain spec a data dir holds or a new cluster starts from. Import checks every seal against the authority set and
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
use alloy_primitives::Address;
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
#[group(required = true, multiple = false)]
pub struct ChainSpecArgs {
    /// Print the spec this data dir's chain was created with.
    #[arg(long, env = "AICOIN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print a new chain's spec naming these validators as its authorities (comma-separated
    /// addresses, as `aicoin chain-spec --validator-address` prints them); the first holds the
    /// genesis allocation and the treasury is the published one.
    #[arg(long, value_delimiter = ',')]
    authorities: Option<Vec<Address>>,
    /// Create the validator key of this data dir if it has none, and print its address (the
    /// address to name in `--authorities`).
    #[arg(long, value_name = "DATA_DIR")]
    validator_address: Option<PathBuf>,
    /// The new chain's id (with --authorities).
    #[arg(long, default_value_t = aicoin_primitives::AICOIN_CHAIN_ID, requires = "authorities")]
    chain_id: u64,
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
    if let Some(dir) = &args.validator_address {
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
        let (key, _) = aicoin_node::load_or_create_validator_key(dir)?;
        println!("{}", key.address());
        return Ok(());
    }
    let spec = match (&args.data_dir, &args.authorities) {
        (Some(dir), _) => Store::open_existing(dir)?.1,
        (None, Some(authorities)) => {
            let Some(&first) = authorities.first() else {
                bail!("--authorities names no validator");
            };
            let mut unique = authorities.clone();
            unique.sort();
            unique.dedup();
            if unique.len() != authorities.len() {
                bail!("--authorities names a validator twice");
            }
            let mut spec = ChainSpec::local(args.chain_id, first, &[]);
            spec.authorities = authorities.clone();
            spec
        }
        (None, None) => bail!("give --data-dir, --authorities or --validator-address"),
    };
    println!("{}", serde_json::to_string_pretty(&spec)?);
    Ok(())
}
