//! The `eth_` namespace beyond the basics, against a real `--dev` node: blocks and transactions
//! by index, block receipts, logs with OR-sets and a range cap, polling filters, EIP-1186 proofs
//! checked against the state root, access lists, call overrides, revert data, and signing with
//! the unlocked dev accounts (and refusing any other account).

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolError, SolEvent, sol};
use alloy_trie::{Nibbles, proof::verify_proof};
use serde_json::{Value, json};

use crate::common::*;

sol! {
    function set(uint256 v) external;
    function value() external view returns (uint256);
    function fail(string reason) external pure;
    function onlyOwner() external view;
    function context() external view returns (uint256 number, uint256 timestamp, uint256 chainId, uint256 basefee, address coinbase);
    event ValueSet(address indexed by, uint256 indexed previous, uint256 value);
    error Unauthorized(address caller);
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    alloy_primitives::hex::encode_prefixed(bytes)
}

fn quantity(n: u64) -> String {
    format!("{n:#x}")
}

async fn set_value(node: &Rpc, probe: Address, from: Address, v: u64) -> Value {
    let data = setCall { v: U256::from(v) }.abi_encode();
    let receipt = node
        .send_and_mine(json!({ "from": from, "to": probe, "data": hex(data) }))
        .await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    receipt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_logs_filters_and_signing() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| c.rpc_limits.max_logs_range = 20).await;
    let (alice, bob) = (dev_key(0).address(), dev_key(1).address());

    let accounts: Vec<Address> = node.ok("eth_accounts", vec![]).await;
    assert_eq!(accounts.len(), 10);
    assert_eq!(accounts[0], alice);

    let probe = node.deploy("Probe").await;
    let logs_filter: U256 = node
        .ok(
            "eth_newFilter",
            vec![json!({ "fromBlock": "0x1", "address": probe })],
        )
        .await;
    let first = set_value(&node, probe, alice, 7).await;
    let second = set_value(&node, probe, bob, 9).await;

    // Blocks and transactions by number, hash and index agree with the receipt.
    let block_hash = first["blockHash"].clone();
    let block_number = first["blockNumber"].clone();
    let index = first["transactionIndex"].clone();
    let by_number: Value = node
        .ok(
            "eth_getTransactionByBlockNumberAndIndex",
            vec![block_number.clone(), index.clone()],
        )
        .await;
    let by_hash: Value = node
        .ok(
            "eth_getTransactionByBlockHashAndIndex",
            vec![block_hash.clone(), index],
        )
        .await;
    assert_eq!(by_number["hash"], first["transactionHash"]);
    assert_eq!(by_hash, by_number);
    let count: U256 = node
        .ok(
            "eth_getBlockTransactionCountByHash",
            vec![block_hash.clone()],
        )
        .await;
    assert!(count >= U256::from(1));
    let uncles: U256 = node
        .ok("eth_getUncleCountByBlockNumber", vec![block_number.clone()])
        .await;
    assert_eq!(uncles, U256::ZERO);
    let receipts: Vec<Value> = node.ok("eth_getBlockReceipts", vec![block_number]).await;
    assert!(receipts.contains(&first));
    let missing: Value = node
        .ok(
            "eth_getTransactionByBlockHashAndIndex",
            vec![block_hash, json!("0x99")],
        )
        .await;
    assert!(missing.is_null());

    // Logs: topic OR-sets, a blockHash query, and the range cap.
    let topic0 = json!(hex(ValueSet::SIGNATURE_HASH));
    let by = |a: Address| json!(hex(B256::left_padding_from(a.as_slice())));
    let logs: Vec<Value> = node
        .ok(
            "eth_getLogs",
            vec![json!({
                "fromBlock": first["blockNumber"], "toBlock": second["blockNumber"], "address": [probe],
                "topics": [topic0, [by(alice), by(bob)]],
            })],
        )
        .await;
    assert_eq!(logs.len(), 2);
    let only_bob: Vec<Value> = node
        .ok(
            "eth_getLogs",
            vec![json!({ "fromBlock": first["blockNumber"], "topics": [null, by(bob)] })],
        )
        .await;
    assert_eq!(only_bob.len(), 1);
    assert_eq!(only_bob[0]["transactionHash"], second["transactionHash"]);
    let at_block: Vec<Value> = node
        .ok(
            "eth_getLogs",
            vec![json!({ "blockHash": second["blockHash"], "address": probe })],
        )
        .await;
    assert_eq!(at_block, only_bob);
    // Polling filters: the log filter installed before the two calls reports both, then only
    // what is new; block and pending-transaction filters report what happened since.
    let changes: Vec<Value> = node
        .ok("eth_getFilterChanges", vec![json!(logs_filter)])
        .await;
    assert_eq!(changes.len(), 2);
    let blocks_filter: U256 = node.ok("eth_newBlockFilter", vec![]).await;
    let pending_filter: U256 = node.ok("eth_newPendingTransactionFilter", vec![]).await;
    let third = set_value(&node, probe, alice, 11).await;
    let changes: Vec<Value> = node
        .ok("eth_getFilterChanges", vec![json!(logs_filter)])
        .await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["transactionHash"], third["transactionHash"]);
    let all: Vec<Value> = node.ok("eth_getFilterLogs", vec![json!(logs_filter)]).await;
    assert_eq!(all.len(), 3);
    let new_blocks: Vec<B256> = node
        .ok("eth_getFilterChanges", vec![json!(blocks_filter)])
        .await;
    assert!(new_blocks.iter().any(|h| json!(h) == third["blockHash"]));
    let pending: Vec<B256> = node
        .ok("eth_getFilterChanges", vec![json!(pending_filter)])
        .await;
    assert!(pending.iter().any(|h| json!(h) == third["transactionHash"]));
    let removed: bool = node
        .ok("eth_uninstallFilter", vec![json!(logs_filter)])
        .await;
    assert!(removed);
    let err = node
        .rpc::<Value>("eth_getFilterChanges", vec![json!(logs_filter)])
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (-32000, "filter not found"));

    // Signing with dev keys recovers to the dev address; other accounts are refused.
    let signature: Bytes = node
        .ok("personal_sign", vec![json!(hex(b"hello")), json!(alice)])
        .await;
    let signature = alloy_primitives::Signature::try_from(signature.as_ref()).unwrap();
    assert_eq!(signature.recover_address_from_msg(b"hello").unwrap(), alice);
    let eth_sign: Bytes = node
        .ok("eth_sign", vec![json!(alice), json!(hex(b"hello"))])
        .await;
    assert_eq!(eth_sign.as_ref(), signature.as_bytes());
    let stranger = Address::repeat_byte(0x77);
    for (method, params) in [
        ("eth_sign", vec![json!(stranger), json!("0x00")]),
        (
            "eth_sendTransaction",
            vec![json!({ "from": stranger, "to": alice })],
        ),
    ] {
        let err = node.rpc::<Value>(method, params).await.unwrap_err();
        assert_eq!(err.code(), -32000, "{method}: {err:?}");
        assert!(
            err.message().contains("unknown account"),
            "{method}: {err:?}"
        );
    }
    let typed = json!({
        "types": {
            "EIP712Domain": [{ "name": "name", "type": "string" }, { "name": "chainId", "type": "uint256" }],
            "Mail": [{ "name": "to", "type": "address" }, { "name": "contents", "type": "string" }],
        },
        "primaryType": "Mail",
        "domain": { "name": "AICoin", "chainId": 2108 },
        "message": { "to": bob, "contents": "hi" },
    });
    let signed: Bytes = node
        .ok("eth_signTypedData_v4", vec![json!(alice), typed.clone()])
        .await;
    let data: alloy_dyn_abi::TypedData = serde_json::from_value(typed).unwrap();
    let hash = data.eip712_signing_hash().unwrap();
    let signature = alloy_primitives::Signature::try_from(signed.as_ref()).unwrap();
    assert_eq!(
        signature.recover_address_from_prehash(&hash).unwrap(),
        alice
    );

    // The range cap (20 blocks on this node) is a clear error, as is an inverted range.
    node.wait_until(|| async { node.block_number().await > 20 })
        .await;
    let err = node
        .rpc::<Value>(
            "eth_getLogs",
            vec![json!({ "fromBlock": "0x0", "toBlock": "latest" })],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), -32005, "{err:?}");
    assert!(err.message().contains("block range too large"), "{err:?}");
    let err = node
        .rpc::<Value>(
            "eth_getLogs",
            vec![json!({ "fromBlock": "0x9", "toBlock": "0x2" })],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), -32602, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_calls_overrides_and_access_lists() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |_| {}).await;
    let alice = dev_key(0).address();
    let probe = node.deploy("Probe").await;
    set_value(&node, probe, alice, 42).await;

    // EIP-1186: the account and slot 0 verify against the header's state root. Proofs are for
    // the head, so read both at one height (retrying if a block lands in between).
    let slot = B256::ZERO;
    let (proof, state_root) = loop {
        let n = node.block_number().await;
        let block: Value = node
            .ok(
                "eth_getBlockByNumber",
                vec![json!(quantity(n)), json!(false)],
            )
            .await;
        match node
            .rpc::<Value>(
                "eth_getProof",
                vec![json!(probe), json!([slot]), json!(quantity(n))],
            )
            .await
        {
            Ok(proof) => break (proof, block["stateRoot"].as_str().unwrap().parse().unwrap()),
            Err(e) if e.message().contains("latest block") => continue,
            Err(e) => panic!("eth_getProof: {e:?}"),
        }
    };
    let account = alloy_trie::TrieAccount {
        nonce: serde_json::from_value::<U256>(proof["nonce"].clone())
            .unwrap()
            .to(),
        balance: serde_json::from_value(proof["balance"].clone()).unwrap(),
        storage_root: serde_json::from_value(proof["storageHash"].clone()).unwrap(),
        code_hash: serde_json::from_value(proof["codeHash"].clone()).unwrap(),
    };
    let nodes: Vec<Bytes> = serde_json::from_value(proof["accountProof"].clone()).unwrap();
    verify_proof(
        state_root,
        Nibbles::unpack(keccak256(probe)),
        Some(alloy_rlp::encode(account)),
        &nodes,
    )
    .unwrap();
    let storage = &proof["storageProof"][0];
    assert_eq!(storage["value"], "0x2a");
    let nodes: Vec<Bytes> = serde_json::from_value(storage["proof"].clone()).unwrap();
    verify_proof(
        account.storage_root,
        Nibbles::unpack(keccak256(slot)),
        Some(alloy_rlp::encode(U256::from(42))),
        &nodes,
    )
    .unwrap();
    let old = node
        .rpc::<Value>("eth_getProof", vec![json!(probe), json!([]), json!("0x1")])
        .await
        .unwrap_err();
    assert_eq!(old.code(), -32602, "{old:?}");

    // State and block overrides change what a call sees, not the chain.
    let call = |data: Vec<u8>| json!({ "to": probe, "data": hex(data) });
    let overridden: Bytes = node
        .ok(
            "eth_call",
            vec![
                call(valueCall {}.abi_encode()),
                json!("latest"),
                json!({ probe.to_string(): { "stateDiff": { hex(slot): hex(B256::with_last_byte(5)) } } }),
            ],
        )
        .await;
    assert_eq!(U256::from_be_slice(&overridden), U256::from(5));
    let context: Bytes = node
        .ok(
            "eth_call",
            vec![
                call(contextCall {}.abi_encode()),
                json!("latest"),
                json!(null),
                json!({ "number": "0x3039" }),
            ],
        )
        .await;
    let context = contextCall::abi_decode_returns(&context).unwrap();
    assert_eq!(context.number, U256::from(12345));
    assert_eq!(context.chainId, U256::from(2108));
    assert_eq!(context.basefee, U256::ZERO);
    let value: Bytes = node
        .ok("eth_call", vec![call(valueCall {}.abi_encode())])
        .await;
    assert_eq!(U256::from_be_slice(&value), U256::from(42));

    // Reverts carry their data with code 3, as geth: reason strings and custom errors.
    let err = node
        .rpc::<Bytes>(
            "eth_call",
            vec![call(
                failCall {
                    reason: "boom".into(),
                }
                .abi_encode(),
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), 3);
    assert_eq!(err.message(), "execution reverted: boom");
    let err = node
        .rpc::<Bytes>(
            "eth_call",
            vec![json!({ "from": dev_key(1).address(), "to": probe, "data": hex(onlyOwnerCall {}.abi_encode()) })],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), 3);
    let data: Bytes = serde_json::from_str(err.data().unwrap().get()).unwrap();
    let decoded = Unauthorized::abi_decode(&data).unwrap();
    assert_eq!(decoded.caller, dev_key(1).address());
    let err = node
        .rpc::<U256>(
            "eth_estimateGas",
            vec![call(
                failCall {
                    reason: "no".into(),
                }
                .abi_encode(),
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), 3);

    // The access list of a storage write names the contract and the slot.
    let list: Value = node
        .ok(
            "eth_createAccessList",
            vec![json!({ "from": alice, "to": probe, "data": hex(setCall { v: U256::from(1) }.abi_encode()) })],
        )
        .await;
    assert_eq!(
        list["accessList"][0]["address"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        probe
    );
    assert_eq!(list["accessList"][0]["storageKeys"][0], json!(slot));
    assert!(list.get("error").is_none(), "{list}");
    assert!(serde_json::from_value::<U256>(list["gasUsed"].clone()).unwrap() > U256::from(21_000));
}
