//! API access on a dev node: a tier bought with an ordinary transaction at its price, the
//! subscription and revenue read back through the interface, wrong payments refused with their
//! reason; API keys signed by the wallet (`aicoin api-key`), checked as a gateway checks them
//! (another chain's, a forged one, a revoked one refused), and revoked by generation.

use aicoin_modules::access::IApiAccess;
use aicoin_primitives::{AIC, modules::API_ACCESS_ADDRESS};
use alloy_primitives::{Bytes, U256};
use alloy_sol_types::SolCall;
use serde_json::json;

use crate::common::{DevNode, Rpc, aicoin, data_dir, dev_key, tempdir};

/// `aicoin <args>` in `home` (the wallet password in the environment): its JSON output, or its
/// stderr when it fails.
fn cli(home: &std::path::Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let args: Vec<String> = args
        .iter()
        .map(|a| match *a {
            "W" => home.join("wallet").to_string_lossy().into_owned(),
            other => other.to_string(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = aicoin(home, &args)
        .env("AICOIN_WALLET_PASSWORD", "correct horse battery")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

async fn view<C: SolCall>(rpc: &Rpc, call: C) -> C::Return {
    let out: Bytes = rpc
        .ok(
            "eth_call",
            vec![json!({"to": API_ACCESS_ADDRESS, "data": Bytes::from(call.abi_encode())})],
        )
        .await;
    C::abi_decode_returns(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_is_bought_at_its_price_and_keys_revoke_by_generation() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |_| {}).await;
    let buyer = dev_key(0).address();
    let standard = AIC * U256::from(5u64);
    let buy = Bytes::from(IApiAccess::buyCall { tier: 2 }.abi_encode());

    let err = node
        .rpc::<Bytes>(
            "eth_call",
            vec![json!({"from": buyer, "to": API_ACCESS_ADDRESS, "data": buy, "value": AIC})],
        )
        .await
        .expect_err("underpaid");
    assert!(
        err.message()
            .contains("tier 2 costs 5000000000000000000 wei"),
        "{err:?}"
    );

    let before = node.balance(buyer, "latest").await;
    let receipt = node
        .send_and_mine(
            json!({"from": buyer, "to": API_ACCESS_ADDRESS, "data": buy, "value": standard}),
        )
        .await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    assert_eq!(
        before - node.balance(buyer, "latest").await,
        standard,
        "exactly the price"
    );
    let sub = view(&node, IApiAccess::subscriptionCall { account: buyer }).await;
    assert_eq!(
        (
            sub.tier,
            sub.active,
            sub.requestsPerMinute,
            sub.tokensPerDay
        ),
        (2, true, U256::from(60u64), U256::from(100_000u64))
    );
    let bought_at = u64::from_str_radix(
        receipt["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(
        sub.expiresAt,
        bought_at + 30 * 28_800,
        "30 days of 3 s blocks"
    );
    let revenue = view(&node, IApiAccess::revenueCall { epoch: 0 }).await;
    assert!(revenue >= standard);

    // Keys: signed by the wallet, checked as a gateway checks them, revoked on chain.
    let home = tmp.path();
    let key = format!("0x{}", alloy_primitives::hex::encode(dev_key(0).to_bytes()));
    cli(
        home,
        &[
            "wallet",
            "--wallet-dir",
            "W",
            "import",
            "--private-key",
            &key,
        ],
    )
    .unwrap();
    let created = cli(
        home,
        &[
            "api-key",
            "--wallet-dir",
            "W",
            "--json",
            "create",
            "--expires",
            "1h",
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap();
    let api_key = created["key"].as_str().unwrap().to_string();
    assert!(api_key.starts_with("aic_"), "{created}");
    assert_eq!(
        (created["generation"].as_u64(), created["chainId"].as_u64()),
        (Some(0), Some(2108))
    );
    let verified = cli(
        home,
        &[
            "api-key",
            "--json",
            "verify",
            &api_key,
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap();
    assert_eq!(
        (&verified["valid"], &verified["tier"], &verified["active"]),
        (&json!(true), &json!(2), &json!(true))
    );

    // `api-key buy` pays a tier's price from the wallet: here an upgrade to Premium.
    let bought = cli(
        home,
        &[
            "api-key",
            "--wallet-dir",
            "W",
            "--json",
            "buy",
            "premium",
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap();
    assert_eq!(
        (&bought["tier"], &bought["price"]),
        (&json!(3), &json!((AIC * U256::from(20u64)).to_string()))
    );
    let upgraded = view(&node, IApiAccess::subscriptionCall { account: buyer }).await;
    assert_eq!(upgraded.tier, 3);
    assert_eq!(
        upgraded.expiresAt,
        bought["expiresAtBlock"].as_u64().unwrap()
    );
    let err = cli(
        home,
        &[
            "api-key",
            "--wallet-dir",
            "W",
            "buy",
            "gold",
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap_err();
    assert!(err.contains("basic, standard or premium"), "{err}");

    let signer = dev_key(0);
    let other_chain = aicoin_gateway::ApiKey {
        account: buyer,
        expires: u64::MAX,
        generation: 0,
        chainId: 1,
    }
    .sign(&signer)
    .unwrap();
    let err = cli(
        home,
        &["api-key", "verify", &other_chain, "--rpc-url", &node.url],
    )
    .unwrap_err();
    assert!(
        err.contains("for chain 1, not this gateway's chain 2108"),
        "{err}"
    );
    let claimed = aicoin_gateway::ApiKey {
        account: buyer,
        expires: u64::MAX,
        generation: 0,
        chainId: 2108,
    };
    let forged = aicoin_gateway::keys::encode(
        &claimed,
        &alloy_signer::SignerSync::sign_hash_sync(&dev_key(1), &claimed.signing_hash()).unwrap(),
    );
    let err = cli(
        home,
        &["api-key", "verify", &forged, "--rpc-url", &node.url],
    )
    .unwrap_err();
    assert!(
        err.contains(&format!("signature is not {buyer}'s")),
        "{err}"
    );

    let revoked = cli(
        home,
        &[
            "api-key",
            "--wallet-dir",
            "W",
            "--json",
            "revoke",
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap();
    assert_eq!(revoked["generation"], 1);
    let sub = view(&node, IApiAccess::subscriptionCall { account: buyer }).await;
    assert_eq!(sub.keyGeneration, 1);
    let err = cli(
        home,
        &["api-key", "verify", &api_key, "--rpc-url", &node.url],
    )
    .unwrap_err();
    assert!(err.contains("revoked its keys (generation 1 now)"), "{err}");
    let modules: serde_json::Value = node.ok("aic_modules", vec![]).await;
    assert_eq!(
        modules["access"]
            .as_str()
            .unwrap()
            .parse::<alloy_primitives::Address>()
            .unwrap(),
        API_ACCESS_ADDRESS
    );
}

/// `aicoin gateway add|list|remove`: a validator's transactions from its wallet (the node key
/// imported), refused with the module's reason for anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_adds_and_removes_gateways_with_the_cli() {
    let tmp = tempdir();
    let data = data_dir(&tmp);
    let (validator, _) = aicoin_node::load_or_create_validator_key(&data).unwrap();
    let node = DevNode::spawn(&data, |_| {}).await;
    let home = tmp.path();
    for key in [validator.to_bytes(), dev_key(1).to_bytes()] {
        let key = format!("0x{}", alloy_primitives::hex::encode(key));
        let import = [
            "wallet",
            "--wallet-dir",
            "W",
            "import",
            "--private-key",
            &key,
        ];
        cli(home, &import).unwrap();
    }
    let gateway = "0x000000000000000000000000000000000000dEaD";
    let list = || cli(home, &["gateway", "--json", "list", "--rpc-url", &node.url]);
    assert_eq!(list().unwrap(), json!([]));

    let stranger = dev_key(1).address().to_string();
    let err = cli(
        home,
        &[
            "gateway",
            "--wallet-dir",
            "W",
            "add",
            gateway,
            "--url",
            "http://gw.example",
            "--from",
            &stranger,
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap_err();
    assert!(err.contains("only validators add gateways"), "{err}");

    let from = validator.address().to_string();
    let added = cli(
        home,
        &[
            "gateway",
            "--wallet-dir",
            "W",
            "--json",
            "add",
            gateway,
            "--url",
            "http://gw.example",
            "--from",
            &from,
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap();
    assert_eq!(added["url"], "http://gw.example");
    assert_eq!(
        list().unwrap(),
        json!([{ "gateway": gateway, "url": "http://gw.example" }])
    );
    cli(
        home,
        &[
            "gateway",
            "--wallet-dir",
            "W",
            "remove",
            gateway,
            "--from",
            &from,
            "--rpc-url",
            &node.url,
        ],
    )
    .unwrap();
    assert_eq!(list().unwrap(), json!([]));
}
