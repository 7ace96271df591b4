//! Moving blocks between data dirs: an importer accepts exactly the blocks the authority sealed
//! and refuses a block sealed by anyone else.

use std::{fs, path::Path, process::Output};

use aicoin_consensus::{seal_block, sealer_extra_data};
use aicoin_primitives::SealedBlock;
use alloy_primitives::{Address, U256};
use alloy_rlp::{Decodable, Encodable};
use alloy_signer_local::PrivateKeySigner;

use crate::common::*;

fn run(home: &Path, args: &[&str]) -> Output {
    aicoin(home, args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn import_accepts_the_authoritys_blocks_and_rejects_a_foreign_seal() {
    let tmp = tempdir();
    let home = tmp.path();
    let a = home.join("a");
    let node = NodeProcess::dev(&a, &[]).await;
    let sender = dev_key(1);
    for nonce in 0..5 {
        let hash = node
            .send_raw(&transfer(
                &sender,
                nonce,
                Address::repeat_byte(7),
                U256::from(9u64),
            ))
            .await
            .unwrap();
        node.receipt(hash).await;
    }
    node.stop();

    let spec = run(home, &["chain-spec", "--data-dir", a.to_str().unwrap()]);
    assert!(spec.status.success(), "{}", text(&spec.stderr));
    let spec_file = home.join("spec.json");
    fs::write(&spec_file, &spec.stdout).unwrap();
    let exported = home.join("a.rlp");
    let out = run(
        home,
        &[
            "export",
            "--data-dir",
            a.to_str().unwrap(),
            exported.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A fresh data dir with the same spec imports every block, re-executing it to the same roots.
    let b = home.join("b");
    let out = run(
        home,
        &[
            "import",
            "--data-dir",
            b.to_str().unwrap(),
            "--chain",
            spec_file.to_str().unwrap(),
            exported.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reexported = home.join("b.rlp");
    let out = run(
        home,
        &[
            "export",
            "--data-dir",
            b.to_str().unwrap(),
            reexported.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        fs::read(&exported).unwrap(),
        fs::read(&reexported).unwrap(),
        "same blocks, byte for byte"
    );

    // The first block re-sealed by an outsider is refused, and nothing is imported.
    let bytes = fs::read(&exported).unwrap();
    let mut block = SealedBlock::decode(&mut bytes.as_slice()).unwrap();
    let outsider = PrivateKeySigner::random();
    block.header.extra_data = sealer_extra_data(outsider.address());
    let block = seal_block(block.header, block.transactions, &outsider).unwrap();
    let mut forged = Vec::new();
    block.encode(&mut forged);
    let forged_file = home.join("forged.rlp");
    fs::write(&forged_file, forged).unwrap();
    let c = home.join("c");
    let out = run(
        home,
        &[
            "import",
            "--data-dir",
            c.to_str().unwrap(),
            "--chain",
            spec_file.to_str().unwrap(),
            forged_file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("block 1 rejected"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "sealed by {}, which is not in the authority set",
            outsider.address()
        )),
        "{stderr}"
    );
    let head = run(
        home,
        &[
            "export",
            "--data-dir",
            c.to_str().unwrap(),
            home.join("c.rlp").to_str().unwrap(),
        ],
    );
    assert!(
        text(&head.stdout).contains("exported 0 blocks"),
        "nothing was imported: {}",
        text(&head.stdout)
    );
}
