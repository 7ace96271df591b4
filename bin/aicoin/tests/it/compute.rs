//! Proof-of-compute with real processes: three validators (a raft cluster) probe and audit
//! three providers (full nodes with `--provide`) on the tiny model, epoch after epoch. Two
//! providers are honest; the third serves other random weights under the same model id. The
//! rewards, the slash and the treasury's share are checked to the wei against the on-chain
//! reports; then a provider stops answering and comes back, and a validator dies.

use std::path::{Path, PathBuf};

use aicoin_modules::registry::IComputeRegistry::{self, EpochRecord, Measurement};
use aicoin_primitives::{AIC, TREASURY_ADDRESS, modules::REGISTRY_ADDRESS};
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use serde_json::{Value, json};

use crate::{
    cluster::{eventually, free_port, one_cluster_at_a_time, validator_key},
    common::{NodeProcess, Rpc, aicoin},
};

const EPOCH_BLOCKS: u64 = 10;
/// The node share of one block: 80% of the 50 AIC reward.
const NODE_SHARE_AIC: u64 = 40;

/// `<root>/tiny/model.gguf`: the tiny model with `seed`'s random weights, found as `tiny`.
fn models_dir(root: &Path, seed: u64) -> PathBuf {
    std::fs::create_dir_all(root.join("tiny")).unwrap();
    aicoin_inference::testing::write_tiny_llama(&root.join("tiny/model.gguf"), seed).unwrap();
    root.to_path_buf()
}

/// The network's processes and how to restart them.
struct Network {
    home: PathBuf,
    validator_args: Vec<Vec<String>>,
    provider_args: Vec<Vec<String>>,
    providers: Vec<Address>,
}

