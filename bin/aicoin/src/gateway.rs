//! `aicoin gateway`: the gateways the network takes usage reports from (`IApiAccess`). `list`
//! shows them; `add` and `remove` are a validator's transactions, signed by a wallet account
//! holding the validator's key (`aicoin wallet import --private-key`). A validator's own
//! `--gateway` registers itself.

use aicoin_modules::access::IApiAccess;
use aicoin_primitives::modules::API_ACCESS_ADDRESS;
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use clap::{Args, Subcommand};
use eyre::eyre;
use jsonrpsee::rpc_params;
use serde_json::json;

use crate::{
    module_tx::{self, ModuleCall, Sending},
    wallet::{RpcUrl, WalletDir, chain::Node},
};

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
        sending: Sending,
    },
    /// Remove a gateway (a validator's transaction): its reports are no longer taken, and
    /// providers no longer serve it.
    Remove {
        gateway: Address,
        #[command(flatten)]
        sending: Sending,
    },
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
        GatewayCommand::Add {
            gateway,
            url,
            sending,
        } => {
            let data = IApiAccess::addGatewayCall {
                gateway,
                url: url.clone(),
            }
            .abi_encode();
            let block = transact(dir, &sending, data).await?;
            dir.print(
                json!({ "gateway": gateway.to_checksum(None), "url": url, "block": block }),
                || format!("Registered gateway {gateway} ({url}) at block {block}"),
            );
            Ok(())
        }
        GatewayCommand::Remove { gateway, sending } => {
            let data = IApiAccess::removeGatewayCall { gateway }.abi_encode();
            let block = transact(dir, &sending, data).await?;
            dir.print(
                json!({ "gateway": gateway.to_checksum(None), "removed": true, "block": block }),
                || format!("Removed gateway {gateway} at block {block}"),
            );
            Ok(())
        }
    }
}

/// Sends `data` to the module ([`module_tx::send`]); returns the block it was mined in.
async fn transact(dir: &WalletDir, sending: &Sending, data: Vec<u8>) -> eyre::Result<u64> {
    let call = ModuleCall {
        to: API_ACCESS_ADDRESS,
        value: U256::ZERO,
        data,
    };
    let receipt = module_tx::send(dir, sending, &call).await?;
    crate::wallet::chain::quantity(&receipt, "blockNumber")
}
