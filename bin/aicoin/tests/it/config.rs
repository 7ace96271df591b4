//! Starting with no flags, with a TOML config file and `AICOIN_*` variables, and refusing
//! settings or data dirs that cannot work.

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use alloy_primitives::U256;

use crate::common::*;

#[tokio::test]
async fn no_flags_starts_a_chain_on_embedded_defaults_and_keeps_its_key() {
    let tmp = tempdir();
    // No flags at all; the port comes from the environment only so parallel tests cannot clash.
    let start = || {
        let mut cmd = aicoin(tmp.path(), &["node"]);
        cmd.env("AICOIN_RPC_PORT", "0");
        NodeProcess::start(cmd)
    };
    let node = start().await;
    let chain_id: U256 = node.ok("eth_chainId", vec![]).await;
    assert_eq!(chain_id, U256::from(2108u64));
    let data_dir = tmp.path().join(".local/share/aicoin/2108");
    assert_eq!(Path::new(&node.banner_value("Data dir")), data_dir);
    let key = data_dir.join("validator.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let validator = node.banner_value("Validator");
    assert!(validator.ends_with("(new key created)"), "{validator}");
    node.wait_until(|| async { node.block_number().await >= 1 })
        .await;
    node.stop();

    let node = start().await;
    assert_eq!(
        format!("{} (new key created)", node.banner_value("Validator")),
        validator
    );
}

#[tokio::test]
async fn config_file_and_environment_set_every_flag_with_cli_and_env_winning() {
    let tmp = tempdir();
    let config = tmp.path().join("aicoin.toml");
    let dir = tmp.path().join("chain");
    fs::write(
        &config,
        format!("chain-id = 777\nrpc-port = 0\nblock-interval = 0.1\ndata-dir = {:?}\ntxpool-max-nonce-gap = 3\n", dir.to_str().unwrap()),
    )
    .unwrap();
    let mut cmd = aicoin(
        tmp.path(),
        &["node", "--config", config.to_str().unwrap(), "--dev"],
    );
    cmd.env("AICOIN_GAS_LIMIT", "25000000");
    let node = NodeProcess::start(cmd).await;
    let chain_id: U256 = node.ok("eth_chainId", vec![]).await;
    assert_eq!(chain_id, U256::from(777u64));
    assert_eq!(node.ok::<String>("net_version", vec![]).await, "777");
    node.wait_until(|| async { node.block_number().await >= 1 })
        .await;
    let block: serde_json::Value = node
        .ok("eth_getBlockByNumber", vec!["0x1".into(), false.into()])
        .await;
    assert_eq!(block["gasLimit"], "0x17d7840");
    // The pool's nonce-gap limit came from the file.
    let far = legacy(
        &dev_key(0),
        777,
        4,
        dev_key(1).address(),
        U256::from(1u64),
        21_000,
    );
    let err = node.send_raw(&far).await.unwrap_err();
    assert!(
        err.message()
            .contains("more than 3 ahead of the next executable nonce 0"),
        "{err:?}"
    );
    node.stop();

    // The command line beats the file.
    let mut cmd = aicoin(
        tmp.path(),
        &[
            "node",
            "--config",
            config.to_str().unwrap(),
            "--dev",
            "--chain-id",
            "778",
            "--data-dir",
        ],
    );
    cmd.arg(tmp.path().join("other"));
    let node = NodeProcess::start(cmd).await;
    assert_eq!(node.ok::<String>("net_version", vec![]).await, "778");
}

fn failure(args: &[&str], home: &Path) -> String {
    let out = aicoin(home, args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn impossible_settings_and_foreign_data_dirs_are_refused() {
    let tmp = tempdir();
    let home = tmp.path();
    let dir = data_dir(&tmp);
    let d = dir.to_str().unwrap();
    assert!(
        failure(&["node", "--data-dir", d, "--block-interval", "0"], home)
            .contains("--block-interval")
    );
    assert!(failure(&["node", "--data-dir", d, "--peers", "nope"], home).contains("--peers"));
    assert!(failure(&["node", "--data-dir", d, "--role", "boss"], home).contains("unknown role"));
    assert!(
        failure(&["node", "--data-dir", d, "--role", "follower"], home).contains("needs --peers")
    );
    assert!(failure(&["node", "--data-dir", d, "--role", "full"], home).contains("--bootnodes"));
    let peers = r#"[{"node_id":"b","host":"127.0.0.1","sync_port":9552,"rpc_port":8547}]"#;
    assert!(
        failure(&["node", "--data-dir", d, "--peers", peers], home).contains("--chain spec.json")
    );

    let node = NodeProcess::dev(&dir, &[]).await;
    node.stop();
    let err = failure(
        &[
            "node",
            "--dev",
            "--data-dir",
            d,
            "--rpc-port",
            "0",
            "--chain-id",
            "5",
        ],
        home,
    );
    assert!(
        err.contains("holds chain 2108") && err.contains("configured for chain 5"),
        "{err}"
    );
    // The same chain without --dev has another genesis too.
    let err = failure(&["node", "--data-dir", d, "--rpc-port", "0"], home);
    assert!(err.contains("holds chain 2108"), "{err}");
}
