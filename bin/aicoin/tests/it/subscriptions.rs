//! `eth_subscribe` over WebSocket on the RPC port: new heads in order, logs matching a filter,
//! pending transactions as hashes or in full, and a clear error for unknown kinds.

use alloy_primitives::{Address, B256, U256};
use jsonrpsee::{
    core::client::{Subscription, SubscriptionClientT},
    rpc_params,
    ws_client::{WsClient, WsClientBuilder},
};
use serde_json::{Value, json};

use crate::common::*;

async fn ws(node: &Rpc) -> WsClient {
    let url = node.url.replacen("http://", "ws://", 1);
    WsClientBuilder::default().build(&url).await.unwrap()
}

async fn next(sub: &mut Subscription<Value>) -> Value {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("no notification before the deadline")
        .expect("subscription closed")
        .expect("notification is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_logs_and_pending_transactions_are_pushed() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |_| {}).await;
    let client = ws(&node).await;

    let mut heads = client
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .unwrap();
    let first = next(&mut heads).await;
    let second = next(&mut heads).await;
    let number = |h: &Value| {
        u64::from_str_radix(h["number"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    assert_eq!(number(&second), number(&first) + 1);
    assert_eq!(second["parentHash"], first["hash"]);
    assert_eq!(second["baseFeePerGas"], "0x0");

    let probe = node.deploy("Probe").await;
    let mut logs = client
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["logs", json!({ "address": probe })],
            "eth_unsubscribe",
        )
        .await
        .unwrap();
    let mut hashes = client
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["newPendingTransactions"],
            "eth_unsubscribe",
        )
        .await
        .unwrap();
    let mut full = client
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["newPendingTransactions", true],
            "eth_unsubscribe",
        )
        .await
        .unwrap();

    // set(7) on the probe: a pending transaction, then its log once mined.
    let data = format!("0x60fe47b1{:064x}", 7);
    let hash: B256 = node
        .ok(
            "eth_sendTransaction",
            vec![json!({ "from": dev_key(0).address(), "to": probe, "data": data })],
        )
        .await;
    assert_eq!(next(&mut hashes).await, json!(hash));
    let tx = next(&mut full).await;
    assert_eq!(tx["hash"], json!(hash));
    assert_eq!(
        tx["to"].as_str().unwrap().parse::<Address>().unwrap(),
        probe
    );
    let log = next(&mut logs).await;
    assert_eq!(log["transactionHash"], json!(hash));
    assert_eq!(log["topics"][2], json!(B256::ZERO));

    // A transfer elsewhere is no log of the probe's: the next log is the next set().
    node.send_raw(&transfer(
        &dev_key(1),
        0,
        Address::repeat_byte(9),
        U256::from(1),
    ))
    .await
    .unwrap();
    let data = format!("0x60fe47b1{:064x}", 8);
    let hash: B256 = node
        .ok(
            "eth_sendTransaction",
            vec![json!({ "from": dev_key(0).address(), "to": probe, "data": data })],
        )
        .await;
    assert_eq!(next(&mut logs).await["transactionHash"], json!(hash));

    let err = client
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["noSuchThing"],
            "eth_unsubscribe",
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("-32602") || err.to_string().contains("Invalid params"),
        "{err}"
    );

    // Unsubscribing ends the stream; the connection stays usable.
    heads.unsubscribe().await.unwrap();
    let block: String =
        jsonrpsee::core::client::ClientT::request(&client, "eth_blockNumber", rpc_params![])
            .await
            .unwrap();
    assert!(block.starts_with("0x"));
}
