use aicoin_primitives::{
    AIC, Params,
    modules::{PARAMS_ADDRESS, REGISTRY_ADDRESS, SYSTEM_ADDRESS},
    registry::{ListedModel, genesis_storage},
};
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, Log, TxKind, U256};
use alloy_sol_types::{Revert, SolCall, SolError, SolEvent};
use revm::{
    DatabaseCommit,
    context::TxEnv,
    context_interface::result::ExecutionResult,
    database::{CacheDB, EmptyDB},
    state::AccountInfo,
};

use super::IComputeRegistry::{self, Measurement};

const EPOCH: u64 = 4;
const TREASURY: Address = Address::repeat_byte(0x77);
const MINER: Address = Address::repeat_byte(0x66);

fn validators() -> [Address; 3] {
    [0xa1, 0xa2, 0xa3].map(Address::repeat_byte)
}

fn providers() -> [Address; 3] {
    [0xb1, 0xb2, 0xb3].map(Address::repeat_byte)
}

fn payout(provider: Address) -> Address {
    Address::repeat_byte(provider.0[0] + 0x10)
}

/// A chain in memory: the modules' genesis state and a block number.
struct Chain {
    db: CacheDB<EmptyDB>,
    block: u64,
}

impl Chain {
    fn new() -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        let params = Params {
            epoch_length: U256::from(EPOCH),
            ..Params::default()
        };
        for (key, value) in params.entries() {
            db.insert_account_storage(PARAMS_ADDRESS, key.into(), value)
                .unwrap();
        }
        let models = [ListedModel {
            id: "tiny".into(),
            units: 2,
            ..ListedModel::default()
        }];
        for (slot, value) in genesis_storage(&validators(), &models, EPOCH) {
            db.insert_account_storage(REGISTRY_ADDRESS, slot.into(), value.into())
                .unwrap();
        }
        for provider in providers() {
            let funded = AccountInfo {
                balance: AIC * U256::from(1_000u64),
                ..Default::default()
            };
            db.insert_account_info(provider, funded);
        }
        Self { db, block: 1 }
    }

    fn env(&self) -> EvmEnv {
        let mut env: EvmEnv = EvmEnv::default();
        env.cfg_env.disable_nonce_check = true;
        env.block_env.number = U256::from(self.block);
        env
    }

    fn transact(&mut self, caller: Address, data: Vec<u8>, value: U256) -> ExecutionResult {
        self.transact_to(caller, REGISTRY_ADDRESS, data, value)
    }

    fn transact_to(
        &mut self,
        caller: Address,
        to: Address,
        data: Vec<u8>,
        value: U256,
    ) -> ExecutionResult {
        let env = self.env();
        let mut evm = EthEvmFactory::default().create_evm(&mut self.db, env);
        crate::install(
            evm.precompiles_mut(),
            std::sync::Arc::new(crate::history::MemoryHistory::default()),
        );
        let tx = TxEnv {
            caller,
            kind: TxKind::Call(to),
            data: data.into(),
            value,
            gas_limit: 5_000_000,
            gas_price: 0,
            ..Default::default()
        };
        evm.transact_commit(tx).unwrap()
    }

    fn view<C: SolCall>(&mut self, call: C) -> C::Return {
        let (out, _) =
            success(self.transact(Address::repeat_byte(1), call.abi_encode(), U256::ZERO));
        C::abi_decode_returns(&out).unwrap()
    }

    /// Ends the current block as the chain does: `share` minted to the module, then its
    /// system step. Returns the step's logs and moves to the next block.
    fn end_block(&mut self, share: U256) -> Vec<Log> {
        let balance = self.balance(REGISTRY_ADDRESS);
        let mut info = self.db.load_account(REGISTRY_ADDRESS).unwrap().info.clone();
        info.balance = balance + share;
        self.db.insert_account_info(REGISTRY_ADDRESS, info);
        let env = self.env();
        let mut evm = EthEvmFactory::default().create_evm(&mut self.db, env);
        crate::install(
            evm.precompiles_mut(),
            std::sync::Arc::new(crate::history::MemoryHistory::default()),
        );
        let data = IComputeRegistry::endBlockCall {
            nodeShare: share,
            miner: MINER,
            treasury: TREASURY,
        }
        .abi_encode();
        let outcome = evm
            .transact_system_call(SYSTEM_ADDRESS, REGISTRY_ADDRESS, data.into())
            .unwrap();
        let mut state = outcome.state;
        state.remove(&SYSTEM_ADDRESS);
        drop(evm);
        self.db.commit(state);
        self.block += 1;
        success(outcome.result).1
    }

    fn balance(&mut self, address: Address) -> U256 {
        self.db
            .load_account(address)
            .map(|a| a.info.balance)
            .unwrap_or_default()
    }

    fn register(&mut self, provider: Address, stake: U256, models: &[&str]) -> ExecutionResult {
        let call = IComputeRegistry::registerCall {
            payout: payout(provider),
            apiUrl: format!("http://127.0.0.1:{}", provider.0[0]),
            models: models.iter().map(|m| m.to_string()).collect(),
            hardware: 0,
        };
        self.transact(provider, call.abi_encode(), stake)
    }

    fn report(
        &mut self,
        validator: Address,
        epoch: u64,
        measurements: Vec<Measurement>,
    ) -> ExecutionResult {
        let call = IComputeRegistry::submitReportCall {
            epoch,
            measurements,
        };
        self.transact(validator, call.abi_encode(), U256::ZERO)
    }
}

