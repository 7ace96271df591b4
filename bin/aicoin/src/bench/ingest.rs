//! Ingest→receipt benchmark over JSON-RPC: pre-signed transfers from the ten dev accounts are
//! sent as fast as the node accepts them (one sequential stream per sender), then the clock runs
//! until every one is mined. Works against any node whose dev accounts are funded (`aicoin node
//! --dev`, `anvil`), so the same client measures AICoin and a peer side by side.

use std::time::{Duration, Instant};

use aicoin_node::NodeConfig;
use aicoin_primitives::dev::dev_signers;
use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256};
use clap::Args;
use jsonrpsee::{core::client::ClientT, rpc_params};

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Node to measure; without it an in-process `--dev` node is started.
    #[arg(long)]
    rpc_url: Option<String>,
    /// Transactions to send in all.
    #[arg(long, default_value_t = 5000)]
    txs: usize,
    /// Block interval of the in-process node, in seconds.
    #[arg(long, default_value_t = 1.0)]
    block_interval: f64,
    /// Block gas limit of the in-process node. At the default 30M a block holds 1,428 transfers,
    /// which caps ingest→receipt at 1,428 tx/s per second of block interval.
    #[arg(long, default_value_t = aicoin_primitives::DEFAULT_GAS_LIMIT)]
    gas_limit: u64,
}

pub async fn run(args: IngestArgs) -> eyre::Result<()> {
    let (url, node, _dir) = match args.rpc_url.clone() {
        Some(url) => (url, None, None),
        None => {
            let dir = tempfile::tempdir()?;
            let mut config = NodeConfig::dev(dir.path().join("data"));
            config.block_interval = Duration::from_secs_f64(args.block_interval);
            config.gas_limit = args.gas_limit;
            config.pool.max_per_sender = args.txs;
            config.pool.max_txs = args.txs * 2;
            let node = aicoin_node::spawn(config).await?;
            (node.rpc_url(), Some(node), Some(dir))
        }
    };
    let client = super::http_client(&url)?;
    let chain_id: U64 = client.request("eth_chainId", rpc_params![]).await?;
    let gas_price: U256 = client.request("eth_gasPrice", rpc_params![]).await?;
    let signers = dev_signers()?;
    let per_sender = args.txs.div_ceil(signers.len());

    // Sign everything up front: only sending and mining are timed.
    let mut streams = Vec::new();
    for (i, signer) in signers.iter().enumerate() {
        let start: U64 = client
            .request(
                "eth_getTransactionCount",
                rpc_params![signer.address(), "pending"],
            )
            .await?;
        let start = start.to::<u64>();
        let raws: Vec<Bytes> = (0..per_sender as u64)
            .map(|k| {
                let tx = TxLegacy {
                    chain_id: Some(chain_id.to()),
                    nonce: start + k,
                    gas_price: gas_price.to(),
                    gas_limit: 21_000,
                    to: TxKind::Call(Address::with_last_byte(i as u8 + 1)),
                    value: U256::from(1u64),
                    input: Bytes::new(),
                };
                aicoin_primitives::sign_transaction(signer, tx)
                    .expect("signing with a valid key")
                    .encoded_2718()
                    .into()
            })
            .collect();
        streams.push((signer.address(), start + per_sender as u64, raws));
    }
    let total = per_sender * signers.len();
    println!(
        "ingest: {total} transfers from {} senders to {url}",
        signers.len()
    );

    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for (_, _, raws) in streams.iter().cloned() {
        let client = client.clone();
        senders.spawn(async move {
            for raw in raws {
                let _: B256 = client
                    .request("eth_sendRawTransaction", rpc_params![raw])
                    .await?;
            }
            Ok::<_, eyre::Report>(())
        });
    }
    while let Some(result) = senders.join_next().await {
        result??;
    }
    let submitted = started.elapsed();

    // Mined when every sender's latest nonce reached the end of its stream.
    let ends = streams.iter().map(|(address, end, _)| (*address, *end));
    super::wait_until_mined(&client, ends).await?;
    let mined = started.elapsed();
    println!(
        "  submit:          {:>8.0} tx/s ({total} in {:.2} s)",
        total as f64 / submitted.as_secs_f64(),
        submitted.as_secs_f64()
    );
    println!(
        "  ingest→receipt:  {:>8.0} tx/s (all mined after {:.2} s)",
        total as f64 / mined.as_secs_f64(),
        mined.as_secs_f64()
    );
    if let Some(node) = node {
        node.stop().await;
    }
    Ok(())
}
