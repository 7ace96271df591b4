//! Pipelined WebSocket load: requests serialized up front are written back to back on each
//! connection, keeping a fixed number unanswered, so the figure is the server's request rate
//! rather than the client's or the loopback's round trip. Answers are matched by id and only
//! checked for an `error` member, to keep the client's share of the cores small.

use std::time::{Duration, Instant};

use aicoin_primitives::{AIC, dev::dev_signers};
use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, U64, U256, hex, keccak256};
use alloy_signer_local::PrivateKeySigner;
use futures::{FutureExt, SinkExt, StreamExt, stream};
use jsonrpsee::{core::client::ClientT, http_client::HttpClient, rpc_params};
use serde::{Deserialize, de::IgnoredAny};
use tokio_tungstenite::tungstenite::Message;

use super::Round;
use crate::bench::{http_client, wait_until_mined};

/// The WebSocket URL of a node given by its HTTP URL (both are served on one port by AICoin,
/// anvil, geth and reth).
fn ws_url(url: &str) -> String {
    match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some(("http", rest)) => format!("ws://{rest}"),
        _ => url.to_owned(),
    }
}

/// A call without its id: `"method":…,"params":…`, the body `frame` completes.
fn call(method: &str, params: &serde_json::Value) -> String {
    format!(r#""method":"{method}","params":{params}"#)
}

fn frame(id: usize, call: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},{call}}}"#)
}

/// The part of an answer the driver looks at.
#[derive(Deserialize)]
struct Answer {
    id: usize,
    error: Option<IgnoredAny>,
}

/// Sends `frames` (whose ids are their indices) over one WebSocket, keeping up to `in_flight`
/// unanswered.
async fn drive(url: &str, frames: &[String], in_flight: usize) -> eyre::Result<Round> {
    let (socket, _) = tokio_tungstenite::connect_async(ws_url(url)).await?;
    let (mut sink, mut answers) = socket.split();
    let mut sent_at = vec![None; frames.len()];
    let mut round = Round {
        latencies: Vec::with_capacity(frames.len()),
        ..Round::default()
    };
    let (mut sent, mut answered) = (0, 0);
    let started = Instant::now();
    while answered < frames.len() {
        let write = async {
            while sent < frames.len() && sent - answered < in_flight {
                sink.feed(Message::text(frames[sent].as_str())).await?;
                sent_at[sent] = Some(Instant::now());
                sent += 1;
            }
            sink.flush().await
        };
        // Written while nothing is read: a server that stops reading must not hang the bench.
        tokio::time::timeout(Duration::from_secs(60), write)
            .await
            .map_err(|_| eyre::eyre!("could not write requests for 60 s"))??;
        // Take every answer already here before writing again.
        let mut next = tokio::time::timeout(Duration::from_secs(60), answers.next())
            .await
            .map_err(|_| eyre::eyre!("no answer within 60 s ({answered} of {sent} answered)"))?;
        eyre::ensure!(
            next.is_some(),
            "the server closed the connection ({answered} of {sent} answered)"
        );
        while let Some(message) = next {
            let text = match message? {
                Message::Text(text) => text,
                Message::Close(close) => eyre::bail!("the server closed the socket: {close:?}"),
                _ => {
                    next = answers.next().now_or_never().flatten();
                    continue;
                }
            };
            let answer: Answer = serde_json::from_str(&text)?;
            let sent_at = sent_at
                .get_mut(answer.id)
                .and_then(Option::take)
                .ok_or_else(|| eyre::eyre!("an answer to unknown or repeated id {}", answer.id))?;
            answered += 1;
            if answer.error.is_some() {
                round.errors += 1;
                round.first_error.get_or_insert_with(|| text.to_string());
            } else {
                round.latencies.push(sent_at.elapsed());
            }
            next = answers.next().now_or_never().flatten();
        }
    }
    round.elapsed = started.elapsed();
    Ok(round)
}

/// Splits `calls` over `clients` WebSockets driven at once; one round from all of them.
pub(super) async fn drive_all(
    url: &str,
    calls: &[String],
    clients: usize,
    in_flight: usize,
) -> eyre::Result<Round> {
    // Each connection numbers its own requests from zero; rendered before the clock starts.
    let connections: Vec<Vec<String>> = calls
        .chunks(calls.len().div_ceil(clients))
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(id, c)| frame(id, c))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let rounds = futures::future::try_join_all(
        connections
            .iter()
            .map(|frames| drive(url, frames, in_flight)),
    )
    .await?;
    let mut out = Round::default();
    for r in rounds {
        out.absorb(r.latencies, r.errors, r.first_error);
    }
    out.finish(started.elapsed());
    Ok(out)
}

/// `eth_getBalance` of the dev accounts and of accounts that do not exist, in turn.
pub(super) fn balance_calls(requests: usize) -> eyre::Result<Vec<String>> {
    let mut accounts: Vec<Address> = dev_signers()?.iter().map(|s| s.address()).collect();
    accounts.extend((1..=6u8).map(Address::with_last_byte));
    Ok((0..requests)
        .map(|i| {
            let params = serde_json::json!([accounts[i % accounts.len()], "latest"]);
            call("eth_getBalance", &params)
        })
        .collect())
}