fn success(result: ExecutionResult) -> (alloy_primitives::Bytes, Vec<Log>) {
    match result {
        ExecutionResult::Success { output, logs, .. } => (output.into_data(), logs),
        other => panic!("expected success, got {other:?}"),
    }
}

fn revert_reason(result: &ExecutionResult) -> String {
    match result {
        ExecutionResult::Revert { output, .. } => Revert::abi_decode(output).unwrap().reason,
        other => panic!("expected a revert, got {other:?}"),
    }
}

fn measured(provider: Address, tokens: u64, rate: u64, failed: u32) -> Measurement {
    Measurement {
        provider,
        jobs: 3,
        answered: 3,
        audited: 2,
        auditFailed: failed,
        ttftMs: 40,
        tokens,
        rate,
    }
}

fn decode<E: SolEvent>(logs: &[Log]) -> Vec<E> {
    logs.iter()
        .filter_map(|log| E::decode_log_data(&log.data).ok())
        .collect()
}

#[test]
fn registration_needs_the_stake_and_listed_models() {
    let mut chain = Chain::new();
    let [p1, ..] = providers();
    let low = chain.register(p1, AIC * U256::from(99u64), &["tiny"]);
    assert!(revert_reason(&low).contains("below minStake"), "{low:?}");
    let unlisted = chain.register(p1, AIC * U256::from(100u64), &["gpt-5"]);
    assert!(revert_reason(&unlisted).contains("not on the chain's model list"));
    let none = chain.register(p1, AIC * U256::from(100u64), &[]);
    assert!(revert_reason(&none).contains("1 to 16 models"));

    let (_, logs) = success(chain.register(p1, AIC * U256::from(100u64), &["tiny"]));
    let registered = decode::<IComputeRegistry::Registered>(&logs);
    assert_eq!(registered[0].stake, AIC * U256::from(100u64));
    assert_eq!(chain.balance(REGISTRY_ADDRESS), AIC * U256::from(100u64));
    let info = chain.view(IComputeRegistry::providerCall { account: p1 });
    assert_eq!(
        (info.status, info.models.clone()),
        (1, vec!["tiny".to_string()])
    );
    assert_eq!(info.apiUrl, format!("http://127.0.0.1:{}", p1.0[0]));
    assert_eq!(chain.view(IComputeRegistry::providersCall {}), vec![p1]);
    let again = chain.register(p1, AIC * U256::from(100u64), &["tiny"]);
    assert!(revert_reason(&again).contains("already registered"));
    let models = chain.view(IComputeRegistry::modelsCall {});
    assert_eq!(
        (models.ids, models.units),
        (vec!["tiny".to_string()], vec![2])
    );
}

