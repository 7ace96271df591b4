//! A network partition between validators: HTTP proxies in front of every node's sync port drop
//! every raft message to or from the leader, cutting it off from the other two (JSON-RPC and the
//! public block reads are not cut). The cut-off minority commits nothing, so it shows no new
//! block, and acknowledges no transaction (no other validator can confirm holding it); the
//! majority elects a leader and goes on; once healed, all three converge on one chain and the
//! transaction the cut-off node pooled during the partition is mined.

use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, B256, U256};
use axum::{
    extract::{Request, State},
    response::Response,
};

use super::{
    agreed_leader, assert_all_receipted, assert_same_chain, one_cluster_at_a_time, pass_through,
    prepare, reach, serve, start, transfers,
};
use crate::common::{NodeProcess, dev_key, tempdir, transfer};

/// Who is cut off from whom: every proxy consults it on each request.
#[derive(Clone, Default)]
struct Partition {
    isolated: Arc<Mutex<Option<Address>>>,
}

/// One proxy: the validator behind it and where its sync port is.
#[derive(Clone)]
struct Proxy {
    partition: Partition,
    to: Address,
    upstream: String,
    http: reqwest::Client,
}

impl Partition {
    fn isolate(&self, address: Address) {
        *self.isolated.lock().unwrap() = Some(address);
    }

    fn heal(&self) {
        *self.isolated.lock().unwrap() = None;
    }

    /// Whether a request from `from` (a validator's signed `x-aicoin-from`; none for public
    /// reads) to `to` crosses the cut.
    fn blocks(&self, from: Option<Address>, to: Address) -> bool {
        let isolated = *self.isolated.lock().unwrap();
        isolated.is_some_and(|cut| cut == to || Some(cut) == from)
    }

    /// Starts a proxy in front of validator `to`'s sync port; returns its URL.
    async fn proxy(&self, to: Address, sync_port: u16) -> String {
        let proxy = Proxy {
            partition: self.clone(),
            to,
            upstream: format!("http://127.0.0.1:{sync_port}"),
            http: reqwest::Client::new(),
        };
        serve(axum::Router::new().fallback(forward).with_state(proxy)).await
    }
}

/// Passes a request on to the validator, or, across the cut, never answers (as a dropped
/// network does: the sender's own timeout ends the wait).
async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let from = request
        .headers()
        .get("x-aicoin-from")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if proxy.partition.blocks(from, proxy.to) {
        std::future::pending::<()>().await;
    }
    pass_through(&proxy.http, &proxy.upstream, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_commits_nothing_and_rejoins_without_a_fork() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    let (_, mut slots) = prepare(home, 3, 3);
    // Every node reaches every other only through that one's proxy.
    let partition = Partition::default();
    for slot in &mut slots {
        let url = partition.proxy(slot.address, slot.sync_port).await;
        slot.args.extend(["--advertise-sync-url".into(), url]);
    }
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for slot in &slots {
        nodes.push(start(home, slot).await);
    }
    assert_eq!(agreed_leader(&slots, &[0, 1, 2]).await, 0);
    let mut receipted = transfers(&nodes[1], 1, 3).await;

    // Cut the leader off. The majority elects node-2 (the next priority) and goes on producing;
    // by then the cut-off node has applied whatever was committed before the cut.
    partition.isolate(slots[0].address);
    assert_eq!(agreed_leader(&slots, &[1, 2]).await, 1);
    let cut_at = nodes[1].block_number().await;
    reach(&nodes[1], cut_at + 3).await;
    let frozen = nodes[0].block_number().await;
    // A transfer sent to the cut-off node is pooled there, but not acknowledged: no other
    // validator can confirm holding it, so the client is told to resend it.
    let raw = transfer(
        &dev_key(0),
        nodes[0].nonce(dev_key(0).address()).await,
        Address::repeat_byte(0x79),
        U256::from(1),
    );
    let refused = nodes[0]
        .send_raw(&raw)
        .await
        .expect_err("acknowledged by a cut-off node");
    assert_eq!(refused.code(), -32000);
    assert!(
        refused
            .message()
            .contains("not yet held where a crash of this node cannot lose it"),
        "{refused:?}"
    );
    let stranded: Vec<B256> = vec![alloy_primitives::keccak256(&raw)];
    receipted.extend(transfers(&nodes[2], 1, 3).await);
    let majority_head = nodes[1].block_number().await;
    reach(&nodes[2], majority_head + 2).await;
    assert_eq!(
        nodes[0].block_number().await,
        frozen,
        "the cut-off minority produced a block"
    );
    let receipt: serde_json::Value = nodes[0]
        .ok(
            "eth_getTransactionReceipt",
            vec![stranded[0].to_string().into()],
        )
        .await;
    assert!(receipt.is_null(), "mined on the minority: {receipt}");
    assert_same_chain(&[&nodes[0], &nodes[1], &nodes[2]]).await;

    // Heal: the old leader learns of the newer term, follows, and catches up; the transfer it
    // pooled is offered to the new leader and mined.
    partition.heal();
    let target = nodes[1].block_number().await;
    reach(&nodes[0], target).await;
    agreed_leader(&slots, &[0, 1, 2]).await;
    nodes[1].receipt(stranded[0]).await;
    receipted.extend(stranded);
    for node in &nodes {
        assert_all_receipted(node, &receipted).await;
    }
    assert_same_chain(&[&nodes[0], &nodes[1], &nodes[2]]).await;
}
