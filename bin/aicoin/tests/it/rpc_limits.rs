//! What one client can make the node do, and what it still gets: log filters that fell behind
//! the range limit catch up a range per poll instead of failing forever, a filter from a future
//! block reports nothing older, filters and `logs` subscriptions name at most 1,000 addresses
//! and topic alternatives, connections per client address are capped, struct-log traces
//! are bounded, stack copies included, with a block's traces sharing one budget (and `limit`
//! and other tracers still working), calls asking for more gas than a
//! transaction may use run with the cap, and `eth_feeHistory` of no blocks is empty.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_sol_types::{SolCall, sol};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::common::*;

sol! {
    function set(uint256 v) external;
}

/// Creation code that counts down from 0xffff in a loop: ~460,000 EVM steps for ~1.7M gas.
const LOOP_INITCODE: &str = "0x61ffff5b600190038060035700";

/// The same loop with 1,000 words under it on the stack: each step a struct logger records
/// copies 32 KB of stack.
fn deep_loop_initcode() -> String {
    format!("0x{}61ffff5b60019003806107d35700", "6000".repeat(1000))
}

/// Creation code that counts down from 16: 114 EVM steps.
const SHORT_LOOP_INITCODE: &[u8] = &[
    0x60, 0x10, 0x5b, 0x60, 0x01, 0x90, 0x03, 0x80, 0x60, 0x02, 0x57, 0x00,
];

fn create(
    signer: &alloy_signer_local::PrivateKeySigner,
    nonce: u64,
    code: &[u8],
) -> alloy_primitives::Bytes {
    use alloy_eips::eip2718::Encodable2718;
    let tx = alloy_consensus::TxLegacy {
        chain_id: Some(2108),
        nonce,
        gas_price: 0,
        gas_limit: 100_000,
        to: alloy_primitives::TxKind::Create,
        value: U256::ZERO,
        input: code.to_vec().into(),
    };
    aicoin_primitives::sign_transaction(signer, tx)
        .unwrap()
        .encoded_2718()
        .into()
}

async fn set_value(node: &Rpc, probe: Address, v: u64) -> u64 {
    let data = setCall { v: U256::from(v) }.abi_encode();
    let receipt = node
        .send_and_mine(json!({
            "from": dev_key(0).address(), "to": probe,
            "data": alloy_primitives::hex::encode_prefixed(data),
        }))
        .await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    block_of(&receipt)
}

async fn wait_for_block(node: &Rpc, number: u64) {
    node.wait_until(|| async { node.block_number().await >= number })
        .await;
}

/// Every log the filter reports over `polls` polls.
async fn poll(node: &Rpc, filter: &Value, polls: u64) -> Vec<Value> {
    let mut logs = Vec::new();
    for _ in 0..polls {
        let changes: Vec<Value> = node.ok("eth_getFilterChanges", vec![filter.clone()]).await;
        logs.extend(changes);
    }
    logs
}