#[test]
fn a_provider_records_the_layers_it_serves_of_its_models_as_a_shard() {
    let mut chain = Chain::new();
    let [p1, p2, ..] = providers();
    let shard = |start, end| IComputeRegistry::setShardCall {
        model: "tiny".into(),
        start,
        end,
    };
    let shard_of = |chain: &mut Chain, account| {
        let r = chain.view(IComputeRegistry::shardOfCall {
            account,
            model: "tiny".into(),
        });
        (r.start, r.end)
    };
    let unregistered = chain.transact(p1, shard(0, 15).abi_encode(), U256::ZERO);
    assert!(revert_reason(&unregistered).contains("not an active provider"));
    success(chain.register(p1, AIC * U256::from(100u64), &["tiny"]));
    assert_eq!(shard_of(&mut chain, p1), (0, 0), "the whole model at first");
    let (_, logs) = success(chain.transact(p1, shard(10, 20).abi_encode(), U256::ZERO));
    let set = decode::<IComputeRegistry::ShardSet>(&logs);
    assert_eq!((set[0].provider, set[0].start, set[0].end), (p1, 10, 20));
    assert_eq!(shard_of(&mut chain, p1), (10, 20));
    assert_eq!(shard_of(&mut chain, p2), (0, 0));
    for (start, end) in [(5, 5), (20, 10), (0, 5000)] {
        let bad = chain.transact(p1, shard(start, end).abi_encode(), U256::ZERO);
        assert!(revert_reason(&bad).contains("no range"), "[{start}, {end})");
    }
    let other = IComputeRegistry::setShardCall {
        model: "other".into(),
        start: 0,
        end: 4,
    };
    let unserved = chain.transact(p1, other.abi_encode(), U256::ZERO);
    assert!(revert_reason(&unserved).contains("does not serve model \"other\""));
    // (0, 0) serves the whole model again.
    success(chain.transact(p1, shard(0, 0).abi_encode(), U256::ZERO));
    assert_eq!(shard_of(&mut chain, p1), (0, 0));
    success(chain.transact(p1, shard(0, 7).abi_encode(), U256::ZERO));
    // An update that keeps the model keeps its shard.
    let update = |models: Vec<String>| IComputeRegistry::updateCall {
        payout: payout(p1),
        apiUrl: "http://127.0.0.1:9".into(),
        models,
        hardware: 0,
    };
    success(chain.transact(p1, update(vec!["tiny".into()]).abi_encode(), U256::ZERO));
    assert_eq!(shard_of(&mut chain, p1), (0, 7));
    // Leaving and registering again serves the model whole until it says otherwise.
    success(chain.transact(p1, IComputeRegistry::leaveCall {}.abi_encode(), U256::ZERO));
    assert_eq!(
        shard_of(&mut chain, p1),
        (0, 7),
        "the record stays while it unbonds"
    );
}

#[test]
fn a_new_registration_serves_its_models_whole_until_it_sets_a_shard() {
    let mut chain = Chain::new();
    let [p1, ..] = providers();
    success(chain.register(p1, AIC * U256::from(100u64), &["tiny"]));
    let shard = IComputeRegistry::setShardCall {
        model: "tiny".into(),
        start: 3,
        end: 9,
    };
    success(chain.transact(p1, shard.abi_encode(), U256::ZERO));
    success(chain.transact(p1, IComputeRegistry::leaveCall {}.abi_encode(), U256::ZERO));
    // The stake unbonds; withdraw it once the epochs have passed, then register again.
    let mut withdrawn = false;
    for _ in 0..(EPOCH * 8) {
        chain.end_block(U256::ZERO);
        let out = chain.transact(
            p1,
            IComputeRegistry::withdrawCall {}.abi_encode(),
            U256::ZERO,
        );
        if matches!(out, ExecutionResult::Success { .. }) {
            withdrawn = true;
            break;
        }
    }
    assert!(withdrawn, "the stake never unbonded");
    success(chain.register(p1, AIC * U256::from(100u64), &["tiny"]));
    let r = chain.view(IComputeRegistry::shardOfCall {
        account: p1,
        model: "tiny".into(),
    });
    assert_eq!((r.start, r.end), (0, 0));
}

