//! Every kind of bad transaction and request gets a clear JSON-RPC error with the standard code;
//! none panics the node or is silently accepted.

use std::{
    io::{Read, Write},
    net::TcpStream,
};

use alloy_consensus::{SignableTransaction, Signed, TxEip4844, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

use crate::common::*;

async fn expect_error(node: &Rpc, raw: &Bytes, code: i32, fragment: &str) {
    let err = node.send_raw(raw).await.expect_err(fragment);
    assert_eq!(err.code(), code, "{fragment}: got {err:?}");
    assert!(
        err.message().contains(fragment),
        "expected {fragment:?} in {:?}",
        err.message()
    );
}

/// POSTs `body` as-is and returns the response body.
fn raw_post(url: &str, body: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactions_and_requests_get_clear_errors() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |_| {}).await;
    let dev = dev_key(0);
    let to = Address::repeat_byte(0x22);
    let one = U256::from(1u64);

    // Malformed encodings are invalid params.
    expect_error(
        &node,
        &Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
        -32602,
        "invalid transaction encoding",
    )
    .await;
    expect_error(&node, &Bytes::new(), -32602, "invalid transaction encoding").await;
    let err = node
        .rpc::<B256>("eth_sendRawTransaction", vec!["0xzz".into()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), -32602);

    // A signature that recovers to no one.
    let tx = TxLegacy {
        chain_id: Some(2108),
        nonce: 0,
        gas_price: 0,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: one,
        input: Bytes::new(),
    };
    let bad_sig = Signature::new(U256::ZERO, U256::from(1u64), false);
    let forged = TxEnvelope::Legacy(Signed::new_unchecked(
        tx.clone(),
        bad_sig,
        tx.signature_hash(),
    ));
    expect_error(
        &node,
        &forged.encoded_2718().into(),
        -32000,
        "invalid sender",
    )
    .await;

    // Replay protection and chain id.
    expect_error(
        &node,
        &legacy(&dev, 1, 0, to, one, 21_000),
        -32000,
        "invalid chain id",
    )
    .await;
    let pre155 = TxLegacy {
        chain_id: None,
        ..tx.clone()
    };
    let sig = dev.sign_hash_sync(&pre155.signature_hash()).unwrap();
    expect_error(
        &node,
        &TxEnvelope::Legacy(pre155.into_signed(sig))
            .encoded_2718()
            .into(),
        -32000,
        "replay-protected",
    )
    .await;

    // Nonces: too low once one is mined, too high beyond the gap limit.
    let first = node.send_raw(&transfer(&dev, 0, to, one)).await.unwrap();
    node.receipt(first).await;
    expect_error(&node, &transfer(&dev, 0, to, one), -32000, "nonce too low").await;
    expect_error(
        &node,
        &transfer(&dev, 1_000, to, one),
        -32000,
        "nonce too high",
    )
    .await;

    // Value beyond the balance (fees are zero, so only the value counts).
    let pauper = PrivateKeySigner::random();
    expect_error(
        &node,
        &transfer(&pauper, 0, to, one),
        -32000,
        "insufficient funds",
    )
    .await;

    // Gas: above the block limit, above the per-transaction cap, below the intrinsic cost.
    expect_error(
        &node,
        &legacy(&dev, 2108, 1, to, one, 31_000_000),
        -32000,
        "exceeds block gas limit",
    )
    .await;
    expect_error(
        &node,
        &legacy(&dev, 2108, 1, to, one, 20_000_000),
        -32000,
        "transaction gas limit too high",
    )
    .await;
    expect_error(
        &node,
        &legacy(&dev, 2108, 1, to, one, 20_000),
        -32000,
        "intrinsic gas too low",
    )
    .await;

    // Oversized: 129 KiB of calldata.
    let big = TxLegacy {
        nonce: 1,
        gas_limit: 10_000_000,
        input: Bytes::from(vec![1u8; 129 * 1024]),
        ..tx.clone()
    };
    let sig = dev.sign_hash_sync(&big.signature_hash()).unwrap();
    expect_error(
        &node,
        &TxEnvelope::Legacy(big.into_signed(sig))
            .encoded_2718()
            .into(),
        -32000,
        "oversized data",
    )
    .await;

    // Blob transactions are refused by type.
    let blob = TxEip4844 {
        chain_id: 2108,
        nonce: 1,
        gas_limit: 21_000,
        max_fee_per_gas: 0,
        max_priority_fee_per_gas: 0,
        to,
        value: one,
        access_list: Default::default(),
        blob_versioned_hashes: vec![B256::repeat_byte(1)],
        max_fee_per_blob_gas: 1,
        input: Bytes::new(),
    };
    let sig = dev.sign_hash_sync(&blob.signature_hash()).unwrap();
    let blob: TxEnvelope = blob.into_signed(sig).into();
    expect_error(
        &node,
        &blob.encoded_2718().into(),
        -32000,
        "blob transactions are not accepted",
    )
    .await;

    // Protocol errors.
    let err = node
        .rpc::<String>("eth_noSuchMethod", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code(), -32601);
    assert!(raw_post(&node.url, "{\"jsonrpc\":\"2.0\",\"id\":1,").contains("-32700"));
    assert!(raw_post(&node.url, "{\"id\":1}").contains("-32600"));

    // None of it was accepted, and the node still works.
    let pool: U256 = node
        .ok(
            "eth_getTransactionCount",
            vec![dev.address().to_string().into(), "pending".into()],
        )
        .await;
    assert_eq!(pool, U256::from(1u64));
    let ok = node.send_raw(&transfer(&dev, 1, to, one)).await.unwrap();
    node.receipt(ok).await;
    assert_eq!(node.balance(to, "latest").await, U256::from(2u64));
}