fn block_of(log: &Value) -> u64 {
    u64::from_str_radix(
        log["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_catch_up_in_ranges_and_never_report_before_their_from_block() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| {
        c.rpc_limits.max_logs_range = 5;
        c.block_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let probe = node.deploy("Probe").await;

    // A filter polled only after 20 blocks, more than the 5-block range limit.
    let behind: Value = node
        .ok(
            "eth_newFilter",
            vec![json!({ "fromBlock": "0x1", "address": probe })],
        )
        .await;
    let first = set_value(&node, probe, 1).await;
    wait_for_block(&node, first + 20).await;
    let last = set_value(&node, probe, 2).await;
    // The first poll covers five blocks, not the last log's; the rest come poll by poll.
    let mut logs = poll(&node, &behind, 1).await;
    assert!(logs.iter().all(|l| block_of(l) < last), "{logs:?}");
    logs.extend(poll(&node, &behind, last / 5 + 2).await);
    assert_eq!(logs.iter().map(block_of).collect::<Vec<_>>(), [first, last]);

    // A filter from a block not mined yet: a log before it is never reported.
    let head = node.block_number().await;
    let from = head + 15;
    let future: Value = node
        .ok(
            "eth_newFilter",
            vec![json!({ "fromBlock": format!("{from:#x}"), "address": probe })],
        )
        .await;
    let early = set_value(&node, probe, 3).await;
    assert!(
        early < from,
        "the early log landed at {early}, after {from}"
    );
    let empty: Vec<Value> = node.ok("eth_getFilterChanges", vec![future.clone()]).await;
    assert!(empty.is_empty());
    wait_for_block(&node, from + 1).await;
    let late = set_value(&node, probe, 4).await;
    let logs = poll(&node, &future, (late - from) / 5 + 2).await;
    assert_eq!(logs.iter().map(block_of).collect::<Vec<_>>(), [late]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_name_at_most_a_thousand_addresses_and_topic_alternatives() {
    use jsonrpsee::{core::client::SubscriptionClientT, rpc_params, ws_client::WsClientBuilder};

    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |_| {}).await;
    let addresses = |n: u64| -> Vec<Address> {
        (1..=n)
            .map(|i: u64| Address::left_padding_from(&i.to_be_bytes()))
            .collect()
    };
    let topics = |n: u64| -> Vec<String> { (1..=n).map(|i| format!("{:#066x}", i)).collect() };
    let too_many = [
        (json!({ "address": addresses(1001) }), "1001 addresses"),
        (
            json!({ "topics": [null, topics(1001)] }),
            "topic 1 has 1001 alternatives",
        ),
    ];
    for (filter, reason) in &too_many {
        for method in ["eth_newFilter", "eth_getLogs"] {
            let refused = node
                .rpc::<Value>(method, vec![filter.clone()])
                .await
                .unwrap_err();
            assert_eq!(refused.code(), -32602, "{method}: {refused:?}");
            assert!(refused.message().contains(reason), "{method}: {refused:?}");
        }
    }
    let ws = WsClientBuilder::default()
        .build(node.url.replacen("http://", "ws://", 1))
        .await
        .unwrap();
    let refused = ws
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["logs", &too_many[0].0],
            "eth_unsubscribe",
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("1001 addresses"), "{refused}");

    // At the limit, all three are served.
    let most = json!({ "address": addresses(1000), "topics": [topics(1000)] });
    let _: Value = node.ok("eth_newFilter", vec![most.clone()]).await;
    let logs: Vec<Value> = node.ok("eth_getLogs", vec![most.clone()]).await;
    assert!(logs.is_empty());
    ws.subscribe::<Value, _>(
        "eth_subscribe",
        rpc_params!["logs", most],
        "eth_unsubscribe",
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocks_traces_share_one_budget() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| c.rpc_limits.trace.max_steps = 150).await;
    let signer = dev_key(1);
    let nonce = node.nonce(signer.address()).await;
    // The second first: it waits for the first, and both are mined in one block.
    let second = node
        .send_raw(&create(&signer, nonce + 1, SHORT_LOOP_INITCODE))
        .await
        .unwrap();
    let first = node
        .send_raw(&create(&signer, nonce, SHORT_LOOP_INITCODE))
        .await
        .unwrap();
    let (first, second) = (node.receipt(first).await, node.receipt(second).await);
    assert_eq!(first["blockNumber"], second["blockNumber"]);

    // Each fits the 150-step budget alone (114 steps); the block's two together do not.
    for receipt in [&first, &second] {
        let trace: Value = node
            .ok(
                "debug_traceTransaction",
                vec![receipt["transactionHash"].clone()],
            )
            .await;
        assert_eq!(trace["structLogs"].as_array().unwrap().len(), 114);
    }
    let refused = node
        .rpc::<Value>(
            "debug_traceBlockByNumber",
            vec![first["blockNumber"].clone()],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), -32005);
    assert!(
        refused.message().contains("more than 150 steps"),
        "{}",
        refused.message()
    );
    let calls: Vec<Value> = node
        .ok(
            "debug_traceBlockByNumber",
            vec![
                first["blockNumber"].clone(),
                json!({ "tracer": "callTracer" }),
            ],
        )
        .await;
    assert_eq!(calls.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_client_address_are_capped() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| c.rpc.max_connections_per_ip = 8).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let fresh_request = || async {
        // A new client: a new connection.
        reqwest::Client::new()
            .post(&node.url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
            .send()
            .await
    };
    // Eight idle connections take every slot this address has (one may already be the test
    // harness's own).
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ninth = fresh_request().await;
    assert!(ninth.is_err(), "a ninth connection was served: {ninth:?}");
    drop(idle);
    node.wait_until(|| async { fresh_request().await.is_ok() })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_holding_every_slot_with_idle_websockets_cannot_lock_others_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| {
        c.rpc.max_connections = 8;
        c.rpc.max_connections_per_ip = 8;
    })
    .await;
    let addr: std::net::SocketAddr = node.url.trim_start_matches("http://").parse().unwrap();
    // Each of the hog's connections is upgraded to a WebSocket, then left idle.
    let from_hog = || async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut tcp = socket.connect(addr).await.unwrap();
        let _ = tcp
            .write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            // Refused: closed (or reset) before any answer.
            if !matches!(tcp.read(&mut byte).await, Ok(1)) {
                break;
            }
            head.push(byte[0]);
        }
        (tcp, String::from_utf8_lossy(&head).into_owned())
    };
    let mut idle = Vec::new();
    for _ in 0..8 {
        let (tcp, head) = from_hog().await;
        if head.starts_with("HTTP/1.1 101") {
            idle.push(tcp);
        }
    }
    // Seven or eight, as the harness's own client holds one of the eight slots or not.
    assert!(idle.len() >= 7, "{} WebSockets upgraded", idle.len());
    // Another host still gets in: the hog's oldest connection makes room.
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    let answer: Value = reqwest::Client::new()
        .post(&node.url)
        .json(&request)
        .timeout(DEADLINE)
        .send()
        .await
        .expect("a newcomer was served while one host held every slot")
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"], "0x83c");
    // The hog's oldest WebSocket gave its slot back at once; its socket ends by its next ping
    // (within 30 s), whose write fails.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, idle[0].read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the hog's oldest WebSocket is still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_bounded_and_oversized_calls_run_with_the_cap() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |_| {}).await;
    let from = dev_key(0).address();
    let call = json!({ "from": from, "data": LOOP_INITCODE, "gas": "0x1000000" });

    // The struct logger would hold ~460,000 steps: refused with the limit code and a way out.
    let too_big = node
        .rpc::<Value>("debug_traceCall", vec![call.clone(), json!("latest")])
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), -32005);
    assert!(too_big.message().contains("limit"), "{}", too_big.message());
    let limited: Value = node
        .ok(
            "debug_traceCall",
            vec![call.clone(), json!("latest"), json!({ "limit": 10 })],
        )
        .await;
    assert_eq!(limited["structLogs"].as_array().unwrap().len(), 10);
    let calls: Value = node
        .ok(
            "debug_traceCall",
            vec![
                call.clone(),
                json!("latest"),
                json!({ "tracer": "callTracer" }),
            ],
        )
        .await;
    assert_eq!(calls["type"], "CREATE");

    // A loop at a deep stack copies 32 KB a step: refused once the copies pass the 256 MiB
    // budget (not 6.5 GB later), and served within it.
    let deep = json!({ "from": from, "data": deep_loop_initcode(), "gas": "0x1000000" });
    let too_big = node
        .rpc::<Value>("debug_traceCall", vec![deep.clone(), json!("latest")])
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), -32005);
    assert!(
        too_big.message().contains("records more than"),
        "{}",
        too_big.message()
    );
    let limited: Value = node
        .ok(
            "debug_traceCall",
            vec![deep.clone(), json!("latest"), json!({ "limit": 10 })],
        )
        .await;
    assert_eq!(limited["structLogs"].as_array().unwrap().len(), 10);
    // Without stacks, past the 8,192 steps that 256 MiB of stack copies would allow.
    let stackless: Value = node
        .ok(
            "debug_traceCall",
            vec![
                deep,
                json!("latest"),
                json!({ "limit": 20_000, "disableStack": true }),
            ],
        )
        .await;
    assert_eq!(stackless["structLogs"].as_array().unwrap().len(), 20_000);

    // More gas than one transaction may have: run with the cap, as geth does.
    let huge = json!({ "from": from, "data": LOOP_INITCODE, "gas": "0x3b9aca00" });
    let _: Value = node.ok("eth_call", vec![huge, json!("latest")]).await;

    let none: Value = node
        .ok(
            "eth_feeHistory",
            vec![json!("0x0"), json!("latest"), json!([])],
        )
        .await;
    assert_eq!(none["oldestBlock"], "0x0");
    assert!(
        none["baseFeePerGas"].as_array().is_none_or(Vec::is_empty),
        "{none}"
    );
}
