//! `aicoin bench rpc`: JSON-RPC load against this node and, in the same run, a peer (anvil,
//! another build) with the same client, round for round, so the ratio compares like with like.
//!
//! Workloads:
//! - `mixed`: the reads dApps make most, from many clients one request at a time over HTTP
//!   keep-alive connections (latency percentiles included);
//! - `balance`: `eth_getBalance` pipelined over WebSockets, the server's raw request rate;
//! - `submit`: pre-signed transfers from many funded senders pipelined over WebSockets
//!   (`eth_sendRawTransaction` accepted per second), then the time until every one is mined.
//!
//! Reports errors and the server's resident memory after a warm-up round and each measured round,
//! so growth shows, and medians with the ratio to the peer. Works against any node whose dev
//! accounts are funded (`aicoin node --dev`, anvil).

mod mixed;
mod pipelined;

use std::{sync::Arc, time::Duration};

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct RpcLoadArgs {
    /// Node to load; without it an in-process `--dev` node is started (its memory then includes
    /// the load generator's).
    #[arg(long, env = "AICOIN_BENCH_RPC_URL")]
    rpc_url: Option<String>,
    /// Process id of the node, to report its resident memory (Linux /proc).
    #[arg(long, env = "AICOIN_BENCH_PID")]
    pid: Option<u32>,
    /// A second node measured in the same run with the same client, rounds alternating.
    #[arg(long, env = "AICOIN_BENCH_PEER_URL")]
    peer_url: Option<String>,
    /// Process id of the peer, to report its resident memory.
    #[arg(long, env = "AICOIN_BENCH_PEER_PID")]
    peer_pid: Option<u32>,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Workload::Mixed, env = "AICOIN_BENCH_WORKLOAD")]
    workload: Workload,
    /// Requests per measured round [default: 100,000 mixed, 200,000 balance, 10,000 submit].
    #[arg(long, env = "AICOIN_BENCH_REQUESTS")]
    requests: Option<usize>,
    /// Concurrent connections [default: 32 mixed, 1 balance and submit].
    #[arg(long, env = "AICOIN_BENCH_CLIENTS")]
    clients: Option<usize>,
    /// Unanswered requests each WebSocket keeps in flight (`balance`, `submit`).
    #[arg(long, default_value_t = 64, env = "AICOIN_BENCH_IN_FLIGHT")]
    in_flight: usize,
    /// Funded senders the `submit` transfers come from (each is funded once by the dev accounts).
    #[arg(long, default_value_t = 500, env = "AICOIN_BENCH_SENDERS")]
    senders: usize,
    /// Measured rounds after the warm-up round.
    #[arg(long, default_value_t = 3, env = "AICOIN_BENCH_ROUNDS")]
    rounds: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    Mixed,
    Balance,
    Submit,
}

/// What one round against one node measured.
#[derive(Debug, Default)]
pub(super) struct Round {
    /// From the first request sent to the last answer.
    elapsed: Duration,
    /// Each answered request's latency, sorted.
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    /// `submit`: from the first request sent until every transaction was mined.
    mined_after: Option<Duration>,
    /// CPU time the server used for the round, when its process id is known.
    server_cpu: Option<Duration>,
}

impl Round {
    /// Adds one connection's answers.
    fn absorb(&mut self, latencies: Vec<Duration>, errors: usize, first_error: Option<String>) {
        self.latencies.extend(latencies);
        self.errors += errors;
        self.first_error = self.first_error.take().or(first_error);
    }

