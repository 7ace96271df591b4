//! Block rewards through a running node: the 80/20 split between the miner address and the
//! treasury, the hard cap, and balances read at older blocks.

use std::{fs, os::unix::fs::PermissionsExt};

use aicoin_primitives::{AIC, ChainSpec};
use alloy_primitives::{Address, U256, hex};
use alloy_signer_local::PrivateKeySigner;

use crate::common::*;

#[tokio::test]
async fn rewards_split_and_stop_at_the_cap_and_history_shows_each_step() {
    let tmp = tempdir();
    let dir = data_dir(&tmp);
    fs::create_dir_all(&dir).unwrap();
    // A validator key of our own, and a spec with room for exactly 70 AIC of rewards.
    let key = PrivateKeySigner::random();
    let key_file = dir.join("validator.key");
    fs::write(&key_file, hex::encode(key.to_bytes())).unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let mut spec = ChainSpec::local(2108, key.address(), &[]);
    spec.tokenomics.max_supply = spec.genesis_supply() + AIC * U256::from(70u64);
    let spec_file = tmp.path().join("spec.json");
    fs::write(&spec_file, serde_json::to_string(&spec).unwrap()).unwrap();

    let miner = Address::repeat_byte(0x4d);
    let args = [
        "node",
        "--data-dir",
        dir.to_str().unwrap(),
        "--chain",
        spec_file.to_str().unwrap(),
        "--miner-address",
        &miner.to_string(),
        "--rpc-port",
        "0",
        "--block-interval",
        "0.2",
    ];
    let node = NodeProcess::start(aicoin(tmp.path(), &args)).await;
    node.wait_until(|| async { node.block_number().await >= 4 })
        .await;

    let aic = |n: u64| AIC * U256::from(n);
    let treasury = spec.treasury;
    for (block, miner_total, treasury_total) in [
        ("0x0", 0, 0),
        ("0x1", 40, 10),
        ("0x2", 56, 14),
        ("0x3", 56, 14),
        ("latest", 56, 14),
    ] {
        assert_eq!(
            node.balance(miner, block).await,
            aic(miner_total),
            "miner at {block}"
        );
        assert_eq!(
            node.balance(treasury, block).await,
            aic(treasury_total),
            "treasury at {block}"
        );
    }
    // A block that does not exist yet is an error, not a guess.
    let err = node
        .rpc::<U256>(
            "eth_getBalance",
            vec![miner.to_string().into(), "0xffffff".into()],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), -32000);
    assert_eq!(err.message(), "header not found");
}
