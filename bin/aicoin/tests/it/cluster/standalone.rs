//! A single validator, no cluster: given `--sync-port`, it serves its blocks, so full nodes can
//! follow a one-authority chain, verify it, and forward transactions to it; when it restarts
//! and has lost its pool, a full node sends it again what it had forwarded and is not mined.

use alloy_primitives::Address;
use serde_json::Value;

use super::{
    assert_all_receipted, assert_same_chain, free_port, one_cluster_at_a_time, prepare, reach,
    send_transfers, start, start_full_node, transfers,
};
use crate::common::tempdir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_follows_a_standalone_validator() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    let (spec, slots) = prepare(home, 1, 1);
    let validator = start(home, &slots[0]).await;
    assert_eq!(
        validator.banner_value("Sync"),
        format!(
            "{}  (full nodes: --role full --bootnodes <this>)",
            slots[0].sync_url()
        )
    );
    let before = transfers(&validator, 0, 2).await;
    let full = start_full_node(home, &spec, &slots[0].sync_url()).await;
    reach(&full, validator.block_number().await).await;
    assert_same_chain(&[&full, &validator]).await;
    assert_all_receipted(&full, &before).await;
    // Sent to the full node, mined by the validator, seen by both.
    let after = transfers(&full, 1, 2).await;
    assert_all_receipted(&validator, &after).await;
}

/// `args` with `flag`'s value set to `value`.
fn set_arg(args: &mut [String], flag: &str, value: &str) {
    let at = args.iter().position(|a| a == flag).unwrap();
    args[at + 1] = value.to_string();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_resends_what_a_restarted_producer_lost() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    let (spec, mut slots) = prepare(home, 1, 1);
    // The same RPC URL after the restart, and blocks slow enough that the transfer is held,
    // not mined, when the producer dies.
    set_arg(&mut slots[0].args, "--rpc-port", &free_port().to_string());
    set_arg(&mut slots[0].args, "--block-interval", "120");
    let validator = start(home, &slots[0]).await;
    let full = start_full_node(home, &spec, &slots[0].sync_url()).await;
    reach(&full, validator.block_number().await).await;

    let sent = send_transfers(&full, 0, 1, Address::repeat_byte(0x77)).await;
    let held: Value = validator
        .ok("eth_getTransactionByHash", vec![sent[0].to_string().into()])
        .await;
    assert!(
        held["hash"].is_string() && held["blockNumber"].is_null(),
        "the producer holds it unmined: {held}"
    );
    validator.kill9();
    set_arg(&mut slots[0].args, "--block-interval", "0.5");
    let validator = start(home, &slots[0]).await;

    // Unmined for 10 s, the full node sends it again, and the restarted producer mines it.
    full.wait_for_stderr("forwarding unmined transactions to the producer again")
        .await;
    validator.receipt(sent[0]).await;
    full.receipt(sent[0]).await;
    assert_all_receipted(&validator, &sent).await;
    assert_all_receipted(&full, &sent).await;
}
