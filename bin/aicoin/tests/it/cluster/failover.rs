//! Three validators: transfers stream in through followers while the leader is killed with
//! SIGKILL; every receipted transaction survives, no two nodes ever disagree on a block,
//! the priority rule picks the next leader, killed nodes rejoin and catch up; forged, replayed
//! and foreign node-to-node messages are refused; a full node syncs and forwards.

use std::{path::Path, time::Instant};

use aicoin_node::aicoin_cluster::auth::Authenticator;
use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    Slot, agreed_leader, assert_all_receipted, assert_same_chain, cluster_command,
    one_cluster_at_a_time, prepare, reach, send_transfers, start, start_full_node, transfers,
};
use crate::common::{DEADLINE, NodeProcess, tempdir};

const VALIDATORS: usize = 3;

/// The indices of the running validators.
fn running(nodes: &[Option<NodeProcess>]) -> Vec<usize> {
    (0..nodes.len()).filter(|i| nodes[*i].is_some()).collect()
}

/// Kills the leader while transfers it has not yet receipted are in flight; returns the seconds
/// until the next block appears on a survivor.
async fn kill_leader(
    slots: &[Slot],
    nodes: &mut [Option<NodeProcess>],
    receipted: &mut Vec<B256>,
) -> (usize, f64) {
    let leader = agreed_leader(slots, &running(nodes)).await;
    let follower = (0..VALIDATORS)
        .find(|i| *i != leader && nodes[*i].is_some())
        .unwrap();
    // Transfers through a follower (forwarded to the leader), receipted before the kill.
    receipted.extend(transfers(nodes[follower].as_ref().unwrap(), 1, 5).await);
    // And some in flight at the moment of the kill.
    let via = nodes[follower].as_ref().unwrap();
    let in_flight = send_transfers(via, 2, 3, Address::repeat_byte(0x78)).await;
    let head = via.block_number().await;
    nodes[leader].take().unwrap().kill9();
    let killed_at = Instant::now();
    let survivor = nodes[follower].as_ref().unwrap();
    reach(survivor, head + 2).await;
    let gap = killed_at.elapsed().as_secs_f64();
    // Acknowledged by a follower, so forwarded again to the new leader: mined after all.
    for hash in in_flight {
        survivor.receipt(hash).await;
        receipted.push(hash);
    }
    (leader, gap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_leader_kills_without_losing_or_forking() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    let (spec, slots) = prepare(home, VALIDATORS, VALIDATORS);
    let mut nodes: Vec<Option<NodeProcess>> = Vec::new();
    for slot in &slots {
        nodes.push(Some(start(home, slot).await));
    }
    // The priority-1 validator creates the cluster and leads it.
    let all = [0, 1, 2];
    assert_eq!(agreed_leader(&slots, &all).await, 0);
    let mut receipted = Vec::new();
    let mut gaps = Vec::new();

    // Kill the leader (node-1): node-2 has the next priority and takes over.
    let (killed, gap) = kill_leader(&slots, &mut nodes, &mut receipted).await;
    gaps.push(gap);
    assert_eq!(killed, 0);
    assert_eq!(
        agreed_leader(&slots, &[1, 2]).await,
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
    reach(restarted, target).await;
    assert_eq!(agreed_leader(&slots, &all).await, 1);
    assert_all_receipted(restarted, &receipted).await;

    // Kill node-2: node-1, the highest priority again alive, wins the election.
    let (killed, gap) = kill_leader(&slots, &mut nodes, &mut receipted).await;
    gaps.push(gap);
    assert_eq!(killed, 1);
    assert_eq!(agreed_leader(&slots, &[0, 2]).await, 0);
    nodes[1] = Some(start(home, &slots[1]).await);
    let target = nodes[0].as_ref().unwrap().block_number().await;
    let back = nodes[1].as_ref().unwrap();
    reach(back, target).await;
    let everyone: Vec<&NodeProcess> = nodes.iter().flatten().collect();
    assert_same_chain(&everyone).await;
    for node in &everyone {
        assert_all_receipted(node, &receipted).await;
    }
    eprintln!("new block after killing the leader: {gaps:?} s");

    // `aicoin cluster status` shows the leader and every member with its lag.
    let (ok, text) = cluster_command(home, &slots[2], &["status"]);
    assert!(ok, "{text}");
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

/// Forged, replayed and foreign messages get 401 and change nothing; a stranger's body is never
/// read, and a validator's is read only up to its endpoint's limit.
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
    let node3 = Authenticator::new(slots[2].key(), genesis, validators.clone());
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

    // An append signed by `sender` announcing a 200 MB body, of which only the headers (and
    // `body`) are sent.
    let announce_200_mb = |sender: &Authenticator, body: &'static [u8]| {
        let (_, headers) = sender
            .sign_request(slots[0].address, "append", b"{}")
            .unwrap();
        let mut head =
            "POST /raft/append HTTP/1.1\r\nHost: x\r\nContent-Length: 200000000\r\n".to_string();
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let addr = slots[0]
            .sync_url()
            .trim_start_matches("http://")
            .to_string();
        async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(head.as_bytes()).await.unwrap();
            tcp.write_all(body).await.unwrap();
            tcp
        }
    };
    // A stranger's is refused on its headers, none of the body read.
    let mut tcp = announce_200_mb(&stranger, b"").await;
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(DEADLINE, tcp.read(&mut answer))
        .await
        .expect("the server waited for a stranger's body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // Headers alone prove nothing (the signature covers the body), so large bodies are read
    // two at a time: of three uploads announcing 200 MB and stalling, one is turned away.
    let mut uploads = vec![
        announce_200_mb(&node3, &[b' '; 1024]).await,
        announce_200_mb(&node3, &[b' '; 1024]).await,
        announce_200_mb(&node3, &[b' '; 1024]).await,
    ];
    let mut turned_away = 0;
    for upload in &mut uploads {
        let mut answer = vec![0; 64];
        // The busy one answers at once; the other two wait for bodies that never come.
        if let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_secs(2), upload.read(&mut answer)).await
        {
            assert!(
                answer[..n].starts_with(b"HTTP/1.1 503"),
                "{:?}",
                String::from_utf8_lossy(&answer[..n])
            );
            turned_away += 1;
        }
    }
    assert_eq!(turned_away, 1);
    drop(uploads);

    // A validator's vote is a few hundred bytes; 2 MiB is more than a vote may be.
    // (Once the stalled uploads' slots are back: their connections close asynchronously.)
    let big = vec![b' '; 2 << 20];
    let started = Instant::now();
    loop {
        let (_, headers) = node3.sign_request(slots[0].address, "vote", &big).unwrap();
        let mut request = http.post(&url).body(big.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let status = request.send().await.unwrap().status().as_u16();
        if status != 503 {
            assert_eq!(status, 413);
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "large-body slots never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A full node follows the validators by height and forwards what it is sent.
async fn a_full_node_syncs_and_forwards(
    home: &Path,
    spec: &Path,
    slots: &[Slot],
    nodes: &[Option<NodeProcess>],
) {
    let bootnodes = format!("{},{}", slots[1].sync_url(), slots[2].sync_url());
    let full = start_full_node(home, spec, &bootnodes).await;
    let validator = nodes[2].as_ref().unwrap();
    let target = validator.block_number().await;
    reach(&full, target).await;
    assert_same_chain(&[&full, validator]).await;
    let hashes = transfers(&full, 0, 2).await;
    assert_all_receipted(validator, &hashes).await;
}
