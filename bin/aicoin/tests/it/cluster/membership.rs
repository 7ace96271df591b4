//! Changing who validates at runtime: a fourth authority of the chain spec joins a running
//! three-validator cluster with `aicoin cluster add` (asked of a follower, which forwards it to
//! the leader), catches up and votes; `aicoin cluster remove` takes it out again, the cluster
//! goes on without it, and its key is refused by the transport. Web pages cannot drive the
//! admin API.

use super::{
    agreed_leader, assert_same_chain, cluster_command, eventually, one_cluster_at_a_time, prepare,
    reach, start, status,
};
use aicoin_node::aicoin_cluster::auth::Authenticator;

use crate::common::tempdir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_joins_and_leaves_a_running_cluster() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    // Four authorities in the chain spec; the first three form the cluster.
    let (_, slots) = prepare(home, 4, 3);
    let mut nodes = Vec::new();
    for slot in &slots[..3] {
        nodes.push(start(home, slot).await);
    }
    assert_eq!(agreed_leader(&slots, &[0, 1, 2]).await, 0);
    // The fourth runs, but belongs to no cluster until it is added.
    nodes.push(start(home, &slots[3]).await);
    let joined = &slots[3];
    assert!(status(joined).await.is_none_or(|s| s.leader.is_none()));

    // A web page cannot drive the admin API: not by DNS rebinding (its own name as the Host),
    // not cross-origin (an Origin header).
    let http = reqwest::Client::new();
    let add = format!("{}/cluster/add", slots[1].admin_url());
    let body = serde_json::json!({ "sync_url": joined.sync_url() });
    let rebound = http
        .post(&add)
        .header("host", "rebound.example:9651")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 403);
    let page = http
        .post(&add)
        .header("origin", "https://page.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 403);
    assert_eq!(status(&slots[0]).await.unwrap().members.len(), 3);

    let (ok, text) = cluster_command(home, &slots[1], &["add", &joined.sync_url()]);
    assert!(ok, "{text}");
    assert!(text.contains("node-4"), "{text}");
    let voter = eventually("node-4 votes", || async {
        let status = status(&slots[0]).await?;
        let member = status
            .members
            .iter()
            .find(|m| m.address == joined.address)?;
        member.voter.then_some(status.members.len())
    })
    .await;
    assert_eq!(voter, 4);
    // It follows the leader like any member: same blocks, and it knows who leads.
    let target = nodes[0].block_number().await;
    reach(&nodes[3], target).await;
    assert_eq!(agreed_leader(&slots, &[0, 1, 2, 3]).await, 0);
    assert_same_chain(&nodes.iter().collect::<Vec<_>>()).await;

    // Removing an address that is not a member is refused with a reason.
    let stranger = alloy_primitives::Address::repeat_byte(0x42).to_string();
    let (ok, text) = cluster_command(home, &slots[2], &["remove", &stranger]);
    assert!(!ok, "{text}");
    assert!(text.contains("not a member"), "{text}");

    let address = joined.address.to_string();
    let (ok, text) = cluster_command(home, &slots[2], &["remove", &address]);
    assert!(ok, "{text}");
    assert!(!text.contains("node-4"), "{text}");
    // The three go on producing under the same leader.
    let head = nodes[0].block_number().await;
    reach(&nodes[2], head + 3).await;
    assert_eq!(agreed_leader(&slots, &[0, 1, 2]).await, 0);
    let members = status(&slots[0]).await.unwrap().members;
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.address != joined.address));

    // Its key is still a chain authority, but the cluster no longer trusts it.
    let genesis: alloy_primitives::B256 = nodes[0].banner_value("Genesis").parse().unwrap();
    let validators: Vec<_> = slots.iter().map(|s| s.address).collect();
    let removed = Authenticator::new(joined.key(), genesis, validators);
    let refused = eventually("node-4 is refused", || async {
        let (_, headers) = removed.sign_request(slots[0].address, "vote", b"{}").ok()?;
        let mut request = reqwest::Client::new()
            .post(format!("{}/raft/vote", slots[0].sync_url()))
            .body("{}");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.ok()?;
        (status == 401).then_some(text)
    })
    .await;
    assert!(refused.contains("not a member"), "{refused}");
}