#[test]
fn only_validators_report_the_previous_epoch_once_with_consistent_figures() {
    let mut chain = Chain::new();
    let [p1, ..] = providers();
    let [v1, v2, _] = validators();
    success(chain.register(p1, AIC * U256::from(100u64), &["tiny"]));
    // Epoch 0 has no previous epoch to report.
    let early = chain.report(v1, 0, vec![measured(p1, 10, 10, 0)]);
    assert!(revert_reason(&early).contains("not accepted during epoch 0"));
    while chain.block <= EPOCH {
        chain.end_block(U256::ZERO);
    }
    let stranger = chain.report(p1, 0, vec![measured(p1, 10, 10, 0)]);
    assert!(revert_reason(&stranger).contains("not an authority"));
    let mut bad = measured(p1, 10, 10, 0);
    bad.answered = 4;
    let malformed = chain.report(v1, 0, vec![bad]);
    assert!(
        revert_reason(&malformed).contains("4 answers to 3 jobs"),
        "{malformed:?}"
    );
    let unknown = chain.report(v1, 0, vec![measured(Address::repeat_byte(9), 1, 1, 0)]);
    assert!(revert_reason(&unknown).contains("not a registered provider"));
    let twice = chain.report(v1, 0, vec![measured(p1, 1, 1, 0), measured(p1, 1, 1, 0)]);
    assert!(revert_reason(&twice).contains("twice"));
    let garbage = chain.transact(v1, vec![0x5a, 0xd3, 0x1e, 0x4f, 1, 2, 3], U256::ZERO);
    assert!(revert_reason(&garbage).contains("selector"));

    success(chain.report(v1, 0, vec![measured(p1, 10, 10, 0)]));
    let again = chain.report(v1, 0, vec![measured(p1, 10, 10, 0)]);
    assert!(revert_reason(&again).contains("already reported"));
    let stale = chain.report(v2, 1, vec![measured(p1, 10, 10, 0)]);
    assert!(revert_reason(&stale).contains("only the previous epoch"));
    assert_eq!(
        chain.view(IComputeRegistry::reportersCall { epoch: 0 }),
        vec![v1]
    );
}

#[test]
fn with_no_provider_the_node_share_goes_to_the_miner_at_once() {
    let mut chain = Chain::new();
    for _ in 0..EPOCH * 2 {
        chain.end_block(AIC * U256::from(40u64));
    }
    assert_eq!(chain.balance(MINER), AIC * U256::from(40 * EPOCH * 2));
    assert_eq!(chain.balance(REGISTRY_ADDRESS), U256::ZERO);
    let epoch = chain.view(IComputeRegistry::currentEpochCall {});
    assert_eq!((epoch.epoch, epoch.lastBlock), (2, 3 * EPOCH));
}

