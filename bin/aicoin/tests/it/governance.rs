//! Governance on a dev chain with short votes: a reward change proposed, voted and executed
//! with `aicoin gov`, paying the new reward from its execution block on; votes weighed by
//! snapshot balances, once per address; proposals below the quorum rejected; a treasury spend
//! paid to the wei; proposers without the balance refused.

use std::{path::Path, process::Stdio};

use aicoin_modules::governance::IGovernance;
use aicoin_primitives::{AIC, TREASURY_ADDRESS, modules::GOVERNANCE_ADDRESS};
use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent, SolValue};
use serde_json::{Value, json};

use crate::common::{DevNode, Rpc, aicoin, data_dir, tempdir};

/// 12 s at the dev node's 200 ms blocks (an emergency vote half that): room for `aicoin gov`,
/// which unlocks its wallet (scrypt at 2^18, about a second in a debug build, more on a loaded
/// machine) for each vote.
const VOTING_BLOCKS: u64 = 60;
const PASSWORD: &str = "correct horse battery";

fn aic(n: u64) -> U256 {
    AIC * U256::from(n)
}

fn dev(i: usize) -> PrivateKeySigner {
    aicoin_primitives::dev::dev_signers().unwrap()[i].clone()
}

/// A dev node whose genesis allocation (10.5M AIC) belongs to dev account 0, so it alone can
/// reach the quorum (10% of the supply); votes last [`VOTING_BLOCKS`] blocks.
async fn chain(dir: &Path) -> DevNode {
    let (validator, _) = aicoin_node::load_or_create_validator_key(dir).unwrap();
    let devs: Vec<Address> = (0..10).map(|i| dev(i).address()).collect();
    let mut spec = aicoin_primitives::ChainSpec::local(2108, validator.address(), &devs);
    spec.genesis.genesis_address = devs[0];
    spec.params
        .insert("votingBlocks".into(), U256::from(VOTING_BLOCKS));
    spec.params
        .insert("executionWindowBlocks".into(), U256::from(50u64));
    spec.params.insert(
        "emergencyVotingBlocks".into(),
        U256::from(VOTING_BLOCKS / 2),
    );
    DevNode::spawn(dir, |c| c.chain_spec = Some(spec)).await
}

/// `call` to the governance module with `eth_call` at `block`.
async fn view<C: SolCall>(rpc: &Rpc, call: C, block: &str) -> C::Return {
    let out: Bytes = rpc
        .ok(
            "eth_call",
            vec![
                json!({"to": GOVERNANCE_ADDRESS, "data": Bytes::from(call.abi_encode())}),
                block.into(),
            ],
        )
        .await;
    C::abi_decode_returns(&out).unwrap()
}

/// The revert reason of `call` sent by `from`.
async fn refusal(rpc: &Rpc, from: Address, call: impl SolCall) -> String {
    let err = rpc
        .rpc::<Bytes>(
            "eth_call",
            vec![json!({"from": from, "to": GOVERNANCE_ADDRESS, "data": Bytes::from(call.abi_encode())})],
        )
        .await
        .expect_err("the call reverts");
    err.message().to_string()
}

/// Sends `call` from a dev account with `eth_sendTransaction` (`from` written as given);
/// returns the receipt.
async fn send(rpc: &Rpc, from: &str, call: impl SolCall) -> Value {
    rpc.send_and_mine(json!({"from": from, "to": GOVERNANCE_ADDRESS,
        "data": Bytes::from(call.abi_encode()), "gas": "0x200000"}))
        .await
}

/// Sends `call` signed with `key` (any key: fees are zero); returns the receipt.
async fn send_signed(rpc: &Rpc, key: &PrivateKeySigner, call: impl SolCall) -> Value {
    let tx = TxLegacy {
        chain_id: Some(2108),
        nonce: rpc.nonce(key.address()).await,
        gas_price: 0,
        gas_limit: 2_000_000,
        to: TxKind::Call(GOVERNANCE_ADDRESS),
        value: U256::ZERO,
        input: call.abi_encode().into(),
    };
    let raw: Bytes = aicoin_primitives::sign_transaction(key, tx)
        .unwrap()
        .encoded_2718()
        .into();
    let hash = rpc.send_raw(&raw).await.unwrap();
    rpc.receipt(hash).await
}

