//! Sending a chain-module call from the wallet: the options every such command takes
//! ([`Sending`]), and [`send`], which first runs the call as it would land (in the next block),
//! so a refusal comes back with the module's reason before anything is signed, then signs,
//! sends and waits for the receipt. `aicoin gov`, `aicoin api-key` and `aicoin gateway` use it.

use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256};
use clap::Args;
use eyre::bail;
use jsonrpsee::rpc_params;
use serde_json::{Value, json};

use crate::wallet::{
    WalletDir,
    chain::{Node, quantity},
};

/// What signs and where it goes.
#[derive(Debug, Args)]
pub struct Sending {
    /// Sending account [default: the wallet's default account].
    #[arg(long, global = true)]
    pub from: Option<String>,
    /// The chain the node must be on (the signature is valid only there).
    #[arg(long, global = true, env = "AICOIN_CHAIN_ID", default_value_t = aicoin_primitives::AICOIN_CHAIN_ID)]
    pub chain_id: u64,
    /// Seconds to wait for the receipt.
    #[arg(long, global = true, default_value_t = 120)]
    pub timeout: u64,
    /// The node to talk to.
    #[arg(long, global = true, env = "AICOIN_RPC_URL", default_value = crate::wallet::chain::DEFAULT_RPC_URL)]
    pub rpc_url: String,
}

/// A module call to send: `data` with `value` to `to`.
pub struct ModuleCall {
    pub to: Address,
    pub value: U256,
    pub data: Vec<u8>,
}

/// Signs and sends `call`; returns the receipt of a successful transaction, or the module's
/// reason for refusing it (before signing, or from the block it failed in).
pub async fn send(dir: &WalletDir, sending: &Sending, call: &ModuleCall) -> eyre::Result<Value> {
    let from = dir.address_or_default(sending.from.as_deref())?;
    let node = Node::new(&sending.rpc_url)?;
    let head = node.block_number().await?;
    call_in(&node, from, call, head + 1).await?;
    let signer = dir.open()?.signer(&from, &dir.password()?)?;
    let hash = node
        .send(
            &signer,
            call.to,
            call.value,
            call.data.clone().into(),
            sending.chain_id,
        )
        .await?;
    let receipt = node
        .wait_for_receipt(hash, Duration::from_secs(sending.timeout))
        .await?;
    if receipt["status"] != "0x1" {
        let block = quantity(&receipt, "blockNumber")?;
        let why = match call_in(&node, from, call, block).await {
            Err(e) => format!(": {e}"),
            Ok(_) => String::new(),
        };
        bail!("transaction {hash} failed on chain in block {block}{why}");
    }
    Ok(receipt)
}

/// `call` from `from` as if in block `number` (on the state before it).
pub async fn call_in(
    node: &Node,
    from: Address,
    call: &ModuleCall,
    number: u64,
) -> eyre::Result<Bytes> {
    let request = json!({
        "from": from, "to": call.to, "value": call.value, "data": Bytes::from(call.data.clone()),
    });
    let before = format!("{:#x}", number.saturating_sub(1));
    node.call(
        "eth_call",
        rpc_params![
            request,
            before,
            Value::Null,
            json!({ "number": format!("{number:#x}") })
        ],
    )
    .await
}
