//! Crash safety: `kill -9` while transactions stream in loses nothing a receipt was returned for,
//! and the restarted node continues the same chain.

use alloy_primitives::{Address, U256};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn kill_9_keeps_every_receipted_transaction_and_the_chain_continues() {
    let tmp = tempdir();
    let dir = data_dir(&tmp);
    let node = NodeProcess::dev(&dir, &[]).await;
    let sender = dev_key(0);
    let to = Address::repeat_byte(0x11);

    // Stream transfers; once some have receipts, keep sending and kill mid-stream.
    let mut sent = Vec::new();
    for nonce in 0..60u64 {
        sent.push(
            node.send_raw(&transfer(&sender, nonce, to, U256::from(1u64)))
                .await
                .unwrap(),
        );
        if nonce == 20 {
            node.receipt(sent[0]).await;
        }
    }
    let mut receipted: Vec<Value> = Vec::new();
    for hash in &sent {
        let receipt: Value = node
            .ok("eth_getTransactionReceipt", vec![hash.to_string().into()])
            .await;
        if !receipt.is_null() {
            receipted.push(receipt);
        }
    }
    assert!(!receipted.is_empty());
    let head_before = node.block_number().await;
    node.kill9();

    let node = NodeProcess::dev(&dir, &[]).await;
    for before in &receipted {
        let hash = before["transactionHash"].clone();
        let after: Value = node.ok("eth_getTransactionReceipt", vec![hash]).await;
        assert_eq!(
            after["blockHash"], before["blockHash"],
            "receipt lost or moved"
        );
        assert_eq!(after["status"], "0x1");
    }
    assert!(node.block_number().await >= head_before);
    node.wait_until(|| async { node.block_number().await > head_before })
        .await;

    // Transactions still pooled at the kill were lost with the pool (never acknowledged by a
    // receipt); resubmitting the rest of the nonce sequence completes it.
    let mined = node.nonce(sender.address()).await;
    assert!(mined as usize >= receipted.len());
    let last = node
        .send_raw(&transfer(&sender, mined, to, U256::from(1u64)))
        .await
        .unwrap();
    node.receipt(last).await;
    let balance = node.balance(to, "latest").await;
    assert_eq!(balance, U256::from(mined + 1));
}