#[test]
fn an_epoch_pays_honest_providers_pro_rata_and_slashes_the_one_failing_audits() {
    let mut chain = Chain::new();
    let [p1, p2, cheat] = providers();
    let stake = AIC * U256::from(100u64);
    for p in providers() {
        success(chain.register(p, stake, &["tiny"]));
    }
    // Epoch 0 (blocks 1..=4) accrues 4 × 40 AIC.
    let share = AIC * U256::from(40u64);
    while chain.block <= EPOCH {
        chain.end_block(share);
    }
    assert_eq!(
        chain.view(IComputeRegistry::epochPotCall { epoch: 0 }),
        share * U256::from(EPOCH)
    );
    // Epoch 1: the validators report epoch 0. One validator inflates p2 and fakes a failed
    // audit for p1; the medians ignore it. Everyone sees the cheater fail.
    let [v1, v2, v3] = validators();
    success(chain.report(
        v1,
        0,
        vec![
            measured(p1, 30, 300, 0),
            measured(p2, 20, 200, 0),
            measured(cheat, 30, 900, 2),
        ],
    ));
    success(chain.report(
        v2,
        0,
        vec![
            measured(p1, 30, 300, 0),
            measured(p2, 20, 200, 0),
            measured(cheat, 30, 900, 1),
        ],
    ));
    success(chain.report(
        v3,
        0,
        vec![
            measured(p1, 30, 300, 1),
            measured(p2, 1_000, 100_000, 0),
            measured(cheat, 30, 900, 2),
        ],
    ));
    let mut logs = Vec::new();
    while chain.block <= 2 * EPOCH {
        logs.extend(chain.end_block(share));
    }
    let pot = share * U256::from(EPOCH);
    let r1 = chain.view(IComputeRegistry::epochRecordCall {
        account: p1,
        epoch: 0,
    });
    let r2 = chain.view(IComputeRegistry::epochRecordCall {
        account: p2,
        epoch: 0,
    });
    let rc = chain.view(IComputeRegistry::epochRecordCall {
        account: cheat,
        epoch: 0,
    });
    assert!(!r1.auditFailed && !r2.auditFailed && rc.auditFailed);
    assert_eq!((r1.median.tokens, r2.median.tokens), (30, 20));
    // Best passing provider: p1 on both relative parts; p2 at 2/3 of them.
    assert_eq!((r1.utilization, r1.throughput), (10_000, 10_000));
    assert_eq!((r2.utilization, r2.throughput), (6_666, 6_666));
    assert_eq!((r1.completion, r1.uptime), (10_000, r2.uptime));
    assert!(r1.uptime > 0);
    let expected = |parts: (u64, u64, u64, u64)| {
        (3_000 * parts.0 + 3_000 * parts.1 + 2_000 * parts.2 + 2_000 * parts.3) / 10_000 * 3_000
            / 10_000
    };
    assert_eq!(r1.score, expected((10_000, 10_000, r1.uptime, 10_000)));
    assert_eq!(r2.score, expected((6_666, 6_666, r2.uptime, 10_000)));
    assert_eq!(rc.score, 0);
    // Rewards to the wei: pot × score / total, the dust carried to epoch 1's pot.
    let total = U256::from(r1.score + r2.score);
    let reward1 = pot * U256::from(r1.score) / total;
    let reward2 = pot * U256::from(r2.score) / total;
    assert_eq!(
        (r1.reward, r2.reward, rc.reward),
        (reward1, reward2, U256::ZERO)
    );
    assert_eq!(chain.balance(payout(p1)), reward1);
    assert_eq!(chain.balance(payout(p2)), reward2);
    assert_eq!(chain.balance(payout(cheat)), U256::ZERO);
    let slashed = stake / U256::from(10u64);
    assert_eq!(rc.slashed, slashed);
    assert_eq!(chain.balance(TREASURY), slashed);
    let cheater = chain.view(IComputeRegistry::providerCall { account: cheat });
    assert_eq!((cheater.stake, cheater.auditFailures), (stake - slashed, 1));
    let dust = pot - reward1 - reward2;
    assert_eq!(
        chain.view(IComputeRegistry::epochPotCall { epoch: 1 }),
        share * U256::from(EPOCH) + dust
    );
    // The module holds exactly the stakes and the unpaid pot.
    assert_eq!(
        chain.balance(REGISTRY_ADDRESS),
        stake * U256::from(3u64) - slashed + share * U256::from(EPOCH) + dust
    );
    let rewards = decode::<IComputeRegistry::Reward>(&logs);
    assert_eq!(
        rewards
            .iter()
            .map(|r| (r.payout, r.amount))
            .collect::<Vec<_>>(),
        [(payout(p1), reward1), (payout(p2), reward2)]
    );
    let slashes = decode::<IComputeRegistry::Slashed>(&logs);
    assert_eq!(slashes.len(), 1);
    assert!(
        slashes[0].reason.contains("failed audits"),
        "{}",
        slashes[0].reason
    );
}