    /// Closes the round after `elapsed`, its latencies sorted for the percentiles.
    fn finish(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        self.latencies.sort_unstable();
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// `submit`: transactions per second from the first request until all were mined.
    fn mined_rate(&self) -> Option<f64> {
        let mined = self.mined_after?;
        Some(self.latencies.len() as f64 / mined.as_secs_f64())
    }

    /// Server CPU per answered request, in microseconds.
    fn cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        Some(cpu.as_secs_f64() * 1e6 / self.latencies.len().max(1) as f64)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// A node under load and what its workload needs between rounds.
struct Target {
    name: &'static str,
    url: String,
    pid: Option<u32>,
    state: TargetState,
    rates: Vec<f64>,
    mined_rates: Vec<f64>,
    cpu_per_request: Vec<f64>,
    errors: usize,
}

enum TargetState {
    Mixed(Arc<mixed::Fixture>),
    Balance(Arc<Vec<String>>),
    Submit(pipelined::Senders),
}

impl Target {
    async fn prepare(
        name: &'static str,
        url: String,
        pid: Option<u32>,
        args: &RpcLoadArgs,
    ) -> eyre::Result<Self> {
        let state = match args.workload {
            Workload::Mixed => {
                let client = super::http_client(&url)?;
                TargetState::Mixed(Arc::new(mixed::fixture(&client).await?))
            }
            Workload::Balance => {
                TargetState::Balance(Arc::new(pipelined::balance_calls(args.requests())?))
            }
            Workload::Submit => TargetState::Submit(
                pipelined::Senders::fund(&url, args.senders, args.in_flight).await?,
            ),
        };
        Ok(Self {
            name,
            url,
            pid,
            state,
            rates: Vec::new(),
            mined_rates: Vec::new(),
            cpu_per_request: Vec::new(),
            errors: 0,
        })
    }

    async fn round(&mut self, args: &RpcLoadArgs) -> eyre::Result<Round> {
        let (requests, clients) = (args.requests(), args.clients());
        let cpu_before = self.pid.and_then(super::proc_cpu);
        let mut round = match &mut self.state {
            TargetState::Mixed(fixture) => {
                mixed::round(&self.url, fixture, requests, clients).await?
            }
            TargetState::Balance(frames) => {
                pipelined::drive_all(&self.url, frames, clients, args.in_flight).await?
            }
            TargetState::Submit(senders) => {
                senders
                    .send(&self.url, requests, clients, args.in_flight)
                    .await?
            }
        };
        // While transactions are submitted the node also mines blocks: its CPU covers both.
        round.server_cpu = cpu_before
            .zip(self.pid.and_then(super::proc_cpu))
            .map(|(before, after)| after.saturating_sub(before));
        if let TargetState::Submit(senders) = &mut self.state {
            senders.wait_mined(&self.url, &mut round).await?;
        }
        self.errors += round.errors;
        Ok(round)
    }

    fn report(&self, label: &str, round: &Round) {
        let mut line = format!("  {:<6} {label:<8} {:>9.0} req/s", self.name, round.rate());
        if let (Some(rate), Some(mined)) = (round.mined_rate(), round.mined_after) {
            line += &format!("  mined {rate:>7.0} tx/s ({:.2} s)", mined.as_secs_f64());
        }
        if let Some(us) = round.cpu_per_request_us() {
            line += &format!("  server CPU {us:.1} µs/req");
        }
        line += &format!(
            "  p50 {:.2} ms  p99 {:.2} ms  errors {}",
            round.percentile_ms(0.5),
            round.percentile_ms(0.99),
            round.errors
        );
        if let Some(e) = &round.first_error {
            line += &format!(" (first: {e})");
        }
        if let Some(kib) = self
            .pid
            .and_then(|pid| super::proc_status_kib(pid, "VmRSS"))
        {
            line += &format!("  RSS {:.1} MiB", kib as f64 / 1024.0);
        }
        println!("{line}");
    }
}

impl RpcLoadArgs {
    fn requests(&self) -> usize {
        self.requests.unwrap_or(match self.workload {
            Workload::Mixed => 100_000,
            Workload::Balance => 200_000,
            Workload::Submit => 10_000,
        })
    }

    fn clients(&self) -> usize {
        self.clients.unwrap_or(match self.workload {
            Workload::Mixed => 32,
            Workload::Balance | Workload::Submit => 1,
        })
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(args: RpcLoadArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.clients() > 0 && args.requests() >= args.clients() && args.in_flight > 0,
        "need at least one request per client and one in flight"
    );
    eyre::ensure!(
        args.workload != Workload::Submit || (args.senders > 0 && args.requests() >= args.senders),
        "a submit round needs senders, and at least one transfer per sender"
    );
    let (url, node, _dir) = match args.rpc_url.clone() {
        Some(url) => (url, None, None),
        None => {
            let dir = tempfile::tempdir()?;
            let mut config = aicoin_node::NodeConfig::dev(dir.path().join("data"));
            config.block_interval = Duration::from_millis(500);
            config.gas_limit = 1_000_000_000;
            let node = aicoin_node::spawn(config).await?;
            (node.rpc_url(), Some(node), Some(dir))
        }
    };
    let pid = args.pid.or(node.as_ref().map(|_| std::process::id()));
    let mut targets = vec![Target::prepare("aicoin", url, pid, &args).await?];
    if let Some(peer) = args.peer_url.clone() {
        targets.push(Target::prepare("peer", peer, args.peer_pid, &args).await?);
    }
    println!(
        "rpc {:?}: {} requests per round from {} connection(s){}",
        args.workload,
        args.requests(),
        args.clients(),
        match args.workload {
            Workload::Mixed => String::new(),
            _ => format!(", {} in flight each", args.in_flight),
        }
    );
    for target in &targets {
        println!("  {:<6} {}", target.name, target.url);
    }

    // Warm-up: caches, connection pools and allocator arenas reach their working size.
    for label in
        std::iter::once("warm-up".to_owned()).chain((1..=args.rounds).map(|r| format!("round {r}")))
    {
        for target in &mut targets {
            let round = target.round(&args).await?;
            target.report(&label, &round);
            if label != "warm-up" {
                target.rates.push(round.rate());
                target.cpu_per_request.extend(round.cpu_per_request_us());
                target.mined_rates.extend(round.mined_rate());
            }
        }
    }
    for target in &targets {
        let mut line = format!(
            "  median {:<6} {:>9.0} req/s",
            target.name,
            median(&target.rates)
        );
        if !target.cpu_per_request.is_empty() {
            line += &format!("  server CPU {:.1} µs/req", median(&target.cpu_per_request));
        }
        println!("{line}");
    }
    let ours = &targets[0];
    if let Some(peer) = targets.get(1) {
        println!(
            "  aicoin/peer {:.2}× the requests per second",
            median(&ours.rates) / median(&peer.rates)
        );
        if !ours.mined_rates.is_empty() {
            println!(
                "  mined  aicoin/peer {:.2}× ({:.0} vs {:.0} tx/s)",
                median(&ours.mined_rates) / median(&peer.mined_rates),
                median(&ours.mined_rates),
                median(&peer.mined_rates)
            );
        }
    }
    if let Some(node) = node {
        node.stop().await;
    }
    let errors: usize = targets.iter().map(|t| t.errors).sum();
    eyre::ensure!(errors == 0, "{errors} requests failed");
    Ok(())
}