async fn transfer(rpc: &Rpc, from: Address, to: Address, value: U256) {
    let receipt = rpc
        .send_and_mine(json!({"from": from, "to": to, "value": value}))
        .await;
    assert_eq!(receipt["status"], "0x1");
}

fn propose(kind: u8, payload: Vec<u8>) -> IGovernance::proposeCall {
    IGovernance::proposeCall {
        kind,
        payload: payload.into(),
        description: "test".into(),
    }
}

fn vote(id: u64, support: u8) -> IGovernance::voteCall {
    IGovernance::voteCall {
        proposalId: U256::from(id),
        support,
    }
}

fn execute(id: u64) -> IGovernance::executeCall {
    IGovernance::executeCall {
        proposalId: U256::from(id),
    }
}

async fn state(rpc: &Rpc, id: u64) -> u8 {
    view(
        rpc,
        IGovernance::stateCall {
            proposalId: U256::from(id),
        },
        "latest",
    )
    .await
}

/// Waits until voting on `id` has ended.
async fn vote_over(rpc: &Rpc, id: u64) {
    let end: U256 = view(
        rpc,
        IGovernance::proposalDeadlineCall {
            proposalId: U256::from(id),
        },
        "latest",
    )
    .await;
    let end: u64 = end.to();
    rpc.wait_until(|| async { rpc.block_number().await > end })
        .await;
}

async fn balance_change(rpc: &Rpc, account: Address, block: u64) -> U256 {
    let after = rpc.balance(account, &format!("{block:#x}")).await;
    let before = rpc.balance(account, &format!("{:#x}", block - 1)).await;
    after - before
}

