//! The mixed read load: the reads dApps make most (block number, balances, nonces, blocks,
//! receipts, `eth_call`, logs, code, gas estimates) in equal parts from many concurrent clients,
//! each on its own keep-alive HTTP connection, one request at a time.

use std::time::{Duration, Instant};

use super::Round;
use crate::bench::http_client;
use aicoin_primitives::{AIC, dev::dev_signers};
use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256, hex};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolValue, sol};
use jsonrpsee::{
    core::{client::ClientT, params::ArrayParams},
    http_client::HttpClient,
    rpc_params,
};
use serde_json::{Value, json};

sol! {
    function transfer(address to, uint256 value) returns (bool);
    function balanceOf(address owner) returns (uint256);
}

/// What the reads target: a token with holders and a transfer's receipt and logs.
pub(super) struct Fixture {
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
pub(super) async fn fixture(client: &HttpClient) -> eyre::Result<Fixture> {
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

/// One round of `requests` mixed reads from `clients` connections.
pub(super) async fn round(
    url: &str,
    f: &std::sync::Arc<Fixture>,
    requests: usize,
    clients: usize,
) -> eyre::Result<Round> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = http_client(url)?;
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
        latencies: Vec::with_capacity(requests),
        ..Round::default()
    };
    while let Some(done) = tasks.join_next().await {
        let (latencies, errors, first_error) = done?;
        out.absorb(latencies, errors, first_error);
    }
    out.finish(started.elapsed());
    Ok(out)
}