impl Network {
    fn prepare(home: &Path, honest: &Path, cheat: &Path) -> Self {
        let dir = home.join("devnet");
        let out = aicoin(
            home,
            &[
                "devnet",
                "--validators",
                "3",
                "--providers",
                "3",
                "--epoch-blocks",
                &EPOCH_BLOCKS.to_string(),
                "--models-dir",
                honest.to_str().unwrap(),
                "--dir",
                dir.to_str().unwrap(),
                "--prepare",
            ],
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let prepared: Value = serde_json::from_slice(&out.stdout).unwrap();
        let spec = PathBuf::from(prepared["chain_spec"].as_str().unwrap());
        let sync_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let spec_arg = spec.to_str().unwrap().to_string();
        let validator_args = (0..3)
            .map(|i| {
                let data_dir = dir.join(format!("node-{}", i + 1));
                let peers: Vec<Value> = (0..3)
                    .filter(|j| *j != i)
                    .map(|j| json!({"node_id": format!("node-{}", j + 1), "host": "127.0.0.1",
                        "sync_port": sync_ports[j], "rpc_port": 0, "role": "validator",
                        "priority": j + 1}))
                    .collect();
                strings(&[
                    "node", "--chain", &spec_arg, "--data-dir", data_dir.to_str().unwrap(),
                    "--rpc-port", "0", "--no-api", "--block-interval", "0.5", "--role",
                    "validator", "--sync-port", &sync_ports[i].to_string(), "--admin-port",
                    &free_port().to_string(), "--node-id", &format!("node-{}", i + 1),
                    "--priority", &(i + 1).to_string(), "--peers",
                    &serde_json::to_string(&peers).unwrap(), "--models-dir",
                    honest.to_str().unwrap(),
                ])
            })
            .collect();
        let bootnodes: Vec<String> = sync_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let mut providers = Vec::new();
        let provider_args = (0..3)
            .map(|i| {
                let data_dir = dir.join(format!("provider-{}", i + 1));
                providers.push(validator_key(&data_dir).address());
                let models = if i == 2 { cheat } else { honest };
                strings(&[
                    "node", "--chain", &spec_arg, "--data-dir", data_dir.to_str().unwrap(),
                    "--role", "full", "--bootnodes", &bootnodes.join(","), "--rpc-port", "0",
                    "--api-port", &free_port().to_string(), "--block-interval", "0.5",
                    "--provide", "--models-dir", models.to_str().unwrap(),
                ])
            })
            .collect();
        Self {
            home: home.to_path_buf(),
            validator_args,
            provider_args,
            providers,
        }
    }

    async fn start(&self, args: &[String]) -> NodeProcess {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        NodeProcess::start(aicoin(&self.home, &args)).await
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `call` to the registry with `eth_call` at `block`.
async fn view<C: SolCall>(rpc: &Rpc, call: C, block: u64) -> C::Return {
    let out: alloy_primitives::Bytes = rpc
        .ok(
            "eth_call",
            vec![
                json!({"to": REGISTRY_ADDRESS, "data": alloy_primitives::Bytes::from(call.abi_encode())}),
                format!("{block:#x}").into(),
            ],
        )
        .await;
    C::abi_decode_returns(&out).unwrap()
}

async fn provider_list(rpc: &Rpc) -> Vec<Value> {
    rpc.ok("aic_providers", vec![]).await
}

async fn epoch(rpc: &Rpc) -> (u64, u64) {
    let e: Value = rpc.ok("aic_epoch", vec![]).await;
    (e["epoch"].as_u64().unwrap(), e["lastBlock"].as_u64().unwrap())
}

/// The block whose end settles `epoch`: the last block of the next epoch.
async fn settlement_block(rpc: &Rpc, epoch: u64) -> u64 {
    let (current, last) = self::epoch(rpc).await;
    last - (current - epoch - 1) * EPOCH_BLOCKS
}

/// Waits until `epoch` is settled; returns each provider's record and the settlement block.
async fn settled(rpc: &Rpc, providers: &[Address], epoch: u64) -> (Vec<EpochRecord>, u64) {
    eventually(&format!("epoch {epoch} settled"), || async {
        let (current, _) = self::epoch(rpc).await;
        (current >= epoch + 2).then_some(())
    })
    .await;
    let at = settlement_block(rpc, epoch).await;
    let mut records = Vec::new();
    for p in providers {
        records.push(
            view(rpc, IComputeRegistry::epochRecordCall { account: *p, epoch }, at).await,
        );
    }
    (records, at)
}

/// Per figure, the median of the reports, as the module takes it.
fn median_of(reports: &[Measurement]) -> (u64, u64, u64, u64) {
    let median = |mut v: Vec<u64>| {
        v.sort();
        match v.len() % 2 {
            1 => v[v.len() / 2],
            _ => (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2,
        }
    };
    (
        median(reports.iter().map(|r| r.tokens).collect()),
        median(reports.iter().map(|r| r.rate).collect()),
        median(reports.iter().map(|r| r.auditFailed as u64).collect()),
        median(reports.iter().map(|r| r.answered as u64).collect()),
    )
}

/// Checks a settled epoch against the reports and balances on chain, to the wei: the medians,
/// the relative parts, each reward (pot × score / total), the payouts, the slash and the
/// treasury's 20%.
async fn check_epoch(rpc: &Rpc, providers: &[Address], epoch: u64) -> Vec<EpochRecord> {
    let (records, at) = settled(rpc, providers, epoch).await;
    let reporters = view(rpc, IComputeRegistry::reportersCall { epoch }, at).await;
    let mut medians = Vec::new();
    for (p, record) in providers.iter().zip(&records) {
        let mut reports = Vec::new();
        for v in &reporters {
            let report = view(
                rpc,
                IComputeRegistry::reportCall { epoch, validator: *v, account: *p },
                at,
            )
            .await;
            if report.jobs > 0 {
                reports.push(report);
            }
        }
        assert_eq!(record.reporters as usize, reports.len());
        let m = median_of(&reports);
        assert_eq!(
            (record.median.tokens, record.median.rate, record.median.auditFailed as u64),
            (m.0, m.1, m.2),
            "epoch {epoch}: the record holds the reports' medians"
        );
        medians.push(m);
    }
    let passed: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].reporters > 0 && !records[i].auditFailed)
        .collect();
    let most_tokens = passed.iter().map(|&i| medians[i].0).max().unwrap_or(0);
    let best_rate = passed.iter().map(|&i| medians[i].1).max().unwrap_or(0);
    for &i in &passed {
        assert_eq!(records[i].utilization, medians[i].0 * 10_000 / most_tokens);
        assert_eq!(records[i].throughput, medians[i].1 * 10_000 / best_rate);
        let r = &records[i];
        let weighted = (3_000 * r.utilization + 3_000 * r.throughput + 2_000 * r.uptime
            + 2_000 * r.completion)
            / 10_000;
        // A provider that answered under half its jobs was down and earns nothing.
        let up = 2 * r.median.answered >= r.median.jobs;
        let expected = if up { weighted * 3_000 / 10_000 } else { 0 };
        assert_eq!(r.score, expected, "epoch {epoch}: provider {i}'s score ({:?})", (r.median.jobs, r.median.answered));
    }
    // The pot: the epoch's blocks' node shares (plus the previous epoch's rounding dust).
    let pot = view(rpc, IComputeRegistry::epochPotCall { epoch }, at - 1).await;
    let share = AIC * U256::from(NODE_SHARE_AIC);
    assert!(pot >= share * U256::from(EPOCH_BLOCKS) && pot < share * U256::from(EPOCH_BLOCKS + 1));
    let total: u64 = records.iter().map(|r| r.score).sum();
    let mut slashed = U256::ZERO;
    for (p, r) in providers.iter().zip(&records) {
        let expected = match total {
            0 => U256::ZERO,
            _ => pot * U256::from(r.score) / U256::from(total),
        };
        assert_eq!(r.reward, expected, "epoch {epoch}: reward of {p}");
        let before = rpc.balance(*p, &format!("{:#x}", at - 1)).await;
        let after = rpc.balance(*p, &format!("{at:#x}")).await;
        assert_eq!(after - before, r.reward, "epoch {epoch}: {p} was paid its reward");
        slashed += r.slashed;
    }
    let before = rpc.balance(TREASURY_ADDRESS, &format!("{:#x}", at - 1)).await;
    let after = rpc.balance(TREASURY_ADDRESS, &format!("{at:#x}")).await;
    assert_eq!(
        after - before,
        AIC * U256::from(10u64) + slashed,
        "the treasury got 20% of the block's 50 AIC, and the slash"
    );
    records
}

/// The first epoch every provider was measured in.
async fn first_measured_epoch(rpc: &Rpc, count: usize) -> u64 {
    eventually("every provider registered", || async {
        let list = provider_list(rpc).await;
        (list.len() == count && list.iter().all(|p| p["status"] == "active")).then_some(())
    })
    .await;
    // Registered now: probed from the next epoch on.
    epoch(rpc).await.0 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_measured_audited_and_paid_by_score() {
    let _cluster = one_cluster_at_a_time().await;
    let home = tempfile::tempdir().unwrap();
    let honest = models_dir(&home.path().join("models"), 3);
    let cheat = models_dir(&home.path().join("cheat"), 4);
    let net = Network::prepare(home.path(), &honest, &cheat);
    let mut validators = Vec::new();
    for args in &net.validator_args {
        validators.push(net.start(args).await);
    }
    let mut providers = Vec::new();
    for args in &net.provider_args {
        providers.push(net.start(args).await);
    }
    let third = validators.pop().unwrap();
    let rpc = &*validators[0];
    let first = first_measured_epoch(rpc, 3).await;
    let stake = AIC * U256::from(100u64);

    // Two epochs: the honest two are scored and paid, the cheater fails its audits.
    for epoch in [first, first + 1] {
        let records = check_epoch(rpc, &net.providers, epoch).await;
        for honest in &records[..2] {
            assert!(honest.score > 0 && !honest.auditFailed, "epoch {epoch}: {:?}", honest.score);
            assert_eq!(honest.reporters, 3);
            assert!(honest.median.audited > 0);
        }
        let cheater = &records[2];
        assert!(cheater.auditFailed, "epoch {epoch}: the cheater passed its audits");
        assert_eq!(cheater.score, 0);
        assert!(!cheater.slashed.is_zero());
    }
    let list = provider_list(rpc).await;
    let cheater = &list[2];
    assert_eq!(cheater["auditFailures"], 2);
    let first_slash = stake / U256::from(10u64);
    let second_slash = (stake - first_slash) / U256::from(10u64);
    let left: U256 = cheater["stake"].as_str().unwrap().parse().unwrap();
    assert_eq!(left, stake - first_slash - second_slash);

    // Provider 2 stops answering: it loses uptime and completion, and its share falls.
    let before = check_epoch(rpc, &net.providers, first + 2).await;
    let stopped = providers.remove(1);
    stopped.kill9();
    let down_epoch = epoch(rpc).await.0 + 1;
    let down = check_epoch(rpc, &net.providers, down_epoch).await;
    assert_eq!(down[1].median.answered, 0, "the stopped provider answered");
    assert_eq!(down[1].score, 0);
    assert_eq!(down[1].uptime, 0);
    assert!(down[1].completion < before[1].completion);
    assert!(down[0].reward > before[0].reward, "the other honest provider took the share");
    // Restarted, it answers again and earns.
    providers.insert(1, net.start(&net.provider_args[1]).await);
    let back_epoch = epoch(rpc).await.0 + 1;
    let back = check_epoch(rpc, &net.providers, back_epoch).await;
    assert!(back[1].score > 0, "the restarted provider recovered");

    // A validator dies: scoring goes on, on the median of the other two.
    third.kill9();
    let after_epoch = epoch(rpc).await.0 + 1;
    let after = check_epoch(rpc, &net.providers, after_epoch).await;
    assert_eq!(after[0].reporters, 2);
    assert!(after[0].score > 0 && after[1].score > 0);
    assert!(after[2].auditFailed);
}
