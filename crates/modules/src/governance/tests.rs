use std::sync::Arc;

use aicoin_primitives::{
    AIC, Params,
    governance::{genesis_storage, supply_slot},
    modules::{GOVERNANCE_ADDRESS, PARAMS_ADDRESS, REGISTRY_ADDRESS, SYSTEM_ADDRESS},
    param_key,
    registry::{ListedModel, ModelCategory},
};
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, Log, TxKind, U256};
use alloy_sol_types::{Revert, SolCall, SolError, SolEvent, SolValue};
use revm::{
    Database as _,
    context::TxEnv,
    context_interface::result::ExecutionResult,
    database::{CacheDB, EmptyDB},
    state::AccountInfo,
};

use super::IGovernance;
use crate::{history::MemoryHistory, params::IParams, registry::IComputeRegistry};

const TREASURY: Address = Address::repeat_byte(0x77);
const VOTING: u64 = 5;
const EMERGENCY_VOTING: u64 = 2;

fn aic(n: u64) -> U256 {
    AIC * U256::from(n)
}

/// Holders: 0xa1 with 1,000 AIC, 0xa2 with 999, 0xa3 with 3,000; the treasury 500; supply
/// 10,000 AIC (the rest elsewhere), so the quorum is 1,000 AIC.
fn holders() -> Vec<(Address, U256)> {
    vec![
        (Address::repeat_byte(0xa1), aic(1_000)),
        (Address::repeat_byte(0xa2), aic(999)),
        (Address::repeat_byte(0xa3), aic(3_000)),
        (TREASURY, aic(500)),
        (Address::repeat_byte(0xee), aic(4_501)),
    ]
}

/// A chain in memory whose history the governance module reads.
struct Chain {
    db: CacheDB<EmptyDB>,
    history: Arc<MemoryHistory>,
    block: u64,
}