/// `aicoin gov <args> --json` against `rpc` with the wallet in `home`; its JSON output, or
/// its stderr when it fails.
fn gov(home: &Path, rpc: &Rpc, args: &[&str]) -> Result<Value, String> {
    let wallet = home.join("wallet");
    let mut all = vec!["gov", "--wallet-dir", wallet.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    all.extend(["--rpc-url", &rpc.url]);
    let out = aicoin(home, &all)
        .env("AICOIN_WALLET_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(serde_json::from_slice(&out.stdout).unwrap()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reward_change_passes_by_vote_and_pays_from_its_execution_block() {
    let tmp = tempdir();
    let node = chain(&data_dir(&tmp)).await;
    node.wait_until(|| async { node.block_number().await >= 1 })
        .await;
    let home = tmp.path();
    import_dev0(home);

    let proposed = gov(
        home,
        &node,
        &[
            "propose",
            "param",
            "initialReward",
            "25aic",
            "--description",
            "Halve the reward",
        ],
    )
    .unwrap();
    assert_eq!(proposed["id"], 1);
    assert_eq!(proposed["state"], "Active");
    assert_eq!(
        proposed["action"],
        "set initialReward to 25000000000000000000"
    );
    assert_eq!(proposed["description"], "Halve the reward");
    let voted = gov(home, &node, &["vote", "1", "for"]).unwrap();
    let weight: U256 = voted["for"].as_str().unwrap().parse().unwrap();
    assert!(
        weight > aic(10_500_000),
        "dev 0's snapshot balance: {weight}"
    );
    let early = gov(home, &node, &["execute", "1"]).unwrap_err();
    assert!(early.contains("still being voted on"), "{early}");

    vote_over(&node, 1).await;
    assert_eq!(state(&node, 1).await, 4, "Passed");
    let executed = gov(home, &node, &["execute", "1"]).unwrap();
    assert_eq!(executed["state"], "Executed");
    let listed = gov(home, &node, &["list"]).unwrap();
    assert_eq!(listed[0]["state"], "Executed");

    // The block that executed it pays the new reward; the one before, the old.
    let logs: Vec<Value> = node
        .ok(
            "eth_getLogs",
            vec![json!({"address": GOVERNANCE_ADDRESS, "fromBlock": "0x0",
                "topics": [IGovernance::ProposalExecuted::SIGNATURE_HASH]})],
        )
        .await;
    let executed_at = u64::from_str_radix(
        logs[0]["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    node.wait_until(|| async { node.block_number().await > executed_at + 1 })
        .await;
    let miner: Address = node.handle.beneficiary();
    for (block, reward) in [
        (executed_at - 1, aic(50)),
        (executed_at, aic(25)),
        (executed_at + 1, aic(25)),
    ] {
        let treasury = balance_change(&node, TREASURY_ADDRESS, block).await;
        let mined = balance_change(&node, miner, block).await;
        assert_eq!(
            treasury,
            reward / U256::from(5u64),
            "block {block}: the treasury's 20%"
        );
        assert_eq!(mined, reward - treasury, "block {block}: the miner's 80%");
        let supply = |at: u64| {
            view(
                &node,
                IGovernance::supplyAtCall {
                    blockNumber: U256::from(at),
                },
                "latest",
            )
        };
        assert_eq!(supply(block).await - supply(block - 1).await, reward);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_weigh_snapshot_balances_once_per_address_and_need_the_quorum() {
    let tmp = tempdir();
    let node = chain(&data_dir(&tmp)).await;
    let (rich, one, two, three) = (dev(0), dev(1), dev(2), dev(3));
    let recipient = Address::repeat_byte(0x5e);
    let amount = aic(15) + AIC / U256::from(2u64);
    let spend = (recipient, amount).abi_encode();
    // The treasury earns 10 AIC a block: wait until it holds the spend.
    node.wait_until(|| async { node.block_number().await >= 3 })
        .await;

    // Proposal 1, by an account holding 10,000 AIC: only small holders vote on it.
    let receipt = send(&node, &one.address().to_string(), propose(1, spend.clone())).await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    // After the snapshot, account 2 moves almost everything to a fresh key, which then votes.
    let fresh = PrivateKeySigner::random();
    transfer(&node, two.address(), fresh.address(), aic(9_999)).await;
    let receipt = send_signed(&node, &fresh, vote(1, 1)).await;
    assert_eq!(
        receipt["status"], "0x0",
        "a key empty at the snapshot voted"
    );
    let empty = refusal(&node, fresh.address(), vote(1, 1)).await;
    assert!(
        empty.contains("held no AIC at proposal 1's snapshot"),
        "{empty}"
    );
    let receipt = send(&node, &two.address().to_string(), vote(1, 1)).await;
    assert_eq!(receipt["status"], "0x1");
    let votes = view(
        &node,
        IGovernance::proposalVotesCall {
            proposalId: U256::ONE,
        },
        "latest",
    )
    .await;
    assert_eq!(
        votes.forVotes,
        aic(10_000),
        "account 2 weighs its snapshot 10,000 AIC"
    );
    let snapshot: U256 = view(
        &node,
        IGovernance::proposalSnapshotCall {
            proposalId: U256::ONE,
        },
        "latest",
    )
    .await;
    let fresh_weight: U256 = view(
        &node,
        IGovernance::getVotesCall {
            account: fresh.address(),
            blockNumber: snapshot,
        },
        "latest",
    )
    .await;
    assert_eq!(fresh_weight, U256::ZERO);
    // One address in two letter cases is one voter.
    let lower = three.address().to_string().to_lowercase();
    let receipt = send(&node, &lower, vote(1, 0)).await;
    assert_eq!(receipt["status"], "0x1");
    let receipt = send(&node, &three.address().to_checksum(None), vote(1, 1)).await;
    assert_eq!(receipt["status"], "0x0", "a second vote was counted");
    let twice = refusal(&node, three.address(), vote(1, 1)).await;
    assert!(twice.contains("already voted on proposal 1"), "{twice}");

    // Proposal 2, the same spend, passed by the genesis holder.
    let receipt = send(&node, &rich.address().to_string(), propose(1, spend)).await;
    assert_eq!(receipt["status"], "0x1");
    let receipt = send(&node, &rich.address().to_string(), vote(2, 1)).await;
    assert_eq!(receipt["status"], "0x1");

    vote_over(&node, 2).await;
    assert_eq!(state(&node, 1).await, 3, "Rejected");
    let rejected = refusal(&node, rich.address(), execute(1)).await;
    assert!(
        rejected.contains("was rejected: its votes")
            && rejected.contains("did not reach the quorum"),
        "{rejected}"
    );
    let receipt = send(&node, &rich.address().to_string(), execute(2)).await;
    assert_eq!(receipt["status"], "0x1");
    let at = u64::from_str_radix(
        receipt["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(node.balance(recipient, "latest").await, amount);
    let before = node
        .balance(TREASURY_ADDRESS, &format!("{:#x}", at - 1))
        .await;
    let after = node.balance(TREASURY_ADDRESS, &format!("{at:#x}")).await;
    assert_eq!(
        after + amount,
        before + aic(10),
        "the spend, less the block's 20%"
    );

    // 999 AIC at the snapshot is too little to propose.
    let poor = PrivateKeySigner::random();
    transfer(&node, one.address(), poor.address(), aic(999)).await;
    let head = node.block_number().await;
    node.wait_until(|| async { node.block_number().await > head })
        .await;
    let refused = refusal(
        &node,
        poor.address(),
        propose(1, (recipient, AIC).abi_encode()),
    )
    .await;
    assert!(
        refused.contains("held 999000000000000000000 wei"),
        "{refused}"
    );
    let receipt = send_signed(&node, &poor, propose(1, (recipient, AIC).abi_encode())).await;
    assert_eq!(receipt["status"], "0x0");
    let count: U256 = view(&node, IGovernance::proposalCountCall {}, "latest").await;
    assert_eq!(count, U256::from(2u64));

    // No call runs as the system address, whose end-of-block steps the modules run unmetered.
    let system = aicoin_primitives::modules::SYSTEM_ADDRESS;
    let err = node
        .rpc::<Bytes>(
            "eth_call",
            vec![json!({"from": system, "to": GOVERNANCE_ADDRESS, "data": Bytes::from(vec![0xff; 32])})],
        )
        .await
        .expect_err("refused");
    assert_eq!(err.code(), -32602, "{err:?}");
    assert!(err.message().contains("system address"), "{err:?}");
}

/// Passes proposal `id` with `aicoin gov` (dev account 0's vote) and executes it.
async fn pass_with_cli(home: &Path, node: &Rpc, id: u64) {
    let id = id.to_string();
    gov(home, node, &["vote", &id, "for"]).unwrap();
    vote_over(node, id.parse().unwrap()).await;
    let executed = gov(home, node, &["execute", &id]).unwrap();
    assert_eq!(executed["state"], "Executed");
}

fn import_dev0(home: &Path) {
    let key = format!("0x{}", alloy_primitives::hex::encode(dev(0).to_bytes()));
    let wallet = home.join("wallet");
    let imported = aicoin(
        home,
        &[
            "wallet",
            "--wallet-dir",
            wallet.to_str().unwrap(),
            "import",
            "--private-key",
            &key,
        ],
    )
    .env("AICOIN_WALLET_PASSWORD", PASSWORD)
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
}

/// A provider's `register` of `models` from dev account `who`, with the 100 AIC stake.
async fn register(node: &Rpc, who: usize, models: &[&str]) -> Result<Bytes, String> {
    use aicoin_modules::registry::IComputeRegistry;
    let call = IComputeRegistry::registerCall {
        payout: dev(who).address(),
        apiUrl: "http://127.0.0.1:1".into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        hardware: 0,
    };
    let request = json!({"from": dev(who).address(), "to": aicoin_primitives::modules::REGISTRY_ADDRESS,
        "data": Bytes::from(call.abi_encode()), "value": aic(100)});
    match node.rpc::<Bytes>("eth_call", vec![request.clone()]).await {
        Err(e) => Err(e.message().to_string()),
        Ok(_) => {
            let receipt = node.send_and_mine(request).await;
            assert_eq!(receipt["status"], "0x1");
            Ok(Bytes::new())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_listed_by_governance_can_be_registered_and_delisted_ones_cannot() {
    let tmp = tempdir();
    let node = chain(&data_dir(&tmp)).await;
    node.wait_until(|| async { node.block_number().await >= 1 })
        .await;
    let home = tmp.path();
    import_dev0(home);
    let unlisted = register(&node, 1, &["tiny"]).await.unwrap_err();
    assert!(
        unlisted.contains("not on the chain's model list"),
        "{unlisted}"
    );

    let sha = format!("0x{}", "5a".repeat(32));
    let proposed = gov(
        home,
        &node,
        &[
            "propose",
            "model-add",
            "tiny",
            "--package",
            "tiny-llama==0.1",
            "--sha256",
            &sha,
            "--context-length",
            "256",
            "--units",
            "1",
        ],
    )
    .unwrap();
    assert_eq!(
        proposed["action"],
        "list model tiny (tiny-llama==0.1, 256 tokens of context, 1 units)"
    );
    pass_with_cli(home, &node, 1).await;
    register(&node, 1, &["tiny"]).await.unwrap();
    let providers: Vec<Value> = node.ok("aic_providers", vec![]).await;
    assert_eq!(providers[0]["models"], json!(["tiny"]));
    assert_eq!(providers[0]["suspended"], false);

    // An emergency suspends it: it leaves the measured set and cannot come back.
    let provider = dev(1).address().to_string();
    let proposed = gov(home, &node, &["propose", "suspend", &provider]).unwrap();
    assert_eq!(
        proposed["voteEnd"].as_u64().unwrap() - proposed["snapshot"].as_u64().unwrap(),
        VOTING_BLOCKS / 2,
        "emergencies are voted on for emergencyVotingBlocks"
    );
    pass_with_cli(home, &node, 2).await;
    let providers: Vec<Value> = node.ok("aic_providers", vec![]).await;
    assert_eq!(
        (&providers[0]["status"], &providers[0]["suspended"]),
        (&json!("leaving"), &json!(true))
    );

    gov(home, &node, &["propose", "model-remove", "tiny"]).unwrap();
    pass_with_cli(home, &node, 3).await;
    let delisted = register(&node, 2, &["tiny"]).await.unwrap_err();
    assert!(
        delisted.contains("not on the chain's model list"),
        "{delisted}"
    );
    let last = gov(
        home,
        &node,
        &["propose", "model-remove", "smollm2-135m-instruct"],
    )
    .unwrap_err();
    assert!(last.contains("last listed text model"), "{last}");
}

/// A real node process on a chain with short votes (the spec of [`chain`]), with a sync port.
async fn chain_process(home: &Path, sync_port: u16) -> crate::common::NodeProcess {
    let data = home.join("data");
    let (validator, _) = aicoin_node::load_or_create_validator_key(&data).unwrap();
    let devs: Vec<Address> = (0..10).map(|i| dev(i).address()).collect();
    let mut spec = aicoin_primitives::ChainSpec::local(2108, validator.address(), &devs);
    spec.genesis.genesis_address = devs[0];
    spec.params
        .insert("votingBlocks".into(), U256::from(VOTING_BLOCKS));
    let path = home.join("chain.json");
    std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    crate::common::NodeProcess::start(aicoin(
        home,
        &[
            "node",
            "--chain",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--rpc-port",
            "0",
            "--sync-port",
            &sync_port.to_string(),
            "--block-interval",
            "0.2",
            "--no-api",
        ],
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_node_shows_the_upgrade_governance_signals() {
    let tmp = tempdir();
    let home = tmp.path();
    let sync_port = crate::cluster::free_port();
    let node = chain_process(home, sync_port).await;
    node.wait_until(|| async { node.block_number().await >= 1 })
        .await;
    import_dev0(home);
    let activation = node.block_number().await + 3 * VOTING_BLOCKS;
    let at = activation.to_string();
    let proposed = gov(
        home,
        &node,
        &["propose", "upgrade", "99.0.0", "--activation-block", &at],
    )
    .unwrap();
    assert_eq!(
        proposed["action"],
        format!("signal protocol v99.0.0 from block {activation}")
    );
    let upgrade: Value = node.ok("aic_upgrade", vec![]).await;
    assert_eq!(
        upgrade["behind"], false,
        "nothing scheduled before execution"
    );
    pass_with_cli(home, &node, 1).await;

    let told = node
        .wait_for_stderr("governance scheduled protocol v99.0.0")
        .await;
    assert!(
        told.contains(&format!(
            "from block {activation}; this node runs v{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{told}"
    );
    let upgrade: Value = node.ok("aic_upgrade", vec![]).await;
    assert_eq!(
        upgrade,
        json!({"nodeVersion": env!("CARGO_PKG_VERSION"), "version": "99.0.0",
            "activationBlock": activation, "behind": true, "active": false})
    );
    let status: Value = reqwest::get(format!("http://127.0.0.1:{sync_port}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        status["upgrade"],
        json!({"version": "99.0.0", "activation_block": activation})
    );
    // Once the activation block is reached, the node says it is behind.
    node.wait_for_stderr("protocol v99.0.0 is the chain's since block")
        .await;
    let upgrade: Value = node.ok("aic_upgrade", vec![]).await;
    assert_eq!(upgrade["active"], true);
}
