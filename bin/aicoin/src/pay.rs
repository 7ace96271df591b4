//! `aicoin pay`: the spec's "Payment Integration" as commands. `request` prints an EIP-681
//! payment URI; `watch` waits until an address has received an amount in transfers mined after
//! the command started (with the confirmations asked for), following new blocks over a
//! WebSocket subscription, or by polling over HTTP when WebSocket is unavailable.

use std::time::{Duration, Instant};

use aicoin_wallet::{format_aic, parse_address, parse_aic, payment_uri};
use alloy_primitives::{Address, B256, U256};
use clap::{Args, Subcommand};
use eyre::{bail, eyre};
use jsonrpsee::{
    core::client::{Subscription, SubscriptionClientT},
    rpc_params,
    ws_client::{WsClient, WsClientBuilder},
};
use serde_json::{Value, json};

use crate::wallet::{RpcUrl, WalletDir, chain::Node};

#[derive(Debug, Args)]
pub struct PayArgs {
    #[command(flatten)]
    dir: WalletDir,
    #[command(subcommand)]
    command: PayCommand,
}

#[derive(Debug, Subcommand)]
enum PayCommand {
    /// Print an EIP-681 URI asking for AMOUNT AIC (for a link or a QR code).
    Request {
        /// Amount in AIC, e.g. 10.5.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Who gets paid [default: the wallet's default account].
        #[arg(long)]
        address: Option<String>,
        #[arg(long, default_value_t = aicoin_primitives::AICOIN_CHAIN_ID)]
        chain_id: u64,
    },
    /// Wait until ADDRESS has received AMOUNT AIC; exit 0 with the transactions, non-zero on
    /// timeout.
    Watch {
        /// Who gets paid [default: the wallet's default account].
        #[arg(long)]
        address: Option<String>,
        /// Amount in AIC, e.g. 10.5.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Blocks a payment must be deep (1: mined).
        #[arg(long, default_value_t = 1)]
        confirmations: u64,
        /// Seconds to wait before giving up.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        rpc: RpcUrl,
    },
}