/// Senders of `submit` transfers, funded once, with the next nonce each will use.
pub(super) struct Senders {
    chain_id: u64,
    gas_price: u128,
    keys: Vec<PrivateKeySigner>,
    next_nonce: Vec<u64>,
}

async fn nonces(client: &HttpClient, accounts: &[Address], block: &str) -> eyre::Result<Vec<u64>> {
    stream::iter(accounts)
        .map(|a| async move {
            let n: U64 = client
                .request("eth_getTransactionCount", rpc_params![a, block])
                .await?;
            Ok::<_, eyre::Report>(n.to::<u64>())
        })
        .buffered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

impl Senders {
    /// Derives `count` sender keys and funds each from the dev accounts (1 AIC or ether each).
    pub(super) async fn fund(url: &str, count: usize, in_flight: usize) -> eyre::Result<Self> {
        let client = http_client(url)?;
        let chain_id: U64 = client.request("eth_chainId", rpc_params![]).await?;
        let gas_price: U256 = client.request("eth_gasPrice", rpc_params![]).await?;
        // Twice the quoted price, so a base fee that rises under load still admits them.
        let (chain_id, gas_price) = (chain_id.to::<u64>(), gas_price.to::<u128>() * 2);
        let keys = (0..count)
            .map(|i| {
                let secret = keccak256(format!("aicoin bench rpc sender {i}"));
                PrivateKeySigner::from_bytes(&secret)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dev = dev_signers()?;
        let dev_addresses: Vec<Address> = dev.iter().map(|s| s.address()).collect();
        let mut dev_nonces = nonces(&client, &dev_addresses, "pending").await?;
        let mut frames = Vec::with_capacity(count);
        for (i, key) in keys.iter().enumerate() {
            let funder = i % dev.len();
            let tx = TxLegacy {
                chain_id: Some(chain_id),
                nonce: dev_nonces[funder],
                gas_price,
                gas_limit: 21_000,
                to: key.address().into(),
                value: AIC,
                input: Default::default(),
            };
            dev_nonces[funder] += 1;
            let raw = aicoin_primitives::sign_transaction(&dev[funder], tx)?.encoded_2718();
            let params = serde_json::json!([hex::encode_prefixed(raw)]);
            frames.push(call("eth_sendRawTransaction", &params));
        }
        let sent = drive_all(url, &frames, 1, in_flight).await?;
        eyre::ensure!(
            sent.errors == 0,
            "funding the senders failed: {}",
            sent.first_error.unwrap_or_default()
        );
        wait_until_mined(&client, dev_addresses.iter().copied().zip(dev_nonces)).await?;
        let addresses: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let next_nonce = nonces(&client, &addresses, "pending").await?;
        Ok(Self {
            chain_id,
            gas_price,
            keys,
            next_nonce,
        })
    }

    /// Signs `requests` transfers (senders in turn, so one sender's nonces arrive spread out)
    /// and sends them.
    pub(super) async fn send(
        &mut self,
        url: &str,
        requests: usize,
        clients: usize,
        in_flight: usize,
    ) -> eyre::Result<Round> {
        let calls: Vec<String> = (0..requests)
            .map(|i| {
                let s = i % self.keys.len();
                let tx = TxLegacy {
                    chain_id: Some(self.chain_id),
                    nonce: self.next_nonce[s],
                    gas_price: self.gas_price,
                    gas_limit: 21_000,
                    to: Address::with_last_byte((s % 250) as u8 + 1).into(),
                    value: U256::from(1u64),
                    input: Default::default(),
                };
                self.next_nonce[s] += 1;
                let raw = aicoin_primitives::sign_transaction(&self.keys[s], tx)?.encoded_2718();
                let params = serde_json::json!([hex::encode_prefixed(raw)]);
                Ok(call("eth_sendRawTransaction", &params))
            })
            .collect::<eyre::Result<_>>()?;
        drive_all(url, &calls, clients, in_flight).await
    }

    /// Waits until everything `round` sent is mined, and notes when (from its first request).
    pub(super) async fn wait_mined(&mut self, url: &str, round: &mut Round) -> eyre::Result<()> {
        let waiting = Instant::now();
        let client = http_client(url)?;
        let addresses: Vec<Address> = self.keys.iter().map(|k| k.address()).collect();
        if round.errors > 0 {
            // Refused transfers leave gaps: go on from what the node holds.
            self.next_nonce = nonces(&client, &addresses, "pending").await?;
        }
        wait_until_mined(
            &client,
            addresses
                .iter()
                .copied()
                .zip(self.next_nonce.iter().copied()),
        )
        .await?;
        round.mined_after = Some(round.elapsed + waiting.elapsed());
        Ok(())
    }
}
