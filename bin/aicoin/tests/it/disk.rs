//! A full disk: a node whose data dir is on a small tmpfs, filled while transfers stream in.
//! The chain database can no longer be written, so `GET /health` says so (503) and the node
//! exits non-zero, for its supervisor to restart it; once space is freed, the restarted node
//! goes on from its last committed block with every receipted transaction.
//!
//! Mounting needs root (or password-less sudo), so the test is `#[ignore]`d and run by
//! scripts/test.sh: `cargo test -p aicoin --test it disk -- --ignored`.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use alloy_primitives::{Address, B256, U256};

use crate::common::*;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

/// `mount`/`umount` as root, or through password-less sudo.
fn privileged(args: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut command = match root {
        true => Command::new(args[0]),
        false => {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", args[0]]);
            sudo
        }
    };
    command.args(&args[1..]).status().is_ok_and(|s| s.success())
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let at_str = at.to_str().unwrap();
        assert!(
            privileged(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                at_str
            ]),
            "cannot mount a tmpfs at {at_str}: run as root or with password-less sudo"
        );
        Self(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        privileged(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 64] {
        let zeros = vec![0u8; chunk];
        while file
            .write_all(&zeros)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a tmpfs: needs root or password-less sudo (scripts/test.sh runs it)"]
async fn a_full_disk_makes_the_node_unhealthy_and_exit_and_it_recovers_when_freed() {
    let tmp = tempdir();
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "24m");
    let data_dir = disk.0.join("data");
    let args = ["--no-api", "--block-interval", "0.2"];
    let node = NodeProcess::dev(&data_dir, &args).await;
    let sender = dev_key(1);
    let first = node
        .send_raw(&transfer(
            &sender,
            0,
            Address::repeat_byte(9),
            U256::from(7),
        ))
        .await
        .unwrap();
    node.receipt(first).await;

    // Fill the disk, then keep the chain growing (a new account per transfer) until a block
    // cannot be written.
    let filler = disk.0.join("filler");
    fill(&filler);
    let http = reqwest::Client::new();
    let health = format!("{}/health", node.url);
    // The newest block the node showed: committed, so it must survive.
    let mut seen: Option<(u64, B256)> = None;
    let mut nonce = 1u64;
    let unhealthy = loop {
        let answer = http.get(&health).send().await;
        match answer {
            Ok(r) if r.status() == 503 => break Some(r.text().await.unwrap()),
            Ok(_) => {}
            // Already gone: it exited between two looks.
            Err(_) => break None,
        }
        // Plain HTTP: the node may exit between two calls.
        let call = |method: &str, params: serde_json::Value| {
            http.post(&node.url)
                .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
                .send()
        };
        let head = match call("eth_getBlockByNumber", serde_json::json!(["latest", false])).await {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        if let Some(block) = head
            .as_ref()
            .map(|h| &h["result"])
            .filter(|b| b.is_object())
        {
            seen = Some((
                quantity(&block["number"]),
                block["hash"].as_str().unwrap().parse().unwrap(),
            ));
        }
        let to = Address::from_word(alloy_primitives::keccak256(nonce.to_be_bytes()));
        let raw = transfer(&sender, nonce, to, U256::from(1));
        if let Ok(r) = call("eth_sendRawTransaction", serde_json::json!([raw])).await
            && r.json::<serde_json::Value>()
                .await
                .is_ok_and(|a| a["result"].is_string())
        {
            nonce += 1;
        }
    };
    if let Some(body) = unhealthy {
        assert!(body.contains("\"status\":\"error\""), "{body}");
    }
    let (status, stderr) = node.exited().await;
    assert!(!status.success(), "the node exited with {status}");
    assert!(
        stderr.contains("can no longer be written"),
        "no reason given: {stderr}"
    );

    // Space freed: the supervisor's restart goes on from the last committed block.
    std::fs::remove_file(&filler).unwrap();
    let node = NodeProcess::dev(&data_dir, &args).await;
    let receipt = node.receipt(first).await;
    assert_eq!(receipt["status"], "0x1");
    let (number, hash) = seen.expect("the node showed no block while the disk filled");
    let block: serde_json::Value = node
        .ok(
            "eth_getBlockByNumber",
            vec![format!("{number:#x}").into(), false.into()],
        )
        .await;
    assert_eq!(
        block["hash"],
        hash.to_string(),
        "committed block {number} lost"
    );
    let next = node.nonce(sender.address()).await;
    let hash = node
        .send_raw(&transfer(
            &sender,
            next,
            Address::repeat_byte(9),
            U256::from(7),
        ))
        .await
        .unwrap();
    node.receipt(hash).await;
    let body = http
        .get(format!("{}/health", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    node.stop();
}
