//! The pool under a free-transaction flood: sending costs nothing here, so 64 unfunded keys keep
//! the pool full, refilling it as each block drains it. An honest, funded sender's transfers are
//! still accepted (the pool evicts an unfunded sender's transaction to make room) and mined.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use aicoin_txpool::PoolConfig;
use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};

use crate::common::*;

const POOL: usize = 256;
const PER_SENDER: usize = 16;
const ATTACKERS: usize = 64;

/// Keeps every attacker key's share of the pool topped up: each round, each key sends its next
/// `PER_SENDER` nonces in one batch. Counts the transactions the pool took.
async fn flood(url: String, stop: Arc<AtomicBool>, accepted: Arc<AtomicUsize>) {
    let rpc = Rpc::ready(url).await;
    let http = reqwest::Client::new();
    let keys: Vec<PrivateKeySigner> = (0..ATTACKERS).map(|_| PrivateKeySigner::random()).collect();
    while !stop.load(Ordering::SeqCst) {
        for key in &keys {
            // From the last block, not the pool: what blocks drained is sent again at once.
            let count: Value = rpc
                .ok(
                    "eth_getTransactionCount",
                    vec![key.address().to_string().into(), "latest".into()],
                )
                .await;
            let nonce = quantity(&count);
            let batch: Vec<Value> = (0..PER_SENDER as u64)
                .map(|i| {
                    let raw = transfer(key, nonce + i, key.address(), U256::ZERO);
                    json!({"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]})
                })
                .collect();
            let answers: Value = http
                .post(&rpc.url)
                .json(&batch)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let taken = answers
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["result"].is_string())
                .count();
            accepted.fetch_add(taken, Ordering::SeqCst);
        }
    }
}

async fn pooled(node: &Rpc) -> usize {
    let status: Value = node.ok("txpool_status", vec![]).await;
    (quantity(&status["pending"]) + quantity(&status["queued"])) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_transfer_is_mined_while_unfunded_keys_refill_the_pool_every_block() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| {
        c.pool = PoolConfig {
            max_txs: POOL,
            max_per_sender: PER_SENDER,
            ..PoolConfig::default()
        };
        // Twenty transfers a block: the flood outpaces what blocks drain.
        c.gas_limit = 20 * 21_000;
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let attack = tokio::spawn(flood(node.url.clone(), stop.clone(), accepted.clone()));
    node.wait_until(|| async { pooled(&node).await >= POOL })
        .await;

    let honest = dev_key(1);
    let to = Address::repeat_byte(0x44);
    let before = node.balance(to, "latest").await;
    let flooded_before = accepted.load(Ordering::SeqCst);
    for nonce in 0..5 {
        let hash = node
            .send_raw(&transfer(&honest, nonce, to, U256::from(1_000_000_007u64)))
            .await
            .expect("an honest transfer refused while the pool is full of free spam");
        let receipt = node.receipt(hash).await;
        assert_eq!(receipt["status"], "0x1");
    }
    assert_eq!(
        node.balance(to, "latest").await - before,
        U256::from(5 * 1_000_000_007u64)
    );
    // The attack went on all along: the pool kept taking its transactions as blocks drained it.
    assert!(
        accepted.load(Ordering::SeqCst) > flooded_before,
        "the flood stopped"
    );
    stop.store(true, Ordering::SeqCst);
    attack.await.unwrap();
}
