//! A single validator, no cluster: given `--sync-port`, it serves its blocks, so full nodes can
//! follow a one-authority chain, verify it, and forward transactions to it.

use super::start_full_node;
use super::{
    assert_all_receipted, assert_same_chain, one_cluster_at_a_time, prepare, reach, start,
    transfers,
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