/// New chain heads, pushed over WebSocket or polled over HTTP.
enum Heads {
    Pushed(#[allow(dead_code)] WsClient, Subscription<Value>),
    Polled,
}

impl Heads {
    async fn connect(http_url: &str) -> Self {
        let ws_url = http_url.replacen("http", "ws", 1);
        let subscribed = async {
            let client = WsClientBuilder::default().build(&ws_url).await.ok()?;
            let heads = client
                .subscribe("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
                .await
                .ok()?;
            Some(Self::Pushed(client, heads))
        };
        match subscribed.await {
            Some(heads) => heads,
            None => {
                tracing::info!(%ws_url, "no WebSocket subscription; polling over HTTP");
                Self::Polled
            }
        }
    }

    /// Waits for the chain to move on; returns at the deadline too, so the caller can give up.
    async fn wait(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self {
            Self::Pushed(_, heads) => match tokio::time::timeout(left, heads.next()).await {
                Ok(Some(Ok(_))) | Err(_) => {}
                // The subscription ended: keep going by polling.
                Ok(_) => *self = Self::Polled,
            },
            Self::Polled => tokio::time::sleep(left.min(Duration::from_millis(500))).await,
        }
    }
}

/// Whether a payment in block `block` has `confirmations` blocks on it (itself included) at
/// `head`; 0 counts as 1: a payment must at least be mined.
fn is_confirmed(head: u64, block: u64, confirmations: u64) -> bool {
    head + 1 >= block + confirmations.max(1)
}

struct Payment {
    hash: B256,
    value: U256,
    block: u64,
}

/// Successful transfers of value to `to` in block `number`.
async fn payments_in(node: &Node, number: u64, to: Address) -> eyre::Result<Vec<Payment>> {
    let Some(block) = node.block(number).await? else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for tx in block["transactions"].as_array().into_iter().flatten() {
        let recipient = tx["to"].as_str().and_then(|t| t.parse::<Address>().ok());
        let value: U256 = serde_json::from_value(tx["value"].clone()).unwrap_or_default();
        if recipient != Some(to) || value.is_zero() {
            continue;
        }
        let hash: B256 = serde_json::from_value(tx["hash"].clone())?;
        if let Some(receipt) = node.receipt(hash).await?
            && receipt["status"] == "0x1"
        {
            found.push(Payment {
                hash,
                value,
                block: number,
            });
        }
    }
    Ok(found)
}

/// Reads the blocks after `scanned` up to the head, adding their payments to `address`;
/// returns the head.
async fn scan(
    node: &Node,
    address: Address,
    scanned: &mut u64,
    payments: &mut Vec<Payment>,
) -> eyre::Result<u64> {
    let head = node.block_number().await?;
    for number in *scanned + 1..=head {
        payments.extend(payments_in(node, number, address).await?);
        *scanned = number;
    }
    Ok(head)
}

async fn watch(
    dir: &WalletDir,
    address: Address,
    target: U256,
    confirmations: u64,
    timeout: Duration,
    url: &str,
) -> eyre::Result<()> {
    let node = Node::new(url)?;
    let deadline = Instant::now() + timeout;
    let mut scanned = node.block_number().await?;
    let mut heads = Heads::connect(url).await;
    eprintln!(
        "Watching {address} for {} AIC in blocks after #{scanned} ({} confirmation(s), {}s)…",
        format_aic(target),
        confirmations.max(1),
        timeout.as_secs()
    );
    let mut payments: Vec<Payment> = Vec::new();
    let mut head = scanned;
    let mut unreachable = false;
    loop {
        // A node that restarts or a network that drops for a moment is waited out until the
        // deadline; the scan resumes from the last block it finished.
        match scan(&node, address, &mut scanned, &mut payments).await {
            Ok(now) => {
                if unreachable {
                    eprintln!("The node answers again; watching resumes.");
                    unreachable = false;
                }
                head = now;
            }
            Err(e) if !unreachable => {
                eprintln!("warning: {e:#}; retrying until the deadline");
                unreachable = true;
            }
            Err(_) => {}
        }
        let confirmed: Vec<&Payment> = payments
            .iter()
            .filter(|p| is_confirmed(head, p.block, confirmations))
            .collect();
        let received = confirmed.iter().fold(U256::ZERO, |sum, p| sum + p.value);
        if received >= target {
            let txs: Vec<Value> = confirmed
                .iter()
                .map(|p| json!({ "hash": p.hash, "wei": p.value.to_string(), "aic": format_aic(p.value), "block": p.block }))
                .collect();
            dir.print(
                json!({ "address": address.to_checksum(None), "received_wei": received.to_string(),
                                   "received_aic": format_aic(received), "transactions": txs }),
                || {
                    let mut text = format!("Received {} AIC at {address}:", format_aic(received));
                    for p in &confirmed {
                        text.push_str(&format!(
                            "\n  {}  {} AIC  block {}",
                            p.hash,
                            format_aic(p.value),
                            p.block
                        ));
                    }
                    text
                },
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            let pending = payments.iter().fold(U256::ZERO, |sum, p| sum + p.value) - received;
            let awaiting = match pending.is_zero() {
                true => String::new(),
                false => format!(", {} AIC more awaiting confirmations", format_aic(pending)),
            };
            bail!(
                "timed out after {}s: {address} received {} of {} AIC{awaiting}",
                timeout.as_secs(),
                format_aic(received),
                format_aic(target),
            );
        }
        heads.wait(deadline).await;
    }
}

pub async fn run(args: PayArgs) -> eyre::Result<()> {
    let dir = &args.dir;
    match args.command {
        PayCommand::Request {
            amount,
            address,
            chain_id,
        } => {
            let value = parse_aic(&amount)?;
            let address = dir.address_or_default(address.as_deref())?;
            let uri = payment_uri(address, chain_id, value);
            dir.print(
                json!({ "uri": uri, "address": address.to_checksum(None), "wei": value.to_string() }),
                || uri.clone(),
            );
        }
        PayCommand::Watch {
            address,
            amount,
            confirmations,
            timeout,
            rpc,
        } => {
            let target = parse_aic(&amount)?;
            if target.is_zero() {
                return Err(eyre!("--amount must be more than 0"));
            }
            let address = match address {
                Some(a) => parse_address(&a)?,
                None => dir.address_or_default(None)?,
            };
            watch(
                dir,
                address,
                target,
                confirmations,
                Duration::from_secs(timeout),
                &rpc.rpc_url,
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_count_the_including_block() {
        assert!(is_confirmed(10, 10, 1));
        assert!(!is_confirmed(11, 10, 3));
        assert!(is_confirmed(12, 10, 3));
        assert!(is_confirmed(10, 10, 0));
        assert!(!is_confirmed(9, 10, 1));
    }
}
