//! geth's tracers over mined transactions, blocks and calls, and the `txpool_` views of pending
//! and queued transactions.

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::{SolCall, sol};
use serde_json::{Value, json};

use crate::common::*;

sol! {
    function set(uint256 v) external;
}

fn set_data(v: u64) -> String {
    alloy_primitives::hex::encode_prefixed(setCall { v: U256::from(v) }.abi_encode())
}

fn address(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracers_replay_mined_transactions_and_calls() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |_| {}).await;
    let alice = dev_key(0).address();
    let probe = node.deploy("Probe").await;
    let receipt = node
        .send_and_mine(json!({ "from": alice, "to": probe, "data": set_data(3) }))
        .await;
    let hash = receipt["transactionHash"].clone();

    let call: Value = node
        .ok(
            "debug_traceTransaction",
            vec![hash.clone(), json!({ "tracer": "callTracer" })],
        )
        .await;
    assert_eq!(call["type"], "CALL");
    assert_eq!(address(&call["from"]), alice);
    assert_eq!(address(&call["to"]), probe);
    assert_eq!(call["input"], json!(set_data(3)));
    assert!(call.get("error").is_none(), "{call}");

    // The prestate is the state before the transaction: slot 0 not yet written.
    let prestate: Value = node
        .ok(
            "debug_traceTransaction",
            vec![hash.clone(), json!({ "tracer": "prestateTracer" })],
        )
        .await;
    let probe_key = prestate
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.parse::<Address>().ok() == Some(probe))
        .cloned()
        .unwrap_or_else(|| panic!("no probe in {prestate}"));
    assert!(
        prestate[&probe_key]["code"]
            .as_str()
            .is_some_and(|c| c.len() > 2)
    );

    let diff: Value = node
        .ok(
            "debug_traceTransaction",
            vec![
                hash.clone(),
                json!({ "tracer": "prestateTracer", "tracerConfig": { "diffMode": true } }),
            ],
        )
        .await;
    let post = &diff["post"][&probe_key]["storage"];
    assert_eq!(post[B256::ZERO.to_string()], json!(B256::with_last_byte(3)));

    let steps: Value = node.ok("debug_traceTransaction", vec![hash.clone()]).await;
    assert_eq!(steps["failed"], false);
    let logs = steps["structLogs"].as_array().unwrap();
    assert!(logs.iter().any(|s| s["op"] == "SSTORE"), "no SSTORE step");

    let block: Vec<Value> = node
        .ok(
            "debug_traceBlockByNumber",
            vec![
                receipt["blockNumber"].clone(),
                json!({ "tracer": "callTracer" }),
            ],
        )
        .await;
    let traced = block
        .iter()
        .find(|t| t["txHash"] == hash)
        .expect("transaction in block trace");
    assert_eq!(traced["result"], call);

    let traced_call: Value = node
        .ok(
            "debug_traceCall",
            vec![
                json!({ "from": alice, "to": probe, "data": set_data(4) }),
                json!("latest"),
                json!({ "tracer": "callTracer" }),
            ],
        )
        .await;
    assert_eq!(traced_call["input"], json!(set_data(4)));

    let bad = node
        .rpc::<Value>(
            "debug_traceTransaction",
            vec![hash, json!({ "tracer": "nosuchTracer" })],
        )
        .await
        .unwrap_err();
    assert!([-32602, -32000].contains(&bad.code()), "{bad:?}");
    let unknown = node
        .rpc::<Value>("debug_traceTransaction", vec![json!(B256::repeat_byte(7))])
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), -32000, "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txpool_shows_pending_and_queued_by_sender_and_nonce() {
    let tmp = tempdir();
    // No block for an hour: what is sent stays in the pool.
    let node = DevNode::spawn(&data_dir(&tmp), |c| {
        c.block_interval = std::time::Duration::from_secs(3600)
    })
    .await;
    let (alice, key) = (dev_key(0).address(), dev_key(0));
    let to = Address::repeat_byte(0x42);
    node.send_raw(&transfer(&key, 0, to, U256::from(5)))
        .await
        .unwrap();
    node.send_raw(&transfer(&key, 2, to, U256::from(6)))
        .await
        .unwrap();

    let status: Value = node.ok("txpool_status", vec![]).await;
    assert_eq!(status, json!({ "pending": "0x1", "queued": "0x1" }));
    let content: Value = node.ok("txpool_content", vec![]).await;
    let sender = alice.to_checksum(None);
    assert_eq!(content["pending"][&sender]["0"]["value"], "0x5");
    assert_eq!(content["queued"][&sender]["2"]["value"], "0x6");
    let from: Value = node.ok("txpool_contentFrom", vec![json!(alice)]).await;
    assert_eq!(from["queued"]["2"]["nonce"], "0x2");
    let inspect: Value = node.ok("txpool_inspect", vec![]).await;
    let summary = inspect["pending"][&sender]["0"].as_str().unwrap();
    assert!(summary.contains("5 wei"), "{summary}");

    // Filling the gap promotes the queued transaction.
    node.send_raw(&transfer(&key, 1, to, U256::from(7)))
        .await
        .unwrap();
    let status: Value = node.ok("txpool_status", vec![]).await;
    assert_eq!(status, json!({ "pending": "0x3", "queued": "0x0" }));
    let pending_nonce = node.nonce(alice).await;
    assert_eq!(pending_nonce, 3);
    // Nothing was mined: the chain is still at genesis.
    assert_eq!(node.block_number().await, 0);
}
