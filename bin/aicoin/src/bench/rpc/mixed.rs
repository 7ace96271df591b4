//! JSON-RPC read load: a mix of the reads dApps make most (block number, balances, nonces,
//! blocks, receipts, `eth_call`, logs, code, gas estimates) from many concurrent clients, each on
//! its own keep-alive connection. Reports errors, requests/s and latency percentiles, and the
//! server's resident memory after a warm-up round and after each measured round, so growth
//! shows. Works against any node whose dev accounts are funded (`aicoin node --dev`, anvil).

use std::time::{Duration, Instant};

use aicoin_primitives::{AIC, dev::dev_signers};
use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256, hex};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolValue, sol};
use clap::Args;
use jsonrpsee::{
    core::{client::ClientT, params::ArrayParams},
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use serde_json::{Value, json};

sol! {
    function transfer(address to, uint256 value) returns (bool);
    function balanceOf(address owner) returns (uint256);
}

#[derive(Debug, Args)]
pub struct RpcLoadArgs {
    /// Node to load; without it an in-process `--dev` node is started (its memory then includes
    /// the load generator's).
    #[arg(long)]
    rpc_url: Option<String>,
    /// Process id of the node, to report its resident memory (Linux /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// Requests per measured round.
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Measured rounds after the warm-up round.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

/// What the reads target: a token with holders and a transfer's receipt and logs.
struct Fixture {
    token: Address,
    holders: Vec<Address>,
    receipt_hash: B256,
    from_block: u64,
}

fn sign(
    key: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    gas_price: u128,
    to: TxKind,
    input: Vec<u8>,
) -> Bytes {
    let tx = TxLegacy {
        chain_id: Some(chain_id),
        nonce,
        gas_price,
        gas_limit: 3_000_000,
        to,
        value: U256::ZERO,
        input: input.into(),
    };
    aicoin_primitives::sign_transaction(key, tx)
        .expect("signing with a valid key")
        .encoded_2718()
        .into()
}

async fn receipt(client: &HttpClient, hash: B256) -> eyre::Result<Value> {
    let started = Instant::now();
    loop {
        let r: Value = client
            .request("eth_getTransactionReceipt", rpc_params![hash])
            .await?;
        if !r.is_null() {
            return Ok(r);
        }
        eyre::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no receipt for {hash}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deploys a token and makes a few transfers, so calls, receipts and logs have something real.
async fn fixture(client: &HttpClient) -> eyre::Result<Fixture> {
    let key = dev_signers()?.remove(0);
    let chain_id: U64 = client.request("eth_chainId", rpc_params![]).await?;
    let gas_price: U256 = client.request("eth_gasPrice", rpc_params![]).await?;
    let (chain_id, gas_price) = (chain_id.to::<u64>(), gas_price.to::<u128>());
    let nonce: U64 = client
        .request(
            "eth_getTransactionCount",
            rpc_params![key.address(), "pending"],
        )
        .await?;
    let nonce = nonce.to::<u64>();
    let mut init = aicoin_primitives::testing::contract_bytecode("Token").to_vec();
    init.extend(("Load", "LOAD", AIC * U256::from(1_000_000u64)).abi_encode_params());
    let deploy = sign(&key, chain_id, nonce, gas_price, TxKind::Create, init);
    let hash: B256 = client
        .request("eth_sendRawTransaction", rpc_params![deploy])
        .await?;
    let deployed = receipt(client, hash).await?;
    let token: Address = serde_json::from_value(deployed["contractAddress"].clone())?;
    let holders: Vec<Address> = (1..=8u8).map(Address::with_last_byte).collect();
    let mut last = hash;
    for (i, to) in holders.iter().enumerate() {
        let input = transferCall {
            to: *to,
            value: U256::from(1000 + i),
        }
        .abi_encode();
        let raw = sign(
            &key,
            chain_id,
            nonce + 1 + i as u64,
            gas_price,
            TxKind::Call(token),
            input,
        );
        last = client
            .request("eth_sendRawTransaction", rpc_params![raw])
            .await?;
    }
    let mined = receipt(client, last).await?;
    let block: U64 = serde_json::from_value(mined["blockNumber"].clone())?;
    Ok(Fixture {
        token,
        holders,
        receipt_hash: last,
        from_block: block.to::<u64>().saturating_sub(5),
    })
}

/// The `i`-th request of the mix.
fn request(f: &Fixture, i: usize) -> (&'static str, ArrayParams) {
    let holder = f.holders[i % f.holders.len()];
    let call = json!({ "to": f.token, "data": hex::encode_prefixed(balanceOfCall { owner: holder }.abi_encode()) });
    match i % 10 {
        0 => ("eth_blockNumber", rpc_params![]),
        1 => ("eth_getBalance", rpc_params![holder, "latest"]),
        2 => ("eth_getTransactionCount", rpc_params![holder, "latest"]),
        3 => ("eth_getBlockByNumber", rpc_params!["latest", false]),
        4 => ("eth_call", rpc_params![call, "latest"]),
        5 => ("eth_getTransactionReceipt", rpc_params![f.receipt_hash]),
        6 => (
            "eth_getLogs",
            rpc_params![json!({ "address": f.token, "fromBlock": format!("{:#x}", f.from_block) })],
        ),
        7 => ("eth_getCode", rpc_params![f.token, "latest"]),
        8 => ("eth_chainId", rpc_params![]),
        _ => (
            "eth_estimateGas",
            rpc_params![json!({ "from": f.holders[0], "to": holder, "value": "0x0" })],
        ),
    }
}

struct Round {
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

async fn round(
    url: &str,
    f: &std::sync::Arc<Fixture>,
    requests: usize,
    clients: usize,
) -> eyre::Result<Round> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(60))
            .build(url)?;
        let f = f.clone();
        let share = requests / clients + usize::from(c < requests % clients);
        tasks.spawn(async move {
            let (mut latencies, mut errors, mut first_error) = (Vec::with_capacity(share), 0, None);
            for k in 0..share {
                let (method, params) = request(&f, c + k * clients);
                let sent = Instant::now();
                match client.request::<Value, _>(method, params).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{method}: {e}"));
                    }
                }
            }
            (latencies, errors, first_error)
        });
    }
    let mut out = Round {
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(requests),
        errors: 0,
        first_error: None,
    };
    while let Some(done) = tasks.join_next().await {
        let (latencies, errors, first_error) = done?;
        out.latencies.extend(latencies);
        out.errors += errors;
        out.first_error = out.first_error.or(first_error);
    }
    out.elapsed = started.elapsed();
    out.latencies.sort_unstable();
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

pub async fn run(args: RpcLoadArgs) -> eyre::Result<()> {
    eyre::ensure!(
        args.clients > 0 && args.requests >= args.clients,
        "need at least one request per client"
    );
    let (url, node, _dir) = match args.rpc_url.clone() {
        Some(url) => (url, None, None),
        None => {
            let dir = tempfile::tempdir()?;
            let mut config = aicoin_node::NodeConfig::dev(dir.path().join("data"));
            config.block_interval = Duration::from_millis(500);
            let node = aicoin_node::spawn(config).await?;
            (node.rpc_url(), Some(node), Some(dir))
        }
    };
    let pid = args.pid.or(node.as_ref().map(|_| std::process::id()));
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(60))
        .build(&url)?;
    let f = std::sync::Arc::new(fixture(&client).await?);
    println!(
        "rpc load: {} mixed reads per round from {} clients against {url}",
        args.requests, args.clients
    );

    // Warm-up: caches, connection pools and allocator arenas reach their working size.
    let warm = round(&url, &f, args.requests, args.clients).await?;
    let rss = |label: &str| {
        if let Some(kib) = pid.and_then(|pid| super::proc_status_kib(pid, "VmRSS")) {
            println!("  RSS {label}: {:.1} MiB", kib as f64 / 1024.0);
        }
    };
    println!("  warm-up: {} errors", warm.errors);
    rss("after warm-up");
    let mut total_errors = warm.errors;
    for r in 1..=args.rounds {
        let result = round(&url, &f, args.requests, args.clients).await?;
        total_errors += result.errors;
        println!(
            "  round {r}: {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}{}",
            result.latencies.len() as f64 / result.elapsed.as_secs_f64(),
            percentile(&result.latencies, 0.50),
            percentile(&result.latencies, 0.99),
            result.errors,
            result
                .first_error
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
        );
        rss(&format!("after round {r}"));
    }
    if let Some(node) = node {
        node.stop().await;
    }
    eyre::ensure!(total_errors == 0, "{total_errors} requests failed");
    Ok(())
}