impl Chain {
    fn new() -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        let params = Params {
            voting_blocks: U256::from(VOTING),
            emergency_voting_blocks: U256::from(EMERGENCY_VOTING),
            execution_window_blocks: U256::from(10u64),
            ..Params::default()
        };
        for (key, value) in params.entries() {
            db.insert_account_storage(PARAMS_ADDRESS, key.into(), value)
                .unwrap();
        }
        for (slot, value) in genesis_storage(TREASURY, aic(21_000_000), aic(10_000)) {
            db.insert_account_storage(GOVERNANCE_ADDRESS, slot.into(), value.into())
                .unwrap();
        }
        let tiny = ListedModel {
            id: "tiny".into(),
            units: 1,
            ..ListedModel::default()
        };
        for (slot, value) in aicoin_primitives::registry::genesis_storage(&[], &[tiny], 100) {
            db.insert_account_storage(REGISTRY_ADDRESS, slot.into(), value.into())
                .unwrap();
        }
        for (account, balance) in holders() {
            let info = AccountInfo {
                balance,
                ..Default::default()
            };
            db.insert_account_info(account, info);
        }
        let mut chain = Self {
            db,
            history: Arc::default(),
            block: 0,
        };
        chain.end_block();
        chain
    }

    /// Ends the current block: its balances and supply go into history.
    fn end_block(&mut self) {
        for (account, _) in holders() {
            let balance = self.balance(account);
            self.history.set_balance(account, self.block, balance);
        }
        let supply = self.db.storage(GOVERNANCE_ADDRESS, supply_slot().into());
        self.history.set_storage(
            GOVERNANCE_ADDRESS,
            supply_slot(),
            self.block,
            supply.unwrap(),
        );
        self.block += 1;
    }

    fn balance(&mut self, account: Address) -> U256 {
        self.db
            .load_account(account)
            .map(|a| a.info.balance)
            .unwrap_or_default()
    }

    fn transact_to(&mut self, to: Address, caller: Address, data: Vec<u8>) -> ExecutionResult {
        let mut env: EvmEnv = EvmEnv::default();
        env.cfg_env.disable_nonce_check = true;
        env.block_env.number = U256::from(self.block);
        let mut evm = EthEvmFactory::default().create_evm(&mut self.db, env);
        crate::install(evm.precompiles_mut(), self.history.clone());
        let tx = TxEnv {
            caller,
            kind: TxKind::Call(to),
            data: data.into(),
            gas_limit: 5_000_000,
            gas_price: 0,
            ..Default::default()
        };
        evm.transact_commit(tx).unwrap()
    }

    fn transact(&mut self, caller: Address, call: impl SolCall) -> ExecutionResult {
        self.transact_to(GOVERNANCE_ADDRESS, caller, call.abi_encode())
    }

    fn view<C: SolCall>(&mut self, call: C) -> C::Return {
        let (out, _) = success(self.transact(Address::repeat_byte(1), call));
        C::abi_decode_returns(&out).unwrap()
    }

    fn propose(&mut self, caller: Address, kind: u8, payload: Vec<u8>) -> ExecutionResult {
        self.transact(
            caller,
            IGovernance::proposeCall {
                kind,
                payload: payload.into(),
                description: "Lower the block reward".into(),
            },
        )
    }

    fn vote(&mut self, voter: Address, id: u64, support: u8) -> ExecutionResult {
        self.transact(
            voter,
            IGovernance::voteCall {
                proposalId: U256::from(id),
                support,
            },
        )
    }

    fn execute(&mut self, id: u64) -> ExecutionResult {
        let anyone = Address::repeat_byte(0x42);
        self.transact(
            anyone,
            IGovernance::executeCall {
                proposalId: U256::from(id),
            },
        )
    }

    fn state(&mut self, id: u64) -> u8 {
        self.view(IGovernance::stateCall {
            proposalId: U256::from(id),
        })
    }

    /// Ends blocks until voting on `id` is over.
    fn close_vote(&mut self, id: u64) {
        let end: U256 = self.view(IGovernance::proposalDeadlineCall {
            proposalId: U256::from(id),
        });
        while U256::from(self.block) <= end {
            self.end_block();
        }
    }

    fn param(&mut self, name: &str) -> U256 {
        let (out, _) = success(
            self.transact_to(
                PARAMS_ADDRESS,
                Address::repeat_byte(1),
                IParams::getCall {
                    key: param_key(name),
                }
                .abi_encode(),
            ),
        );
        IParams::getCall::abi_decode_returns(&out).unwrap()
    }
}

fn success(result: ExecutionResult) -> (alloy_primitives::Bytes, Vec<Log>) {
    match result {
        ExecutionResult::Success { output, logs, .. } => (output.into_data(), logs),
        other => panic!("expected success, got {other:?}"),
    }
}

fn reason(result: &ExecutionResult) -> String {
    match result {
        ExecutionResult::Revert { output, .. } => Revert::abi_decode(output).unwrap().reason,
        other => panic!("expected a revert, got {other:?}"),
    }
}

fn param_change(name: &str, value: U256) -> Vec<u8> {
    (param_key(name), value).abi_encode()
}

fn holder(byte: u8) -> Address {
    Address::repeat_byte(byte)
}