#[test]
fn an_epoch_nobody_scored_pays_the_miner_and_unbonded_stake_comes_back() {
    let mut chain = Chain::new();
    let [p1, ..] = providers();
    let stake = AIC * U256::from(100u64);
    success(chain.register(p1, stake, &["tiny"]));
    let share = AIC * U256::from(40u64);
    while chain.block <= 2 * EPOCH {
        chain.end_block(share);
    }
    // No validator reported epoch 0: its pot went to the settling block's miner.
    assert_eq!(chain.balance(MINER), share * U256::from(EPOCH));

    let before = chain.balance(p1);
    let (_, logs) =
        success(chain.transact(p1, IComputeRegistry::leaveCall {}.abi_encode(), U256::ZERO));
    let leaving = decode::<IComputeRegistry::Leaving>(&logs);
    // Left in epoch 2; unbonds after 2 more epochs (and after epoch 2 is settled).
    assert_eq!(leaving[0].unbondingEpoch, 5);
    let early = chain.transact(
        p1,
        IComputeRegistry::withdrawCall {}.abi_encode(),
        U256::ZERO,
    );
    assert!(revert_reason(&early).contains("unbonds at epoch 5"));
    while chain.block <= 5 * EPOCH {
        chain.end_block(share);
    }
    success(chain.transact(
        p1,
        IComputeRegistry::withdrawCall {}.abi_encode(),
        U256::ZERO,
    ));
    assert_eq!(chain.balance(p1), before + stake);
    let info = chain.view(IComputeRegistry::providerCall { account: p1 });
    assert_eq!((info.status, info.stake), (3, U256::ZERO));
    // With no provider active the share goes to the miner block by block again.
    let miner = chain.balance(MINER);
    chain.end_block(share);
    assert_eq!(chain.balance(MINER), miner + share);
}

#[test]
fn end_block_is_the_chains_alone() {
    let mut chain = Chain::new();
    let call = IComputeRegistry::endBlockCall {
        nodeShare: U256::ZERO,
        miner: MINER,
        treasury: TREASURY,
    };
    let refused = chain.transact(Address::repeat_byte(1), call.abi_encode(), U256::ZERO);
    assert!(revert_reason(&refused).contains("system step"));
}

mod conservation {
    use proptest::prelude::*;

    use super::*;

