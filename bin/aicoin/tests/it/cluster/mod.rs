//! Replicated validator clusters of real `aicoin node` processes (keys and chain spec from
//! `aicoin devnet --prepare`): failover under load, a cut-off minority, and membership changes.
//! This module holds what those tests share: starting validators as themselves, and checks on
//! leaders, chains and receipts.

mod acknowledged;
mod deployment;
mod failover;
mod forwarding;
mod membership;
mod partition;
mod standalone;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aicoin_node::aicoin_cluster::ClusterStatus;
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use serde_json::Value;

use crate::common::{DEADLINE, NodeProcess, aicoin, dev_key, transfer};

/// Held by each cluster test for its whole run: three validators with sub-second raft timers
/// share two cores with the rest of the suite, and two clusters at once would starve each other
/// into elections nobody asked for.
pub(crate) async fn one_cluster_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    CLUSTER.lock().await
}

/// A port for a validator to bind later. It comes from below the kernel's ephemeral range
/// (32768 and up by default), where binds to port 0 (other tests' nodes, the proxies) never
/// land, and each is handed out once per test process; it was free when handed out. Ports taken
/// from port 0 and released could be given to another socket before the node binds them.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port below the ephemeral range");
        let port = (FIRST + (offset + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One validator's fixed identity and ports, so it restarts as itself.
pub(crate) struct Slot {
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

    fn key(&self) -> PrivateKeySigner {
        validator_key(&self.data_dir)
    }
}

/// The key `aicoin devnet --prepare` wrote for the validator in `data_dir`.
pub(crate) fn validator_key(data_dir: &Path) -> PrivateKeySigner {
    std::fs::read_to_string(data_dir.join("validator.key"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Validator `i`'s place among the first `members` of a cluster on 127.0.0.1 whose sync ports
/// are `sync_ports` and RPC ports `rpc_ports` (0 where unknown): its sync port, node id,
/// priority `i + 1`, and the other members as `--peers`.
pub(crate) fn member_args(
    i: usize,
    sync_ports: &[u16],
    rpc_ports: &[u16],
    members: usize,
) -> Vec<String> {
    let peers: Vec<Value> = (0..members)
        .filter(|j| *j != i)
        .map(|j| {
            serde_json::json!({"node_id": format!("node-{}", j + 1), "host": "127.0.0.1",
                "sync_port": sync_ports[j], "rpc_port": rpc_ports[j], "role": "validator",
                "priority": j + 1})
        })
        .collect();
    vec![
        "--sync-port".into(),
        sync_ports[i].to_string(),
        "--node-id".into(),
        format!("node-{}", i + 1),
        "--priority".into(),
        (i + 1).to_string(),
        "--peers".into(),
        serde_json::to_string(&peers).unwrap(),
    ]
}

/// A devnet of `validators` authorities (`aicoin devnet --prepare`), of which the first `members`
/// form the initial cluster (each lists the others as `--peers`); validator `i` has priority
/// `i + 1`. Returns the chain spec and every validator's slot.
fn prepare(home: &Path, validators: usize, members: usize) -> (PathBuf, Vec<Slot>) {
    let dir = home.join("devnet");
    let out = aicoin(
        home,
        &[
            "devnet",
            "--validators",
            &validators.to_string(),
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
    let ports: Vec<(u16, u16)> = (0..validators)
        .map(|_| (free_port(), free_port()))
        .collect();
    let sync_ports: Vec<u16> = ports.iter().map(|p| p.0).collect();
    let slots = (0..validators)
        .map(|i| {
            let data_dir = dir.join(format!("node-{}", i + 1));
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
            .chain(["--admin-port".into(), ports[i].1.to_string()])
            .chain(member_args(i, &sync_ports, &vec![0; validators], members))
            .collect();
            Slot {
                address: validator_key(&data_dir).address(),
                data_dir,
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

/// A full node (in `home/full`) of the chain `spec`, following `bootnodes` (comma-separated sync
/// URLs).
async fn start_full_node(home: &Path, spec: &Path, bootnodes: &str) -> NodeProcess {
    let dir = home.join("full");
    let args = [
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
        bootnodes,
    ];
    NodeProcess::start(aicoin(home, &args)).await
}

/// What `aicoin cluster status` prints, as JSON.
async fn status(slot: &Slot) -> Option<ClusterStatus> {
    let response = reqwest::Client::new()
        .get(format!("{}/cluster/status", slot.admin_url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// Runs `aicoin cluster <args> --admin-url <slot's>`: (success, stdout + stderr).
fn cluster_command(home: &Path, slot: &Slot, args: &[&str]) -> (bool, String) {
    let admin_url = slot.admin_url();
    let mut full = vec!["cluster"];
    full.extend(args);
    full.extend(["--admin-url", &admin_url]);
    let out = aicoin(home, &full).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Polls until `check` gives a value, failing the test at the deadline.
pub(crate) async fn eventually<T, F, Fut>(what: &str, check: F) -> T
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

/// The leader every validator in `asked` agrees on (its index in `slots`).
pub(crate) async fn agreed_leader(slots: &[Slot], asked: &[usize]) -> usize {
    eventually("one agreed leader", || async {
        let mut leader = None;
        for i in asked {
            let seen = status(&slots[*i]).await?.leader?;
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

/// Every height all nodes have holds the same block on each.
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

/// Waits until `node` has at least `target` blocks.
async fn reach(node: &NodeProcess, target: u64) {
    node.wait_until(|| async { node.block_number().await >= target })
        .await;
}

/// Sends `count` transfers from dev account `from` through `node`, returning their hashes once
/// each has a receipt.
async fn transfers(node: &NodeProcess, from: usize, count: usize) -> Vec<B256> {
    let hashes = send_transfers(node, from, count, Address::repeat_byte(0x77)).await;
    for hash in &hashes {
        node.receipt(*hash).await;
    }
    hashes
}

/// Sends `count` transfers from dev account `from` to `to` through `node` without waiting for
/// receipts.
async fn send_transfers(node: &NodeProcess, from: usize, count: usize, to: Address) -> Vec<B256> {
    let key = dev_key(from);
    let nonce = node.nonce(key.address()).await;
    let mut hashes = Vec::new();
    for i in 0..count as u64 {
        let raw = transfer(&key, nonce + i, to, U256::from(1));
        hashes.push(node.send_raw(&raw).await.expect("transfer accepted"));
    }
    hashes
}

/// Every one of `hashes` has a successful receipt on `node`.
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

/// Sends `request` on to `upstream` and returns its answer, as an HTTP proxy does.
pub(crate) async fn pass_through(
    http: &reqwest::Client,
    upstream: &str,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::{
        body::{Body, to_bytes},
        http::{HeaderMap, StatusCode},
        response::IntoResponse,
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let url = format!("{upstream}{}", parts.uri);
    let mut headers = parts.headers;
    headers.remove("host");
    let sent = http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "connection" && name != "content-length" {
            headers.insert(name.clone(), value.clone());
        }
    }
    match answer.bytes().await {
        Ok(bytes) => (status, headers, Body::from(bytes)).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// Serves `app` on a free port of 127.0.0.1 (a test's proxy or fake peer); returns its URL.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
