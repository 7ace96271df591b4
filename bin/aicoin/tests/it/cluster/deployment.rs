//! The README's path from bare hosts to a 3-validator cluster, on one machine: each validator's
//! key made with `aicoin chain-spec --validator-address`, one spec for all from `aicoin chain-spec
//! --authorities`, and every node run on deploy/aicoin.toml with only its ports, paths and peers
//! overridden on the command line (as three hosts would each have their own copy).

use std::path::Path;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;

use super::{free_port, member_args, one_cluster_at_a_time, reach, validator_key};
use crate::common::{NodeProcess, aicoin, quantity, tempdir, transfer};

fn stdout_of(home: &Path, args: &[&str]) -> String {
    let out = aicoin(home, args).output().unwrap();
    assert!(
        out.status.success(),
        "aicoin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_validators_from_the_deployment_config_and_a_spec_of_their_keys() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    let dirs: Vec<_> = (1..=3).map(|i| home.join(format!("node-{i}"))).collect();
    let addresses: Vec<String> = dirs
        .iter()
        .map(|dir| {
            let printed = stdout_of(
                home,
                &["chain-spec", "--validator-address", dir.to_str().unwrap()],
            );
            printed.trim().to_string()
        })
        .collect();
    // The address printed is the key the node will sign with.
    let first: PrivateKeySigner = validator_key(&dirs[0]);
    assert_eq!(addresses[0].parse::<Address>().unwrap(), first.address());
    let spec = home.join("chain.json");
    std::fs::write(
        &spec,
        stdout_of(home, &["chain-spec", "--authorities", &addresses.join(",")]),
    )
    .unwrap();

    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/aicoin.toml");
    let ports: Vec<[u16; 4]> = (0..3)
        .map(|_| [free_port(), free_port(), free_port(), free_port()])
        .collect();
    let rpc_ports: Vec<u16> = ports.iter().map(|p| p[0]).collect();
    let sync_ports: Vec<u16> = ports.iter().map(|p| p[1]).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let [rpc, sync, admin, metrics] = ports[i];
        let args: Vec<String> = [
            "node",
            "--config",
            config,
            "--chain",
            spec.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
            "--block-interval",
            "0.5",
            "--no-api",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--rpc-port".into(),
            rpc.to_string(),
            "--public-rpc-url".into(),
            format!("http://127.0.0.1:{rpc}"),
            "--sync-host".into(),
            "127.0.0.1".into(),
            "--advertise-sync-url".into(),
            format!("http://127.0.0.1:{sync}"),
            "--admin-port".into(),
            admin.to_string(),
            "--metrics-port".into(),
            metrics.to_string(),
        ])
        .chain(member_args(i, &sync_ports, &rpc_ports, 3))
        .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(NodeProcess::start(aicoin(home, &args)).await);
    }

    // The first authority holds the genesis allocation: it pays through the third validator,
    // which shares the transfer with the others, and every validator agrees on the balance to
    // the wei.
    // Once the cluster has formed (its first block), a transaction is acknowledged only when
    // another validator holds it too.
    reach(&nodes[2], 1).await;
    let to = Address::repeat_byte(0x42);
    let value = U256::from(1_234_567_890_123u64);
    let hash = nodes[2]
        .send_raw(&transfer(&first, 0, to, value))
        .await
        .expect("transfer accepted");
    let receipt = nodes[2].receipt(hash).await;
    assert_eq!(receipt["status"], "0x1");
    let mined = quantity(&receipt["blockNumber"]);
    for node in &nodes {
        reach(node, mined).await;
        assert_eq!(node.balance(to, "latest").await, value);
    }
}