#[test]
fn a_passed_parameter_change_is_executed_once_after_the_vote() {
    let mut chain = Chain::new();
    let payload = param_change("initialReward", aic(25));
    let (out, logs) = success(chain.propose(holder(0xa1), 0, payload.clone()));
    let id = IGovernance::proposeCall::abi_decode_returns(&out).unwrap();
    assert_eq!(id, U256::ONE);
    let created = IGovernance::ProposalCreated::decode_log_data(&logs[0].data).unwrap();
    assert_eq!(created.targets, [PARAMS_ADDRESS]);
    assert_eq!(created.calldatas[0].as_ref(), payload.as_slice());
    // Governor's window: from the snapshot, `votingBlocks` blocks.
    assert_eq!(created.voteStart, U256::from(chain.block - 1));
    assert_eq!(created.voteEnd, U256::from(chain.block - 1 + VOTING));
    let proposal = chain.view(IGovernance::proposalCall { proposalId: id });
    assert_eq!(proposal.snapshot, chain.block - 1);
    assert_eq!(proposal.quorum, aic(1_000), "10% of the 10,000 AIC supply");
    assert_eq!(chain.state(1), 1, "Active");

    chain.end_block();
    let (out, logs) = success(chain.vote(holder(0xa3), 1, 1));
    assert_eq!(
        IGovernance::voteCall::abi_decode_returns(&out).unwrap(),
        aic(3_000)
    );
    let cast = IGovernance::VoteCast::decode_log_data(&logs[0].data).unwrap();
    assert_eq!(
        (cast.voter, cast.support, cast.weight),
        (holder(0xa3), 1, aic(3_000))
    );
    success(chain.vote(holder(0xa1), 1, 0));
    let early = chain.execute(1);
    assert!(reason(&early).contains("still being voted on"), "{early:?}");
    assert_eq!(chain.param("initialReward"), aic(50));

    chain.close_vote(1);
    assert_eq!(chain.state(1), 4, "Passed");
    let (_, logs) = success(chain.execute(1));
    assert_eq!(chain.param("initialReward"), aic(25));
    assert_eq!(logs[0].address, PARAMS_ADDRESS);
    let changed = IParams::ParamChanged::decode_log_data(&logs[0].data).unwrap();
    assert_eq!(
        (changed.key, changed.previous, changed.value),
        (param_key("initialReward"), aic(50), aic(25))
    );
    assert_eq!(
        logs[1].topics()[0],
        IGovernance::ProposalExecuted::SIGNATURE_HASH
    );
    assert_eq!(chain.state(1), 7, "Executed");
    let again = chain.execute(1);
    assert!(reason(&again).contains("already executed"), "{again:?}");
}

#[test]
fn weights_are_snapshot_balances_and_each_address_votes_once() {
    let mut chain = Chain::new();
    success(chain.propose(
        holder(0xa1),
        0,
        param_change("epochLength", U256::from(50u64)),
    ));
    // After the snapshot 0xa3 moves 2,000 AIC to 0xa2: 0xa2 still weighs its snapshot 999.
    let mut moved = chain.db.load_account(holder(0xa3)).unwrap().info.clone();
    moved.balance -= aic(2_000);
    chain.db.insert_account_info(holder(0xa3), moved);
    let mut got = chain.db.load_account(holder(0xa2)).unwrap().info.clone();
    got.balance += aic(2_000);
    chain.db.insert_account_info(holder(0xa2), got);
    chain.end_block();

    let weight =
        |r: ExecutionResult| IGovernance::voteCall::abi_decode_returns(&success(r).0).unwrap();
    assert_eq!(weight(chain.vote(holder(0xa3), 1, 1)), aic(3_000));
    assert_eq!(weight(chain.vote(holder(0xa2), 1, 1)), aic(999));
    let twice = chain.vote(holder(0xa3), 1, 0);
    assert!(
        reason(&twice).contains("already voted on proposal 1"),
        "{twice:?}"
    );
    // An address that held nothing at the snapshot has no vote.
    let none = chain.vote(holder(0x55), 1, 1);
    assert!(reason(&none).contains("held no AIC"), "{none:?}");
    let votes = chain.view(IGovernance::proposalVotesCall {
        proposalId: U256::ONE,
    });
    assert_eq!(
        (votes.againstVotes, votes.forVotes, votes.abstainVotes),
        (U256::ZERO, aic(3_999), U256::ZERO)
    );
    assert!(chain.view(IGovernance::hasVotedCall {
        proposalId: U256::ONE,
        account: holder(0xa2),
    }));
    let snapshot = U256::from(chain.block - 2);
    let at_snapshot = chain.view(IGovernance::getVotesCall {
        account: holder(0xa2),
        blockNumber: snapshot,
    });
    assert_eq!(at_snapshot, aic(999));
    let bad = chain.vote(holder(0xa1), 1, 3);
    assert!(reason(&bad).contains("support 3"), "{bad:?}");
    // A support of 257 is not read as 1 (For): the call data does not validate.
    let mut wide = IGovernance::voteCall {
        proposalId: U256::ONE,
        support: 1,
    }
    .abi_encode();
    wide[4 + 32 + 30] = 1;
    let wide = chain.transact_to(GOVERNANCE_ADDRESS, holder(0xa1), wide);
    assert!(reason(&wide).contains("malformed call data"), "{wide:?}");
}

