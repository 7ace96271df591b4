//! `aicoin wallet` and `aicoin pay` as a user runs them: create, import, derive, export, send,
//! balance, sign and verify, payment requests and watching, and a clear error with a non-zero
//! exit (and nothing half-written) for every kind of bad input.

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use crate::common::*;

const PASSWORD: &str = "correct horse battery";
const JUNK: &str = "test test test test test test test test test test test junk";

/// `aicoin <args>` with the wallet password in the environment.
fn wallet_cmd(home: &Path, args: &[&str]) -> Command {
    let mut cmd = aicoin(home, args);
    cmd.env("AICOIN_WALLET_PASSWORD", PASSWORD)
        .stdin(Stdio::null());
    cmd
}

fn run(home: &Path, args: &[&str]) -> Output {
    wallet_cmd(home, args).output().unwrap()
}

fn ok_json(home: &Path, args: &[&str]) -> Value {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `args`, expects failure ending with a one-line `error: …`, and returns all it printed
/// on stderr (warnings come before the error).
fn fails(home: &Path, args: &[&str]) -> String {
    let out = run(home, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{args:?}: {err}");
    err
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn accounts_keystores_and_messages() {
    let tmp = tempdir();
    let home = tmp.path();
    let dir = home.join("w").to_string_lossy().into_owned();
    let w = |rest: &[&str]| -> Vec<String> {
        let mut args = vec![
            "wallet".to_string(),
            "--wallet-dir".into(),
            dir.clone(),
            "--json".into(),
        ];
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };
    let call = |rest: &[&str]| {
        ok_json(
            home,
            &w(rest).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let fail = |rest: &[&str]| {
        fails(
            home,
            &w(rest).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    // The standard test mnemonic gives Hardhat's accounts at the BIP-44 indices.
    let imported = call(&["import", "--mnemonic", JUNK]);
    assert_eq!(
        imported["address"],
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
    assert_eq!(
        call(&["derive", "--index", "9"])["address"],
        "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
    );
    let listed = call(&["list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // Importing at another index stores that account, and only it, as the default.
    let other = tmp.path().join("at-index-3");
    let at_three = ok_json(
        home,
        &[
            "wallet",
            "--wallet-dir",
            other.to_str().unwrap(),
            "--json",
            "import",
            "--mnemonic",
            JUNK,
            "--index",
            "3",
        ],
    );
    assert_eq!(
        at_three["address"],
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    );
    let listed_other = ok_json(
        home,
        &[
            "wallet",
            "--wallet-dir",
            other.to_str().unwrap(),
            "--json",
            "list",
        ],
    );
    assert_eq!(listed_other.as_array().unwrap().len(), 1);
    assert_eq!(
        call(&["address"])["address"],
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );

    // Keystores are private files in geth's naming.
    let keystores = Path::new(&dir).join("keystore");
    for name in listing(&keystores) {
        assert!(name.starts_with("UTC--"), "{name}");
        let mode = fs::metadata(keystores.join(&name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let out = home.join("exported.json");
    call(&["export", "--keystore", "--out", out.to_str().unwrap()]);
    let exported: Value = serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        exported["address"],
        "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    );
    assert_eq!(exported["version"], 3);
    assert_eq!(exported["crypto"]["kdf"], "scrypt");

    // Sign and verify (EIP-191): a known signature of the dev key, then a mismatch.
    let signed = call(&["sign-message", "hello AICoin"]);
    let signature = signed["signature"].as_str().unwrap();
    let verified = call(&[
        "verify-message",
        "hello AICoin",
        "--address",
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "--signature",
        signature,
    ]);
    assert_eq!(verified["valid"], true);
    let wrong = run(
        home,
        &w(&[
            "verify-message",
            "hello AICoin!",
            "--address",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "--signature",
            signature,
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_eq!(wrong.status.code(), Some(1));

    // EIP-681 payment request for the default account.
    let request = ok_json(
        home,
        &[
            "pay",
            "--wallet-dir",
            &dir,
            "--json",
            "request",
            "--amount",
            "10.5",
        ],
    );
    assert_eq!(
        request["uri"],
        "ethereum:0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266@2108?value=10500000000000000000"
    );

    // A key imported into the same wallet must use the wallet's password.
    let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    let err = fails(
        home,
        &[
            "wallet",
            "--wallet-dir",
            &dir,
            "import",
            "--private-key",
            key,
            "--password-file",
            "/dev/null",
        ],
    );
    assert!(err.contains("wrong password"), "{err}");
    assert_eq!(
        call(&["import", "--private-key", key])["address"],
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    );

    // A wrong password and a corrupt keystore are clear errors.
    let err = fails(
        home,
        &[
            "wallet",
            "--wallet-dir",
            &dir,
            "sign-message",
            "x",
            "--password-file",
            "/dev/null",
        ],
    );
    assert!(err.contains("wrong password"), "{err}");
    let first = keystores.join(&listing(&keystores)[0]);
    let original = fs::read_to_string(&first).unwrap();
    fs::write(&first, &original[..original.len() / 2]).unwrap();
    let err = fail(&["sign-message", "x"]);
    assert!(err.contains("is not a usable keystore"), "{err}");
    fs::write(&first, original).unwrap();
}

#[test]
fn bad_input_is_refused_and_leaves_nothing_half_written() {
    let tmp = tempdir();
    let home = tmp.path();
    let dir = home.join("w");
    let d = dir.to_str().unwrap();

    // Mnemonics: checksum, unknown (non-English) words, word count; the phrase is never echoed.
    for (phrase, fragment) in [
        (
            "test test test test test test test test test test test test",
            "checksum",
        ),
        (
            "abaisser abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            "word 1 of the mnemonic is not in the English",
        ),
        ("test test test", "12, 15, 18, 21 or 24 words"),
    ] {
        let err = fails(
            home,
            &["wallet", "--wallet-dir", d, "import", "--mnemonic", phrase],
        );
        assert!(err.contains(fragment), "{err}");
        assert!(
            !err.contains("test test"),
            "the error echoes the phrase: {err}"
        );
    }
    let err = fails(
        home,
        &[
            "wallet",
            "--wallet-dir",
            d,
            "import",
            "--private-key",
            "0x1234",
        ],
    );
    assert!(err.contains("not a private key"), "{err}");
    // A password that is too short creates nothing.
    let out = aicoin(home, &["wallet", "--wallet-dir", d, "new"])
        .env("AICOIN_WALLET_PASSWORD", "short")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
    assert!(
        !dir.join("wallet.json").exists(),
        "a failed command left a wallet behind"
    );

    // Amounts and addresses, before anything is signed or sent.
    ok_json(home, &["wallet", "--wallet-dir", d, "--json", "new"]);
    let before = listing(&dir);
    let to = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    for (amount, fragment) in [
        ("1.0000000000000000001", "18 decimals"),
        ("-1", "cannot be negative"),
        ("ten", "decimal number"),
        ("1e18", "decimal number"),
    ] {
        let err = fails(
            home,
            &[
                "wallet",
                "--wallet-dir",
                d,
                "send",
                "--to",
                to,
                "--amount",
                amount,
            ],
        );
        assert!(err.contains(fragment), "{amount}: {err}");
    }
    let bad_checksum = "0x70997970c51812dc3A010C7d01b50e0d17dc79C8";
    let err = fails(
        home,
        &[
            "wallet",
            "--wallet-dir",
            d,
            "send",
            "--to",
            bad_checksum,
            "--amount",
            "1",
        ],
    );
    assert!(err.contains("checksum"), "{err}");
    let err = fails(home, &["wallet", "--wallet-dir", d, "new"]);
    assert!(err.contains("already holds a wallet"), "{err}");
    let err = fails(
        home,
        &[
            "wallet",
            "--wallet-dir",
            d,
            "import",
            "--keystore",
            "/nonexistent.json",
        ],
    );
    assert!(err.contains("cannot read"), "{err}");
    assert_eq!(
        listing(&dir),
        before,
        "failed commands changed the wallet directory"
    );

    // Nothing to show without a wallet.
    let err = fails(
        home,
        &[
            "wallet",
            "--wallet-dir",
            home.join("none").to_str().unwrap(),
            "list",
        ],
    );
    assert!(err.contains("no wallet"), "{err}");
}

#[tokio::test]
async fn send_balance_and_payment_watching_against_a_node() {
    let tmp = tempdir();
    let home = tmp.path().to_path_buf();
    let node = NodeProcess::dev(&data_dir(&tmp), &[]).await;
    let url = node.url.clone();
    let (payer, merchant) = (home.join("payer"), home.join("merchant"));
    let (payer, merchant) = (payer.to_str().unwrap(), merchant.to_str().unwrap());
    let dev_key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    let created = ok_json(
        &home,
        &[
            "wallet",
            "--wallet-dir",
            merchant,
            "--json",
            "new",
            "--words",
            "24",
        ],
    );
    assert_eq!(created["mnemonic"].as_str().unwrap().split(' ').count(), 24);
    let address = created["address"].as_str().unwrap().to_string();
    ok_json(
        &home,
        &[
            "wallet",
            "--wallet-dir",
            payer,
            "--json",
            "import",
            "--private-key",
            dev_key,
        ],
    );

    // Fund the new wallet, then have it send on: every balance is exact (fees are zero).
    let sent = ok_json(
        &home,
        &[
            "wallet",
            "--wallet-dir",
            payer,
            "--json",
            "send",
            "--to",
            &address,
            "--amount",
            "10.5",
            "--rpc-url",
            &url,
        ],
    );
    assert_eq!(sent["status"], "success");
    let recipient = "0x000000000000000000000000000000000000bEEF";
    ok_json(
        &home,
        &[
            "wallet",
            "--wallet-dir",
            merchant,
            "--json",
            "send",
            "--to",
            recipient,
            "--amount",
            "0.000000000000000001",
            "--rpc-url",
            &url,
        ],
    );
    let balance = ok_json(
        &home,
        &[
            "wallet",
            "--wallet-dir",
            merchant,
            "--json",
            "balance",
            "--rpc-url",
            &url,
        ],
    );
    assert_eq!(balance["wei"], "10499999999999999999");
    let theirs = ok_json(
        &home,
        &[
            "wallet",
            "--wallet-dir",
            merchant,
            "--json",
            "balance",
            "--address",
            recipient,
            "--rpc-url",
            &url,
        ],
    );
    assert_eq!(theirs["aic"], "0.000000000000000001");

    // pay watch: exits 0 with the transaction once 2 AIC arrive with 2 confirmations...
    let watcher = wallet_cmd(
        &home,
        &[
            "pay",
            "--json",
            "watch",
            "--address",
            &address,
            "--amount",
            "2",
            "--confirmations",
            "2",
            "--timeout",
            "60",
            "--rpc-url",
            &url,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // It counts payments mined after it started: wait until it says it is watching.
    let mut watcher = watcher;
    let mut lines = BufReader::new(watcher.stderr.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.starts_with("Watching "), "{ready}");
    let payment = ok_json(
        &home,
        &[
            "wallet",
            "--wallet-dir",
            payer,
            "--json",
            "send",
            "--to",
            &address,
            "--amount",
            "2",
            "--rpc-url",
            &url,
        ],
    );
    let out = watcher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["received_aic"], "2");
    assert_eq!(report["transactions"][0]["hash"], payment["hash"]);

    // ...and non-zero when nothing comes before the timeout.
    let out = run(
        &home,
        &[
            "pay",
            "watch",
            "--address",
            &address,
            "--amount",
            "1",
            "--timeout",
            "1",
            "--rpc-url",
            &url,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 1s"));
}