    /// A report figure set: (jobs, answered, tokens, rate, failed audits).
    type Figures = (u32, u32, u64, u64, u32);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Over epochs of random shares and random (valid) reports, settlement only moves
        /// coins: every account's balance adds up to what was funded plus what was minted, and
        /// the module holds exactly the stakes and the pots not yet paid. So the pay-outs can
        /// never issue past what the reward code minted, which the cap bounds.
        #[test]
        fn settlement_moves_coins_and_never_creates_them(
            shares in proptest::collection::vec(0u64..=40, (6 * EPOCH) as usize),
            figures in proptest::collection::vec(
                (1u32..5, 0u32..5, 0u64..1_000, 0u64..100_000, 0u32..2),
                (3 * 3 * 6) as usize,
            ),
        ) {
            let mut chain = Chain::new();
            let stake = AIC * U256::from(100u64);
            for p in providers() {
                success(chain.register(p, stake, &["tiny"]));
            }
            let watched: Vec<Address> = providers()
                .into_iter()
                .flat_map(|p| [p, payout(p)])
                .chain([MINER, TREASURY, REGISTRY_ADDRESS])
                .collect();
            let total = |chain: &mut Chain| {
                watched.iter().fold(U256::ZERO, |sum, a| sum + chain.balance(*a))
            };
            let start = total(&mut chain);
            let mut minted = U256::ZERO;
            let mut figures = figures.into_iter();
            for (i, share) in shares.into_iter().enumerate() {
                let block = i as u64 + 1;
                // Early in each epoch after the first, every validator reports the last one.
                if block > EPOCH && block % EPOCH == 1 {
                    let epoch = block / EPOCH - 1;
                    for v in validators() {
                        let measurements = providers()
                            .into_iter()
                            .map(|p| {
                                let (jobs, answered, tokens, rate, failed): Figures =
                                    figures.next().unwrap_or((1, 1, 1, 1, 0));
                                let answered = answered.min(jobs);
                                Measurement {
                                    provider: p,
                                    jobs,
                                    answered,
                                    audited: answered.min(1),
                                    auditFailed: failed.min(answered.min(1)),
                                    ttftMs: 5,
                                    tokens: if answered == 0 { 0 } else { tokens },
                                    rate: if answered == 0 { 0 } else { rate },
                                }
                            })
                            .collect();
                        success(chain.report(v, epoch, measurements));
                    }
                }
                let minted_now = AIC * U256::from(share);
                chain.end_block(minted_now);
                minted += minted_now;
                prop_assert_eq!(total(&mut chain), start + minted);
                let epoch = chain.view(IComputeRegistry::currentEpochCall {}).epoch;
                let mut held = U256::ZERO;
                for p in providers() {
                    held += chain.view(IComputeRegistry::providerCall { account: p }).stake;
                }
                for e in epoch.saturating_sub(2)..=epoch {
                    held += chain.view(IComputeRegistry::epochPotCall { epoch: e });
                }
                prop_assert_eq!(chain.balance(REGISTRY_ADDRESS), held);
            }
        }
    }
}