#[test]
fn below_quorum_or_approval_is_rejected_and_cannot_be_executed() {
    let mut chain = Chain::new();
    success(chain.propose(
        holder(0xa1),
        0,
        param_change("epochLength", U256::from(50u64)),
    ));
    success(chain.propose(
        holder(0xa1),
        0,
        param_change("epochLength", U256::from(60u64)),
    ));
    chain.end_block();
    // Proposal 1: 999 AIC For, under the 1,000 AIC quorum.
    success(chain.vote(holder(0xa2), 1, 1));
    // Proposal 2: quorum reached, but For holds 25% of For + Against.
    success(chain.vote(holder(0xa1), 2, 1));
    success(chain.vote(holder(0xa3), 2, 0));
    chain.close_vote(2);
    assert_eq!((chain.state(1), chain.state(2)), (3, 3), "Rejected");
    let one = chain.execute(1);
    assert!(reason(&one).contains("did not reach the quorum"), "{one:?}");
    let two = chain.execute(2);
    assert!(reason(&two).contains("For held 2500 bps"), "{two:?}");
    assert_eq!(chain.param("epochLength"), U256::from(100u64));
    let late = chain.vote(holder(0xee), 1, 1);
    assert!(reason(&late).contains("ended at block"), "{late:?}");
}

#[test]
fn proposers_need_the_balance_and_payloads_must_hold() {
    let mut chain = Chain::new();
    let ok = param_change("epochLength", U256::from(50u64));
    let poor = chain.propose(holder(0xa2), 0, ok.clone());
    assert!(
        reason(&poor).contains("held 999000000000000000000 wei"),
        "{poor:?}"
    );
    let unknown = chain.propose(holder(0xa1), 0, param_change("blockSize", U256::ONE));
    assert!(
        reason(&unknown).contains("unknown parameter \"blockSize\""),
        "{unknown:?}"
    );
    let bounds = chain.propose(holder(0xa1), 0, param_change("epochLength", U256::ZERO));
    assert!(reason(&bounds).contains("outside its bounds"), "{bounds:?}");
    let short = chain.propose(holder(0xa1), 0, ok[..40].to_vec());
    assert!(reason(&short).contains("do not decode"), "{short:?}");
    let kind = chain.propose(holder(0xa1), 9, ok);
    assert!(reason(&kind).contains("no proposal kind 9"), "{kind:?}");
    // Raising the reward would schedule more than is left under the cap; lowering it is fine.
    let raise = chain.propose(holder(0xa1), 0, param_change("initialReward", aic(100)));
    assert!(reason(&raise).contains("past the"), "{raise:?}");
    success(chain.propose(holder(0xa1), 0, param_change("initialReward", aic(10))));
    let spend = chain.propose(holder(0xa1), 1, (holder(0x99), aic(501)).abi_encode());
    assert!(reason(&spend).contains("the treasury holds"), "{spend:?}");
    let lost = chain.propose(holder(0xa1), 1, (GOVERNANCE_ADDRESS, aic(1)).abi_encode());
    assert!(
        reason(&lost).contains("a chain module's address"),
        "{lost:?}"
    );
    let none = chain.view(IGovernance::proposalCountCall {});
    assert_eq!(none, U256::ONE, "only the valid proposal was made");
    let missing = chain.vote(holder(0xa1), 7, 1);
    assert!(reason(&missing).contains("no proposal 7"), "{missing:?}");
}

