//! No acknowledged transaction is lost to one crash: senders stream transfers round-robin to all
//! three validators while the leader is killed with SIGKILL ten times (and restarted each time).
//! Every transaction any validator answered with a hash is mined.
//!
//! Before the validators shared what they admit, 12 of 33 acknowledged transactions were lost
//! across 6 such kills: the leader answered with a hash for what only its own pool held.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};

use super::{
    agreed_leader, assert_all_receipted, assert_same_chain, free_port, one_cluster_at_a_time,
    prepare, reach, start,
};
use crate::common::{NodeProcess, dev_key, tempdir, transfer};

const KILLS: usize = 10;
const SENDERS: usize = 3;

/// What the senders saw.
#[derive(Default)]
struct Sent {
    acknowledged: Mutex<Vec<B256>>,
    /// Answers that were not a hash: refused connections to the dead leader, or a node saying
    /// no other validator confirmed it.
    unacknowledged: AtomicUsize,
}

/// Sends transfers from `key`, one every 50 ms, each to the next of `urls` in turn; an
/// unacknowledged one is tried again (same nonce) at the next node.
async fn stream_transfers(
    key: PrivateKeySigner,
    urls: Vec<String>,
    sent: Arc<Sent>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let to = Address::repeat_byte(0x5e);
    let (mut nonce, mut turn) = (0u64, 0usize);
    while !stop.load(Ordering::SeqCst) {
        let url = &urls[turn % urls.len()];
        turn += 1;
        let raw = transfer(&key, nonce, to, U256::from(1));
        let request =
            json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]});
        let answer: Option<Value> = match http.post(url).json(&request).send().await {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        match answer.as_ref().and_then(|a| a["result"].as_str()) {
            Some(hash) => {
                sent.acknowledged
                    .lock()
                    .unwrap()
                    .push(hash.parse().unwrap());
                nonce += 1;
            }
            None => {
                sent.unacknowledged.fetch_add(1, Ordering::SeqCst);
                // An earlier, unacknowledged try was mined after all: the nonce moved on.
                let message = answer.as_ref().and_then(|a| a["error"]["message"].as_str());
                if message.is_some_and(|m| m.contains("nonce too low")) {
                    nonce += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_leader_kills_lose_no_acknowledged_transaction() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    let (_, mut slots) = prepare(home, 3, 3);
    // Fixed RPC ports, so a restarted validator is where the senders look for it; no rate
    // limit, as the check at the end reads thousands of receipts at once.
    let mut urls = Vec::new();
    for slot in &mut slots {
        let port = free_port();
        let at = slot.args.iter().position(|a| a == "--rpc-port").unwrap();
        slot.args[at + 1] = port.to_string();
        slot.args.extend(["--rpc-rate-limit".into(), "0".into()]);
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    let mut nodes: Vec<Option<NodeProcess>> = Vec::new();
    for slot in &slots {
        nodes.push(Some(start(home, slot).await));
    }
    agreed_leader(&slots, &[0, 1, 2]).await;

    let sent = Arc::new(Sent::default());
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            // Each sender starts at another node.
            let mut mine = urls.clone();
            mine.rotate_left(i);
            tokio::spawn(stream_transfers(
                dev_key(3 + i),
                mine,
                sent.clone(),
                stop.clone(),
            ))
        })
        .collect();

    for kill in 0..KILLS {
        let leader = agreed_leader(&slots, &[0, 1, 2]).await;
        let survivor = (leader + 1) % 3;
        let head = nodes[survivor].as_ref().unwrap().block_number().await;
        nodes[leader].take().unwrap().kill9();
        // A new leader produces...
        reach(nodes[survivor].as_ref().unwrap(), head + 2).await;
        // ...and the killed validator comes back and catches up before the next kill.
        nodes[leader] = Some(start(home, &slots[leader]).await);
        let target = nodes[survivor].as_ref().unwrap().block_number().await;
        reach(nodes[leader].as_ref().unwrap(), target).await;
        eprintln!(
            "kill {}: leader {} killed; {} acknowledged so far",
            kill + 1,
            slots[leader].address,
            sent.acknowledged.lock().unwrap().len()
        );
    }
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }

    let acknowledged = sent.acknowledged.lock().unwrap().clone();
    eprintln!(
        "{} transactions acknowledged across {KILLS} leader kills ({} answers were not a hash)",
        acknowledged.len(),
        sent.unacknowledged.load(Ordering::SeqCst)
    );
    assert!(acknowledged.len() > 100, "too few sent to mean anything");
    let nodes: Vec<&NodeProcess> = nodes.iter().flatten().collect();
    for hash in &acknowledged {
        nodes[0].receipt(*hash).await;
    }
    let head = nodes[0].block_number().await;
    for node in &nodes {
        reach(node, head).await;
        assert_all_receipted(node, &acknowledged).await;
    }
    assert_same_chain(&nodes).await;
}
