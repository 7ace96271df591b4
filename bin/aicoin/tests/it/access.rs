//! API access on a dev node: a tier bought with an ordinary transaction at its price, the
//! subscription and revenue read back through the interface, keys revoked by generation, and
//! wrong payments refused with their reason.

use aicoin_modules::access::IApiAccess;
use aicoin_primitives::{AIC, modules::API_ACCESS_ADDRESS};
use alloy_primitives::{Bytes, U256};
use alloy_sol_types::SolCall;
use serde_json::json;

use crate::common::{DevNode, Rpc, data_dir, dev_key, tempdir};

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

    let revoke = Bytes::from(IApiAccess::revokeKeysCall {}.abi_encode());
    let receipt = node
        .send_and_mine(json!({"from": buyer, "to": API_ACCESS_ADDRESS, "data": revoke}))
        .await;
    assert_eq!(receipt["status"], "0x1");
    let sub = view(&node, IApiAccess::subscriptionCall { account: buyer }).await;
    assert_eq!(sub.keyGeneration, 1);
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