#[test]
fn a_treasury_spend_moves_exactly_the_amount() {
    let mut chain = Chain::new();
    let to = holder(0x99);
    let amount = aic(123) + U256::from(456u64);
    success(chain.propose(holder(0xa1), 1, (to, amount).abi_encode()));
    chain.end_block();
    success(chain.vote(holder(0xa3), 1, 1));
    chain.close_vote(1);
    let (_, logs) = success(chain.execute(1));
    assert_eq!(chain.balance(to), amount);
    assert_eq!(chain.balance(TREASURY), aic(500) - amount);
    let spent = IGovernance::TreasurySpent::decode_log_data(&logs[0].data).unwrap();
    assert_eq!((spent.to, spent.amount), (to, amount));
}

#[test]
fn the_system_step_records_the_supply_and_no_one_else_can() {
    let mut chain = Chain::new();
    let raw_step = super::end_block_call(aic(10_050));
    let stranger = chain.transact_to(GOVERNANCE_ADDRESS, holder(0xa1), raw_step.clone());
    assert!(
        reason(&stranger).contains("no function with selector"),
        "{stranger:?}"
    );
    let supply = chain.view(IGovernance::supplyAtCall {
        blockNumber: U256::ZERO,
    });
    assert_eq!(supply, aic(10_000));
    let future = chain.transact(
        holder(0xa1),
        IGovernance::supplyAtCall {
            blockNumber: U256::from(chain.block),
        },
    );
    assert!(reason(&future).contains("not in the past"), "{future:?}");

    // The chain's own step, as the system address.
    let mut env: EvmEnv = EvmEnv::default();
    env.block_env.number = U256::from(chain.block);
    let mut evm = EthEvmFactory::default().create_evm(&mut chain.db, env);
    crate::install(evm.precompiles_mut(), chain.history.clone());
    let outcome = evm
        .transact_system_call(SYSTEM_ADDRESS, GOVERNANCE_ADDRESS, raw_step.into())
        .unwrap();
    let mut state = outcome.state;
    state.remove(&SYSTEM_ADDRESS);
    drop(evm);
    revm::DatabaseCommit::commit(&mut chain.db, state);
    chain.end_block();
    let supply = chain.view(IGovernance::supplyAtCall {
        blockNumber: U256::from(chain.block - 1),
    });
    assert_eq!(supply, aic(10_050));
}

/// Passes proposal `id` with 0xa3's 3,000 AIC and executes it.
fn pass(chain: &mut Chain, id: u64) -> Vec<Log> {
    chain.end_block();
    success(chain.vote(holder(0xa3), id, 1));
    chain.close_vote(id);
    success(chain.execute(id)).1
}

/// `register` of `models` by `who` with the 100 AIC stake, committed.
fn register(chain: &mut Chain, who: Address, models: &[&str]) -> ExecutionResult {
    let call = IComputeRegistry::registerCall {
        payout: who,
        apiUrl: "http://127.0.0.1:1".into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        hardware: 0,
    };
    let mut env: EvmEnv = EvmEnv::default();
    env.cfg_env.disable_nonce_check = true;
    env.block_env.number = U256::from(chain.block);
    let mut evm = EthEvmFactory::default().create_evm(&mut chain.db, env);
    crate::install(evm.precompiles_mut(), chain.history.clone());
    let tx = TxEnv {
        caller: who,
        kind: TxKind::Call(REGISTRY_ADDRESS),
        data: call.abi_encode().into(),
        value: aic(100),
        gas_limit: 5_000_000,
        gas_price: 0,
        ..Default::default()
    };
    evm.transact_commit(tx).unwrap()
}

