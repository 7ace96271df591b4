//! A replicated cluster of three `aicoin node` validator processes (keys and chain spec from
//! `aicoin devnet --prepare`): transfers stream in through followers while the leader is killed
//! with SIGKILL; every receipted transaction survives, no two nodes ever disagree on a block,
//! the priority rule picks the next leader, killed nodes rejoin and catch up; forged, replayed
//! and foreign node-to-node messages are refused; a full node syncs and forwards.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aicoin_node::aicoin_cluster::{ClusterStatus, auth::Authenticator};
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use serde_json::Value;

use crate::common::{DEADLINE, NodeProcess, aicoin, dev_key, tempdir, transfer};

const VALIDATORS: usize = 3;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One validator's fixed identity and ports, so it restarts as itself.
struct Slot {
    data_dir: PathBuf,
    address: Address,
    sync_port: u16,
    admin_port: u16,
    args: Vec<String>,
}

impl Slot {
    fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    fn sync_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sync_port)
    }
}

fn prepare(home: &Path) -> (PathBuf, Vec<Slot>) {
    let dir = home.join("devnet");
    let out = aicoin(
        home,
        &[
            "devnet",
            "--validators",
            "3",
            "--dir",
            dir.to_str().unwrap(),
            "--prepare",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prepared: Value = serde_json::from_slice(&out.stdout).unwrap();
    let spec = PathBuf::from(prepared["chain_spec"].as_str().unwrap());
    let ports: Vec<(u16, u16)> = (0..VALIDATORS)
        .map(|_| (free_port(), free_port()))
        .collect();
    let slots = (0..VALIDATORS)
        .map(|i| {
            let data_dir = dir.join(format!("node-{}", i + 1));
            let key: PrivateKeySigner = std::fs::read_to_string(data_dir.join("validator.key"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let peers: Vec<Value> = (0..VALIDATORS)
                .filter(|j| *j != i)
                .map(|j| {
                    serde_json::json!({"node_id": format!("node-{}", j + 1), "host": "127.0.0.1",
                        "sync_port": ports[j].0, "rpc_port": 0, "role": "validator",
                        "priority": j + 1})
                })
                .collect();
            let args = [
                "node",
                "--chain",
                spec.to_str().unwrap(),
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--rpc-port",
                "0",
                "--no-api",
                "--block-interval",
                "0.5",
                "--role",
                "validator",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([
                "--sync-port".into(),
                ports[i].0.to_string(),
                "--admin-port".into(),
                ports[i].1.to_string(),
                "--node-id".into(),
                format!("node-{}", i + 1),
                "--priority".into(),
                (i + 1).to_string(),
                "--peers".into(),
                serde_json::to_string(&peers).unwrap(),
            ])
            .collect();
            Slot {
                data_dir,
                address: key.address(),
                sync_port: ports[i].0,
                admin_port: ports[i].1,
                args,
            }
        })
        .collect();
    (spec, slots)
}

async fn start(home: &Path, slot: &Slot) -> NodeProcess {
    let args: Vec<&str> = slot.args.iter().map(String::as_str).collect();
    NodeProcess::start(aicoin(home, &args)).await
}

async fn status(slot: &Slot) -> Option<ClusterStatus> {
    let response = reqwest::get(format!("{}/cluster/status", slot.admin_url()))
        .await
        .ok()?;
    response.json().await.ok()
}

/// Polls until `check` gives a value, failing the test at the deadline.
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader every reachable validator agrees on.
async fn agreed_leader(slots: &[Slot], alive: &[bool]) -> usize {
    eventually("one agreed leader", || async {
        let mut leader = None;
        for (slot, _) in slots.iter().zip(alive).filter(|(_, a)| **a) {
            let seen = status(slot).await?.leader?;
            if leader.is_some_and(|l| l != seen) {
                return None;
            }
            leader = Some(seen);
        }
        slots.iter().position(|s| Some(s.address) == leader)
    })
    .await
}

async fn block_hash(node: &NodeProcess, number: u64) -> Option<B256> {
    let block: Value = node
        .ok(
            "eth_getBlockByNumber",
            vec![format!("{number:#x}").into(), false.into()],
        )
        .await;
    block["hash"].as_str().map(|h| h.parse().unwrap())
}

/// Every height both nodes have holds the same block on both.
async fn assert_same_chain(nodes: &[&NodeProcess]) {
    let mut heads = Vec::new();
    for node in nodes {
        heads.push(node.block_number().await);
    }
    let common = *heads.iter().min().unwrap();
    for number in 1..=common {
        let first = block_hash(nodes[0], number).await;
        for node in &nodes[1..] {
            assert_eq!(
                block_hash(node, number).await,
                first,
                "nodes differ at block {number}"
            );
        }
    }
}

/// Sends `count` transfers from dev account `from` through `node`, returning their hashes once
/// each has a receipt.
async fn transfers(node: &NodeProcess, from: usize, count: usize) -> Vec<B256> {
    let key = dev_key(from);
    let nonce = node.nonce(key.address()).await;
    let mut hashes = Vec::new();
    for i in 0..count as u64 {
        let raw = transfer(&key, nonce + i, Address::repeat_byte(0x77), U256::from(1));
        hashes.push(node.send_raw(&raw).await.expect("transfer accepted"));
    }
    for hash in &hashes {
        node.receipt(*hash).await;
    }
    hashes
}

/// Kills the leader while transfers it has not yet receipted are in flight; returns the seconds
/// until the next block appears on a survivor.
async fn kill_leader(
    slots: &[Slot],
    nodes: &mut [Option<NodeProcess>],
    receipted: &mut Vec<B256>,
) -> (usize, f64) {
    let alive: Vec<bool> = nodes.iter().map(Option::is_some).collect();
    let leader = agreed_leader(slots, &alive).await;
    let follower = (0..VALIDATORS)
        .find(|i| *i != leader && nodes[*i].is_some())
        .unwrap();
    // Transfers through a follower (forwarded to the leader), receipted before the kill.
    receipted.extend(transfers(nodes[follower].as_ref().unwrap(), 1, 5).await);
    // And some in flight at the moment of the kill.
    let key = dev_key(2);
    let via = nodes[follower].as_ref().unwrap();
    let nonce = via.nonce(key.address()).await;
    let mut in_flight = Vec::new();
    for i in 0..3 {
        let raw = transfer(&key, nonce + i, Address::repeat_byte(0x78), U256::from(1));
        in_flight.push(via.send_raw(&raw).await.unwrap());
    }
    let head = via.block_number().await;
    nodes[leader].take().unwrap().kill9();
    let killed_at = Instant::now();
    let survivor = nodes[follower].as_ref().unwrap();
    survivor
        .wait_until(|| async { survivor.block_number().await > head + 1 })
        .await;
    let gap = killed_at.elapsed().as_secs_f64();
    // Acknowledged by a follower, so forwarded again to the new leader: mined after all.
    for hash in in_flight {
        survivor.receipt(hash).await;
        receipted.push(hash);
    }
    (leader, gap)
}

async fn assert_all_receipted(node: &NodeProcess, hashes: &[B256]) {
    for hash in hashes {
        let receipt: Value = node
            .ok("eth_getTransactionReceipt", vec![hash.to_string().into()])
            .await;
        assert_eq!(
            receipt["status"], "0x1",
            "transaction {hash} lost: {receipt}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_leader_kills_without_losing_or_forking() {
    let tmp = tempdir();
    let home = tmp.path();
    let (spec, slots) = prepare(home);
    let mut nodes: Vec<Option<NodeProcess>> = Vec::new();
    for slot in &slots {
        nodes.push(Some(start(home, slot).await));
    }
    // The priority-1 validator creates the cluster and leads it.
    let all = [true; VALIDATORS];
    assert_eq!(agreed_leader(&slots, &all).await, 0);
    let mut receipted = Vec::new();
    let mut gaps = Vec::new();

    // Kill the leader (node-1): node-2 has the next priority and takes over.
    let (killed, gap) = kill_leader(&slots, &mut nodes, &mut receipted).await;
    gaps.push(gap);
    assert_eq!(killed, 0);
    let alive = [false, true, true];
    assert_eq!(
        agreed_leader(&slots, &alive).await,
        1,
        "priority 2 should lead"
    );
    let survivors: Vec<&NodeProcess> = nodes.iter().flatten().collect();
    assert_same_chain(&survivors).await;
    for node in &survivors {
        assert_all_receipted(node, &receipted).await;
    }

    // node-1 restarts, catches up, and follows: leadership does not move while node-2 lives.
    nodes[0] = Some(start(home, &slots[0]).await);
    let target = nodes[1].as_ref().unwrap().block_number().await;
    let restarted = nodes[0].as_ref().unwrap();
    restarted
        .wait_until(|| async { restarted.block_number().await >= target })
        .await;
    assert_eq!(agreed_leader(&slots, &all).await, 1);
    assert_all_receipted(restarted, &receipted).await;

    // Kill node-2: node-1, the highest priority again alive, wins the election.
    let (killed, gap) = kill_leader(&slots, &mut nodes, &mut receipted).await;
    gaps.push(gap);
    assert_eq!(killed, 1);
    assert_eq!(agreed_leader(&slots, &[true, false, true]).await, 0);
    nodes[1] = Some(start(home, &slots[1]).await);
    let target = nodes[0].as_ref().unwrap().block_number().await;
    let back = nodes[1].as_ref().unwrap();
    back.wait_until(|| async { back.block_number().await >= target })
        .await;
    let everyone: Vec<&NodeProcess> = nodes.iter().flatten().collect();
    assert_same_chain(&everyone).await;
    for node in &everyone {
        assert_all_receipted(node, &receipted).await;
    }
    eprintln!("new block after killing the leader: {gaps:?} s");

    // `aicoin cluster status` shows the leader and every member with its lag.
    let out = aicoin(
        home,
        &["cluster", "status", "--admin-url", &slots[2].admin_url()],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("leader:            {}", slots[0].address)),
        "{text}"
    );
    for name in ["node-1", "node-2", "node-3"] {
        assert!(text.contains(name), "{text}");
    }

    node_to_node_messages_are_authenticated(&slots, &nodes).await;
    a_full_node_syncs_and_forwards(home, &spec, &slots, &nodes).await;
}

/// Forged, replayed and foreign messages get 401 and change nothing.
async fn node_to_node_messages_are_authenticated(slots: &[Slot], nodes: &[Option<NodeProcess>]) {
    let node = nodes[0].as_ref().unwrap();
    let genesis: B256 = node.banner_value("Genesis").parse().unwrap();
    let validators: Vec<Address> = slots.iter().map(|s| s.address).collect();
    let http = reqwest::Client::new();
    let url = format!("{}/raft/vote", slots[0].sync_url());
    let post = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let mut request = http.post(&url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    // A validator's real key (node-3's): accepted once, refused when replayed.
    let key3: PrivateKeySigner = std::fs::read_to_string(slots[2].data_dir.join("validator.key"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let node3 = Authenticator::new(key3, genesis, validators.clone());
    let (_, headers) = node3.sign_request(slots[0].address, "vote", b"{}").unwrap();
    let first = post(headers.clone(), "{}").await.unwrap();
    assert_ne!(
        first.status().as_u16(),
        401,
        "a validly signed message was refused"
    );
    let replayed = post(headers.clone(), "{}").await.unwrap();
    assert_eq!(replayed.status().as_u16(), 401);
    assert!(replayed.text().await.unwrap().contains("replayed"));
    // The same headers over another body: the signature no longer matches.
    let (_, headers) = node3.sign_request(slots[0].address, "vote", b"{}").unwrap();
    let forged = post(headers, "{\"vote\":1}").await.unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert!(forged.text().await.unwrap().contains("bad signature"));
    // A key the chain spec does not name.
    let stranger = Authenticator::new(PrivateKeySigner::random(), genesis, validators);
    let (_, headers) = stranger
        .sign_request(slots[0].address, "vote", b"{}")
        .unwrap();
    let foreign = post(headers, "{}").await.unwrap();
    assert_eq!(foreign.status().as_u16(), 401);
    assert!(foreign.text().await.unwrap().contains("not a validator"));
    // No headers at all.
    let bare = post(Vec::new(), "{}").await.unwrap();
    assert_eq!(bare.status().as_u16(), 401);
}

/// A full node follows the validators by height and forwards what it is sent.
async fn a_full_node_syncs_and_forwards(
    home: &Path,
    spec: &Path,
    slots: &[Slot],
    nodes: &[Option<NodeProcess>],
) {
    let dir = home.join("full");
    let bootnodes = format!("{},{}", slots[1].sync_url(), slots[2].sync_url());
    let full = NodeProcess::start(aicoin(
        home,
        &[
            "node",
            "--role",
            "full",
            "--chain",
            spec.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
            "--rpc-port",
            "0",
            "--no-api",
            "--bootnodes",
            &bootnodes,
        ],
    ))
    .await;
    let validator = nodes[2].as_ref().unwrap();
    let target = validator.block_number().await;
    full.wait_until(|| async { full.block_number().await >= target })
        .await;
    assert_same_chain(&[&full, validator]).await;
    let hashes = transfers(&full, 0, 2).await;
    assert_all_receipted(validator, &hashes).await;
}
