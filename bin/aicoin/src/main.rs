//! `aicoin`: the command line over the AICoin node library.

mod bench;
mod blocks;
mod node;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "aicoin",
    version,
    about = "AICoin: an EVM-compatible, zero-fee proof-of-authority chain for decentralized AI compute"
)]
struct Cli {
    /// Log filter (tracing's env-filter syntax, e.g. `info` or `aicoin_node=debug`).
    #[arg(long, global = true, env = "AICOIN_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: produce blocks and serve JSON-RPC (no flags needed).
    Node(Box<node::NodeArgs>),
    /// Import blocks from an RLP file (as written by `export`), verifying seals and state.
    Import(blocks::ImportArgs),
    /// Export blocks of a data dir to an RLP file.
    Export(blocks::ExportArgs),
    /// Print the chain spec a data dir was created with (JSON).
    ChainSpec(blocks::ChainSpecArgs),
    /// Measure block production and transaction ingest.
    Bench(bench::BenchArgs),
}

fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log)?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Node(args) => node::run(*args).await,
            Command::Import(args) => blocks::import(args).await,
            Command::Export(args) => blocks::export(args),
            Command::ChainSpec(args) => blocks::chain_spec(args),
            Command::Bench(args) => bench::run(args).await,
        }
    })
}