/// The API revenue of an epoch: 80% to the providers that served it through gateways (pro
/// rata to the reported tokens, the one failing its audits left out), 20% to the treasury; an
/// epoch with revenue and no traffic carries the providers' part on. The served tokens also
/// count to utilization.
#[test]
fn api_revenue_goes_to_who_served_it_and_the_treasury() {
    use crate::access::IApiAccess;
    use aicoin_primitives::modules::API_ACCESS_ADDRESS;

    let mut chain = Chain::new();
    let [p1, p2, cheat] = providers();
    let [v1, ..] = validators();
    let stake = AIC * U256::from(100u64);
    for p in providers() {
        success(chain.register(p, stake, &["tiny"]));
    }
    let gateway = Address::repeat_byte(0x9a);
    let buyer = Address::repeat_byte(0xd1);
    chain.db.insert_account_info(
        buyer,
        AccountInfo {
            balance: AIC * U256::from(100u64),
            ..Default::default()
        },
    );
    let access = |chain: &mut Chain, caller, call: Vec<u8>, value| {
        chain.transact_to(caller, API_ACCESS_ADDRESS, call, value)
    };
    success(access(
        &mut chain,
        v1,
        IApiAccess::addGatewayCall {
            gateway,
            url: "http://gw".into(),
        }
        .abi_encode(),
        U256::ZERO,
    ));
    // Epoch 0: a Standard tier (5 AIC) and a Premium one (20 AIC) are bought.
    let revenue = AIC * U256::from(25u64);
    success(access(
        &mut chain,
        buyer,
        IApiAccess::buyCall { tier: 2 }.abi_encode(),
        AIC * U256::from(5u64),
    ));
    let other = Address::repeat_byte(0xd2);
    chain.db.insert_account_info(
        other,
        AccountInfo {
            balance: AIC * U256::from(100u64),
            ..Default::default()
        },
    );
    success(access(
        &mut chain,
        other,
        IApiAccess::buyCall { tier: 3 }.abi_encode(),
        AIC * U256::from(20u64),
    ));
    while chain.block <= EPOCH {
        chain.end_block(U256::ZERO);
    }
    // Epoch 1: the gateway reports what each provider served in epoch 0; the validators see
    // the cheater fail its audits.
    let usage = vec![
        IApiAccess::Usage {
            provider: p1,
            tokens: 300,
        },
        IApiAccess::Usage {
            provider: p2,
            tokens: 100,
        },
        IApiAccess::Usage {
            provider: cheat,
            tokens: 600,
        },
    ];
    success(access(
        &mut chain,
        gateway,
        IApiAccess::reportUsageCall { epoch: 0, usage }.abi_encode(),
        U256::ZERO,
    ));
    for v in validators() {
        success(chain.report(
            v,
            0,
            vec![
                measured(p1, 10, 300, 0),
                measured(p2, 10, 300, 0),
                measured(cheat, 10, 300, 2),
            ],
        ));
    }
    let mut logs = Vec::new();
    while chain.block <= 2 * EPOCH {
        logs.extend(chain.end_block(U256::ZERO));
    }
    let pool = revenue * U256::from(8_000u64) / U256::from(10_000u64);
    let (to_p1, to_p2) = (
        pool * U256::from(300u64) / U256::from(400u64),
        pool * U256::from(100u64) / U256::from(400u64),
    );
    assert_eq!(chain.balance(payout(p1)), to_p1);
    assert_eq!(chain.balance(payout(p2)), to_p2);
    assert_eq!(chain.balance(payout(cheat)), U256::ZERO);
    let slashed = stake / U256::from(10u64);
    assert_eq!(chain.balance(TREASURY), revenue - pool + slashed);
    let splits = decode::<IApiAccess::RevenueSplit>(&logs);
    assert_eq!(splits.len(), 1);
    assert_eq!(
        (
            splits[0].revenue,
            splits[0].toProviders,
            splits[0].toTreasury,
            splits[0].carriedOut
        ),
        (revenue, to_p1 + to_p2, revenue - pool, pool - to_p1 - to_p2)
    );
    let paid = decode::<IApiAccess::RevenuePaid>(&logs);
    assert_eq!(
        paid.iter()
            .map(|p| (p.provider, p.tokens, p.amount))
            .collect::<Vec<_>>(),
        [(p1, 300, to_p1), (p2, 100, to_p2)]
    );
    // Utilization counts probe and served tokens: p1 310 of the best 310, p2 110 of it.
    let r1 = chain.view(IComputeRegistry::epochRecordCall {
        account: p1,
        epoch: 0,
    });
    let r2 = chain.view(IComputeRegistry::epochRecordCall {
        account: p2,
        epoch: 0,
    });
    assert_eq!((r1.utilization, r2.utilization), (10_000, 3_548));
    // The module keeps only the carried dust.
    assert_eq!(chain.balance(API_ACCESS_ADDRESS), pool - to_p1 - to_p2);

    // Epoch 2 sells a Basic tier (1 AIC) and serves nothing: at its settlement the treasury
    // gets its 20% and the providers' part, with epoch 0's dust, carries into epoch 3.
    let third = Address::repeat_byte(0xd3);
    chain.db.insert_account_info(
        third,
        AccountInfo {
            balance: AIC,
            ..Default::default()
        },
    );
    success(access(
        &mut chain,
        third,
        IApiAccess::buyCall { tier: 1 }.abi_encode(),
        AIC,
    ));
    let before = chain.balance(TREASURY);
    let mut logs = Vec::new();
    while chain.block <= 4 * EPOCH {
        logs.extend(chain.end_block(U256::ZERO));
    }
    let dust = pool - to_p1 - to_p2;
    assert_eq!(chain.balance(TREASURY) - before, AIC / U256::from(5u64));
    let split = decode::<IApiAccess::RevenueSplit>(&logs);
    let carried = AIC * U256::from(8u64) / U256::from(10u64) + dust;
    assert_eq!(
        split
            .iter()
            .map(|s| (s.epoch, s.carriedOut))
            .collect::<Vec<_>>(),
        [(2, carried)]
    );
    assert_eq!(chain.balance(API_ACCESS_ADDRESS), carried);
}
