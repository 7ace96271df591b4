//! Concurrent mixed reads against a real node process: 32 clients on their own connections,
//! every request answered without error (throughput and memory are reported by
//! `aicoin bench rpc`, not asserted here: test machines are too noisy for timing). And the
//! heaviest reads one client may send, 600 calls in flight for 60 s, do not stop blocks.

use std::time::{Duration, Instant};

use jsonrpsee::{
    core::{client::ClientT, params::ArrayParams},
    ws_client::WsClientBuilder,
};
use serde_json::{Value, json};

use crate::common::*;

/// Creation code that counts down from 0xffff in a loop: ~460,000 EVM steps for ~1.7M gas.
const LOOP_INITCODE: &str = "0x61ffff5b600190038060035700";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_keep_their_interval_under_heavy_read_load() {
    const LOAD: Duration = Duration::from_secs(60);
    // Both cores are saturated meanwhile: no cluster's raft timers should share them.
    let _serial = crate::cluster::one_cluster_at_a_time().await;
    let tmp = tempdir();
    let node = NodeProcess::dev(&data_dir(&tmp), &["--block-interval", "1"]).await;
    // Genesis has no production time: start at block 1.
    node.wait_until(|| async { node.block_number().await >= 1 })
        .await;
    let first = node.block_number().await;
    // Three WebSocket connections with 200 calls in flight on each: more than tokio's default
    // blocking pool of 512 threads, which block production shared.
    let url = node.url.replacen("http://", "ws://", 1);
    let params = json!([{ "from": dev_key(0).address(), "data": LOOP_INITCODE, "gas": "0x1000000" }, "latest"]);
    let started = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..3 {
        let ws = std::sync::Arc::new(
            WsClientBuilder::default()
                .max_concurrent_requests(256)
                .request_timeout(Duration::from_secs(300))
                .build(&url)
                .await
                .unwrap(),
        );
        for _ in 0..200 {
            let (ws, params) = (ws.clone(), params.clone());
            calls.push(tokio::spawn(async move {
                let mut answered = 0u32;
                while started.elapsed() < LOAD {
                    let mut array = ArrayParams::new();
                    for param in params.as_array().unwrap() {
                        array.insert(param).unwrap();
                    }
                    let called: Result<Value, _> = ws.request("eth_call", array).await;
                    answered += u32::from(called.is_ok());
                }
                answered
            }));
        }
    }
    let mut answered = 0;
    for call in calls {
        answered += call.await.unwrap();
    }
    let last = node.block_number().await;
    assert!(answered > 0, "no call was answered");
    // One block a second all along, each timestamp the interval (± 1 s) after the last.
    let produced = last - first;
    assert!(
        produced + 2 >= LOAD.as_secs(),
        "{produced} blocks in {LOAD:?} of load"
    );
    let mut previous: Option<u64> = None;
    for number in first..=last {
        let block: Value = node
            .ok(
                "eth_getBlockByNumber",
                vec![json!(format!("{number:#x}")), json!(false)],
            )
            .await;
        let time = u64::from_str_radix(
            block["timestamp"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        if let Some(previous) = previous {
            assert!(
                time - previous <= 2,
                "block {number} came {} s after the last",
                time - previous
            );
        }
        previous = Some(time);
    }
}

/// Runs `aicoin bench rpc ARGS` to the end and returns what it printed; the run fails on any
/// error answer.
fn bench_rpc(home: &std::path::Path, args: &[&str]) -> String {
    let output = aicoin(home, &[&["bench", "rpc"], args].concat())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "bench rpc {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn thirty_two_clients_of_mixed_reads_get_no_errors() {
    let tmp = tempdir();
    let node = NodeProcess::dev(&data_dir(&tmp), &[]).await;
    let stdout = bench_rpc(
        tmp.path(),
        &[
            "--rpc-url",
            &node.url,
            "--requests",
            "8000",
            "--clients",
            "32",
            "--rounds",
            "1",
        ],
    );
    assert!(
        stdout.contains("aicoin round 1") && stdout.contains("errors 0"),
        "{stdout}"
    );
}

/// The pipelined WebSocket workloads against two nodes side by side, as against anvil: every
/// balance read answered, every transfer accepted and mined (the run fails on any error answer
/// and waits for each sender's nonce), and a ratio printed.
#[tokio::test]
async fn pipelined_balance_reads_and_transfers_against_a_node_and_a_peer_all_succeed() {
    let tmp = tempdir();
    let node = NodeProcess::dev(&tmp.path().join("a"), &[]).await;
    let peer = NodeProcess::dev(&tmp.path().join("b"), &[]).await;
    for (workload, requests) in [("balance", "5000"), ("submit", "600")] {
        let stdout = bench_rpc(
            tmp.path(),
            &[
                "--workload",
                workload,
                "--rpc-url",
                &node.url,
                "--peer-url",
                &peer.url,
                "--requests",
                requests,
                "--senders",
                "50",
                "--rounds",
                "1",
            ],
        );
        for line in ["aicoin round 1", "peer   round 1", "aicoin/peer"] {
            assert!(stdout.contains(line), "{workload}: no {line:?} in {stdout}");
        }
    }
}