#[test]
fn models_added_by_governance_can_be_registered_and_removed_ones_cannot() {
    let mut chain = Chain::new();
    let sha = alloy_primitives::B256::repeat_byte(0x5a);
    let add = <super::action::ModelAddPayload as alloy_sol_types::SolType>::abi_encode_params(&(
        "qwen-0.5b".to_string(),
        "llm-qwen==1.0".to_string(),
        sha,
        32_768u64,
        1_024u64,
        0u8,
        500u64,
    ));
    let before = register(&mut chain, holder(0xa1), &["qwen-0.5b"]);
    assert!(
        reason(&before).contains("not on the chain's model list"),
        "{before:?}"
    );
    success(chain.propose(holder(0xa3), 2, add.clone()));
    let logs = pass(&mut chain, 1);
    assert_eq!(logs[0].address, REGISTRY_ADDRESS);
    let added = IComputeRegistry::ModelAdded::decode_log_data(&logs[0].data).unwrap();
    assert_eq!((added.id.as_str(), added.units), ("qwen-0.5b", 500));
    let record = {
        let (out, _) = success(
            chain.transact_to(
                REGISTRY_ADDRESS,
                holder(1),
                IComputeRegistry::modelCall {
                    id: "qwen-0.5b".into(),
                }
                .abi_encode(),
            ),
        );
        IComputeRegistry::modelCall::abi_decode_returns(&out).unwrap()
    };
    assert_eq!(
        (
            record.package.as_str(),
            record.sha256,
            record.contextLength,
            record.minMemoryMb,
            record.category
        ),
        (
            "llm-qwen==1.0",
            sha,
            32_768,
            1_024,
            ModelCategory::Text as u8
        )
    );
    assert!(matches!(
        register(&mut chain, holder(0xa1), &["qwen-0.5b"]),
        ExecutionResult::Success { .. }
    ));
    let twice = chain.propose(holder(0xa3), 2, add);
    assert!(reason(&twice).contains("already listed"), "{twice:?}");

    // Selecting it as the network's default; the selected model cannot be removed.
    let selected = |chain: &mut Chain| {
        let (out, _) = success(chain.transact_to(
            REGISTRY_ADDRESS,
            holder(1),
            IComputeRegistry::selectedModelCall {}.abi_encode(),
        ));
        IComputeRegistry::selectedModelCall::abi_decode_returns(&out).unwrap()
    };
    assert_eq!(
        selected(&mut chain),
        "tiny",
        "the first listed until one is selected"
    );
    let unlisted = chain.propose(holder(0xa3), 6, "gpt-9".to_string().abi_encode());
    assert!(reason(&unlisted).contains("not listed"), "{unlisted:?}");
    success(chain.propose(holder(0xa3), 6, "qwen-0.5b".to_string().abi_encode()));
    pass(&mut chain, 2);
    assert_eq!(selected(&mut chain), "qwen-0.5b");
    let busy = chain.propose(holder(0xa3), 3, "qwen-0.5b".to_string().abi_encode());
    assert!(reason(&busy).contains("select another first"), "{busy:?}");

    // Removing "tiny": registering it is refused from the executing block on.
    success(chain.propose(holder(0xa3), 3, "tiny".to_string().abi_encode()));
    let logs = pass(&mut chain, 3);
    let removed = IComputeRegistry::ModelRemoved::decode_log_data(&logs[0].data).unwrap();
    assert_eq!(removed.id, "tiny");
    let refused = register(&mut chain, holder(0xa2), &["tiny"]);
    assert!(
        reason(&refused).contains("not on the chain's model list"),
        "{refused:?}"
    );
    let (out, _) = success(chain.transact_to(
        REGISTRY_ADDRESS,
        holder(1),
        IComputeRegistry::modelsCall {}.abi_encode(),
    ));
    let listed = IComputeRegistry::modelsCall::abi_decode_returns(&out).unwrap();
    assert_eq!(listed.ids, ["qwen-0.5b"]);
    // The last model stays (here it is also the selected one).
    let last = chain.propose(holder(0xa3), 3, "qwen-0.5b".to_string().abi_encode());
    assert!(reason(&last).contains("select another first"), "{last:?}");
    let unknown = chain.propose(holder(0xa3), 3, "gpt-9".to_string().abi_encode());
    assert!(reason(&unknown).contains("not listed"), "{unknown:?}");
}

