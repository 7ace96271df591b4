//! `aicoin gateway`: the gateways the network takes usage reports from (`IApiAccess`). `list`
//! shows them; `add` and `remove` are a validator's transactions, signed by a wallet account
//! holding the validator's key (`aicoin wallet import --private-key`). A validator's own
//! `--gateway` registers itself.

use std::time::Duration;

use aicoin_modules::access::IApiAccess;
use aicoin_primitives::modules::API_ACCESS_ADDRESS;
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use clap::{Args, Subcommand};
use eyre::{bail, eyre};
use jsonrpsee::rpc_params;
use serde_json::json;

use crate::wallet::{RpcUrl, WalletDir, chain::Node};

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    dir: WalletDir,
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// The registered gateways and their URLs.
    List {
        #[command(flatten)]
        rpc: RpcUrl,
    },
    /// Register a gateway (a validator's transaction).
    Add {
        gateway: Address,
        /// Its public OpenAI-compatible base URL.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        send: Send,
    },
    /// Remove a gateway (a validator's transaction): its reports are no longer taken, and
    /// providers no longer serve it.
    Remove {
        gateway: Address,
        #[command(flatten)]
        send: Send,
    },
}

/// How a transaction is sent.
#[derive(Debug, Args)]
struct Send {
    /// The validator's wallet account [default: the wallet's default account].
    #[arg(long)]
    from: Option<String>,
    /// The chain the node must be on (the signature is valid only there).
    #[arg(long, env = "AICOIN_CHAIN_ID", default_value_t = aicoin_primitives::AICOIN_CHAIN_ID)]
    chain_id: u64,
    /// Seconds to wait for the receipt.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    #[command(flatten)]
    rpc: RpcUrl,
}

pub async fn run(args: GatewayArgs) -> eyre::Result<()> {
    let dir = &args.dir;
    match args.command {
        GatewayCommand::List { rpc } => {
            let node = Node::new(&rpc.rpc_url)?;
            let data = Bytes::from(IApiAccess::gatewaysCall {}.abi_encode());
            let out: Bytes = node
                .call(
                    "eth_call",
                    rpc_params![json!({ "to": API_ACCESS_ADDRESS, "data": data }), "latest"],
                )
                .await?;
            let gateways = IApiAccess::gatewaysCall::abi_decode_returns(&out)
                .map_err(|e| eyre!("the API-access module answered something else: {e}"))?;
            let rows: Vec<_> = gateways
                .iter()
                .map(|g| json!({ "gateway": g.gateway.to_checksum(None), "url": g.url }))
                .collect();
            dir.print(json!(rows), || match gateways.is_empty() {
                true => "No gateways are registered".to_string(),
                false => gateways
                    .iter()
                    .map(|g| format!("{}  {}", g.gateway, g.url))
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
            Ok(())
        }
        GatewayCommand::Add { gateway, url, send } => {
            let data = IApiAccess::addGatewayCall {
                gateway,
                url: url.clone(),
            }
            .abi_encode();
            let block = transact(dir, &send, data).await?;
            dir.print(
                json!({ "gateway": gateway.to_checksum(None), "url": url, "block": block }),
                || format!("Registered gateway {gateway} ({url}) at block {block}"),
            );
            Ok(())
        }
        GatewayCommand::Remove { gateway, send } => {
            let data = IApiAccess::removeGatewayCall { gateway }.abi_encode();
            let block = transact(dir, &send, data).await?;
            dir.print(
                json!({ "gateway": gateway.to_checksum(None), "removed": true, "block": block }),
                || format!("Removed gateway {gateway} at block {block}"),
            );
            Ok(())
        }
    }
}

/// Sends `data` to the module and waits for it to be mined; returns the block. A revert shows
/// the module's reason (checked with `eth_call` first).
async fn transact(dir: &WalletDir, send: &Send, data: Vec<u8>) -> eyre::Result<u64> {
    let account = dir.address_or_default(send.from.as_deref())?;
    let node = Node::new(&send.rpc.rpc_url)?;
    let data = Bytes::from(data);
    let _: Bytes = node
        .call(
            "eth_call",
            rpc_params![
                json!({ "from": account, "to": API_ACCESS_ADDRESS, "data": data }),
                "latest"
            ],
        )
        .await?;
    let signer = dir.open()?.signer(&account, &dir.password()?)?;
    let hash = node
        .send(&signer, API_ACCESS_ADDRESS, U256::ZERO, data, send.chain_id)
        .await?;
    let receipt = node
        .wait_for_receipt(hash, Duration::from_secs(send.timeout))
        .await?;
    if receipt["status"] != "0x1" {
        bail!("transaction {hash} failed on chain");
    }
    crate::wallet::chain::quantity(&receipt, "blockNumber")
}