#[test]
fn an_upgrade_is_recorded_with_its_activation_block_and_only_forward() {
    let mut chain = Chain::new();
    let signal = |version: &str, at: u64| (version.to_string(), at).abi_encode_params();
    let none = chain.view(IGovernance::upgradeCall {});
    assert_eq!((none.version.as_str(), none.activationBlock), ("", 0));
    let bad = chain.propose(holder(0xa1), 4, signal("next", 100));
    assert!(reason(&bad).contains("not a semantic version"), "{bad:?}");
    let past = chain.propose(holder(0xa1), 4, signal("1.0.0", chain.block));
    assert!(
        reason(&past).contains("is not after this block"),
        "{past:?}"
    );
    success(chain.propose(holder(0xa1), 4, signal("1.0.0", 100)));
    let logs = pass(&mut chain, 1);
    let scheduled = IGovernance::UpgradeScheduled::decode_log_data(&logs[0].data).unwrap();
    assert_eq!(
        (scheduled.version.as_str(), scheduled.activationBlock),
        ("1.0.0", 100)
    );
    let recorded = chain.view(IGovernance::upgradeCall {});
    assert_eq!(
        (recorded.version.as_str(), recorded.activationBlock),
        ("1.0.0", 100)
    );
    let older = chain.propose(holder(0xa1), 4, signal("0.9.9", 200));
    assert!(
        reason(&older).contains("not above the 1.0.0 already scheduled"),
        "{older:?}"
    );
    success(chain.propose(holder(0xa1), 4, signal("1.1.0-rc.1", 200)));
}

#[test]
fn emergencies_vote_faster_pause_purchases_and_suspend_providers() {
    let mut chain = Chain::new();
    let emergency = |action: u8, provider: Address| {
        <(
            alloy_sol_types::sol_data::Uint<8>,
            alloy_sol_types::sol_data::Address,
        ) as alloy_sol_types::SolType>::abi_encode_params(&(action, provider))
    };
    assert!(matches!(
        register(&mut chain, holder(0xa1), &["tiny"]),
        ExecutionResult::Success { .. }
    ));
    let (_, logs) = success(chain.propose(holder(0xa3), 5, emergency(0, Address::ZERO)));
    let created = IGovernance::ProposalCreated::decode_log_data(&logs[0].data).unwrap();
    assert_eq!(
        created.voteEnd - created.voteStart,
        U256::from(EMERGENCY_VOTING),
        "an emergency is voted on for emergencyVotingBlocks"
    );
    pass(&mut chain, 1);
    assert!(chain.view(IGovernance::purchasesPausedCall {}));
    success(chain.propose(holder(0xa3), 5, emergency(1, Address::ZERO)));
    pass(&mut chain, 2);
    assert!(!chain.view(IGovernance::purchasesPausedCall {}));

    let stranger = chain.propose(holder(0xa3), 5, emergency(2, holder(0x55)));
    assert!(
        reason(&stranger).contains("never registered"),
        "{stranger:?}"
    );
    let unknown = chain.propose(holder(0xa3), 5, emergency(7, Address::ZERO));
    assert!(
        reason(&unknown).contains("emergency action 7"),
        "{unknown:?}"
    );
    success(chain.propose(holder(0xa3), 5, emergency(2, holder(0xa1))));
    let logs = pass(&mut chain, 3);
    let suspended = logs
        .iter()
        .find_map(|log| IComputeRegistry::Suspended::decode_log_data(&log.data).ok())
        .unwrap();
    assert_eq!(suspended.provider, holder(0xa1));
    let (out, _) = success(
        chain.transact_to(
            REGISTRY_ADDRESS,
            holder(1),
            IComputeRegistry::providerCall {
                account: holder(0xa1),
            }
            .abi_encode(),
        ),
    );
    let record = IComputeRegistry::providerCall::abi_decode_returns(&out).unwrap();
    assert_eq!(
        record.status, 2,
        "leaving: no longer measured, its stake unbonding"
    );
    let again = register(&mut chain, holder(0xa1), &["tiny"]);
    assert!(
        reason(&again).contains("cannot register again"),
        "{again:?}"
    );
}
