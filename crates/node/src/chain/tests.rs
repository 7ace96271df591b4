//! Block production and import end to end on a real store: zero fees, contracts, rewards, the
//! supply cap, and import's checks.

use std::sync::Arc;

use aicoin_primitives::{AIC, ChainSpec, dev::dev_signers, sign_transaction};
use aicoin_storage::Store;
use aicoin_txpool::{PoolConfig, SenderState, TxPool};
use alloy_consensus::{TxEip1559, TxEnvelope, TxLegacy, transaction::Recovered};
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, sol};

use super::*;

sol! {
    function set(uint256 v);
    function value() returns (uint256);
    function deploy(bytes32 salt) returns (address);
    function predict(bytes32 salt) returns (address);
    function transfer(address to, uint256 value) returns (bool);
    function balanceOf(address owner) returns (uint256);
}

fn bytecode(name: &str) -> Bytes {
    aicoin_primitives::testing::contract_bytecode(name)
}

struct Harness {
    _dir: tempfile::TempDir,
    chain: Chain,
    pool: TxPool,
    sealer: Sealer,
    users: Vec<PrivateKeySigner>,
    time: u64,
}

impl Harness {
    fn new() -> Self {
        Self::with_spec(|spec| spec)
    }

    fn with_spec(edit: impl FnOnce(ChainSpec) -> ChainSpec) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKeySigner::random();
        let users = dev_signers().unwrap();
        let addresses: Vec<Address> = users.iter().map(|s| s.address()).collect();
        let spec = edit(ChainSpec::local(2108, key.address(), &addresses));
        let store = Store::open(dir.path(), &spec).unwrap();
        let sealer = Sealer {
            beneficiary: Address::repeat_byte(0xbe),
            key,
            gas_limit: 30_000_000,
        };
        Self {
            _dir: dir,
            chain: Chain::new(store, Arc::new(spec)),
            pool: TxPool::new(PoolConfig::default()),
            sealer,
            users,
            time: 1_000,
        }
    }

    fn nonce(&self, who: Address) -> u64 {
        let reader = self.chain.store().reader().unwrap();
        let head = reader.head_number().unwrap();
        reader
            .state_at(head)
            .unwrap()
            .account(&who)
            .unwrap()
            .map_or(0, |a| a.nonce)
    }

    fn balance(&self, who: Address) -> U256 {
        let reader = self.chain.store().reader().unwrap();
        let head = reader.head_number().unwrap();
        reader
            .state_at(head)
            .unwrap()
            .account(&who)
            .unwrap()
            .map_or(U256::ZERO, |a| a.balance)
    }

    fn sign(
        &self,
        who: usize,
        nonce: u64,
        to: TxKind,
        value: U256,
        input: Bytes,
    ) -> Recovered<TxEnvelope> {
        let signer = &self.users[who];
        let tx = TxEip1559 {
            chain_id: 2108,
            nonce,
            gas_limit: 3_000_000,
            max_fee_per_gas: 7_000_000_000,
            max_priority_fee_per_gas: 2_000_000_000,
            to,
            value,
            input,
            access_list: Default::default(),
        };
        Recovered::new_unchecked(sign_transaction(signer, tx).unwrap(), signer.address())
    }

    /// A plain 21,000-gas legacy transfer of 1 wei.
    fn transfer(&self, who: usize, nonce: u64) -> Recovered<TxEnvelope> {
        let signer = &self.users[who];
        let tx = TxLegacy {
            chain_id: Some(2108),
            nonce,
            gas_price: 0,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(0x42)),
            value: U256::from(1u64),
            input: Bytes::new(),
        };
        Recovered::new_unchecked(sign_transaction(signer, tx).unwrap(), signer.address())
    }

    /// Pools `txs` and produces one block.
    fn block(&mut self, txs: Vec<Recovered<TxEnvelope>>) -> Produced {
        for tx in txs {
            let state = SenderState {
                nonce: self.nonce(tx.signer()),
                balance: U256::MAX,
            };
            self.pool.add(tx, state).unwrap();
        }
        self.time += 3;
        let produced = self
            .chain
            .produce(&self.sealer, self.time, &mut self.pool.best())
            .unwrap();
        self.pool.on_new_block(produced.next_nonces.clone());
        assert!(
            produced.rejected.is_empty(),
            "rejected: {:?}",
            produced.rejected
        );
        produced
    }

    fn receipts(&self, number: u64) -> Vec<TxReceipt> {
        self.chain
            .store()
            .reader()
            .unwrap()
            .receipts(number)
            .unwrap()
    }

    fn call(&self, to: Address, input: Vec<u8>) -> Bytes {
        let reader = self.chain.store().reader().unwrap();
        let head = reader.head_number().unwrap();
        let header = reader.header(head).unwrap().unwrap();
        let request = alloy_rpc_types_eth::TransactionRequest::default()
            .to(to)
            .input(input.into());
        let mut env = aicoin_execution::CallEnv::new(
            StateDb::at(reader, head).unwrap(),
            block_env(2108, &header),
            Default::default(),
        )
        .unwrap();
        match aicoin_execution::call(&mut env, request).unwrap() {
            aicoin_execution::CallOutcome::Success { output, .. } => output,
            other => panic!("call failed: {other:?}"),
        }
    }
}

use aicoin_primitives::TxReceipt;

#[test]
fn transfers_cost_nothing_but_the_value() {
    let mut h = Harness::new();
    let to = Address::repeat_byte(0x77);
    let sender = h.users[0].address();
    let before = h.balance(sender);
    let value = AIC * U256::from(3u64);
    let produced = h.block(vec![h.sign(0, 0, TxKind::Call(to), value, Bytes::new())]);
    assert_eq!(produced.block.transactions.len(), 1);
    assert_eq!(h.balance(to), value);
    assert_eq!(
        before - h.balance(sender),
        value,
        "nothing but the value is charged"
    );
    let receipt = &h.receipts(1)[0];
    assert!(receipt.success);
    assert_eq!(receipt.cumulative_gas_used, 21_000);
}

#[test]
fn contracts_deploy_run_emit_and_create2() {
    let mut h = Harness::new();
    let probe = h.users[0].address().create(0);
    h.block(vec![h.sign(
        0,
        0,
        TxKind::Create,
        U256::ZERO,
        bytecode("Probe"),
    )]);
    assert!(h.receipts(1)[0].success, "deployment succeeds");

    h.block(vec![
        h.sign(
            0,
            1,
            TxKind::Call(probe),
            U256::ZERO,
            setCall {
                v: U256::from(42u64),
            }
            .abi_encode()
            .into(),
        ),
    ]);
    let receipt = &h.receipts(2)[0];
    assert!(receipt.success);
    assert_eq!(receipt.logs.len(), 1, "ValueSet is emitted");
    assert_eq!(receipt.logs[0].address, probe);
    let value = h.call(probe, valueCall {}.abi_encode());
    assert_eq!(U256::from_be_slice(&value), U256::from(42u64));

    let salt = alloy_primitives::B256::repeat_byte(5);
    let predicted = h.call(probe, predictCall { salt }.abi_encode());
    h.block(vec![h.sign(
        0,
        2,
        TxKind::Call(probe),
        U256::ZERO,
        deployCall { salt }.abi_encode().into(),
    )]);
    assert!(h.receipts(3)[0].success);
    let child = Address::from_slice(&predicted[12..]);
    let reader = h.chain.store().reader().unwrap();
    let account = reader
        .state_at(3)
        .unwrap()
        .account(&child)
        .unwrap()
        .expect("CREATE2 child exists");
    assert_ne!(account.code_hash, alloy_trie::KECCAK_EMPTY);
}

#[test]
fn erc20_transfers_move_balances() {
    let mut h = Harness::new();
    let token = h.users[0].address().create(0);
    let supply = AIC * U256::from(1_000u64);
    let ctor = alloy_sol_types::SolValue::abi_encode_params(&(
        "Test".to_string(),
        "TST".to_string(),
        supply,
    ));
    let mut init = bytecode("Token").to_vec();
    init.extend(ctor);
    h.block(vec![h.sign(0, 0, TxKind::Create, U256::ZERO, init.into())]);
    let to = Address::repeat_byte(9);
    h.block(vec![h.sign(
        0,
        1,
        TxKind::Call(token),
        U256::ZERO,
        transferCall { to, value: AIC }.abi_encode().into(),
    )]);
    let balance = h.call(token, balanceOfCall { owner: to }.abi_encode());
    assert_eq!(U256::from_be_slice(&balance), AIC);
}

#[test]
fn rewards_split_80_20_and_stop_at_the_cap() {
    // Leave exactly 70 AIC of room under the cap: 50, then 20, then nothing.
    let mut h = Harness::with_spec(|mut spec| {
        spec.tokenomics.max_supply = spec.genesis_supply() + AIC * U256::from(70u64);
        spec
    });
    let (beneficiary, treasury) = (h.sealer.beneficiary, h.chain.spec().treasury);
    let max_supply = h.chain.spec().tokenomics.max_supply;
    h.block(vec![]);
    assert_eq!(h.balance(beneficiary), AIC * U256::from(40u64));
    assert_eq!(h.balance(treasury), AIC * U256::from(10u64));
    h.block(vec![]);
    assert_eq!(h.balance(beneficiary), AIC * U256::from(56u64));
    assert_eq!(h.balance(treasury), AIC * U256::from(14u64));
    for _ in 0..3 {
        h.block(vec![]);
    }
    assert_eq!(
        h.balance(beneficiary) + h.balance(treasury),
        AIC * U256::from(70u64)
    );
    assert_eq!(
        h.chain.store().reader().unwrap().issued().unwrap(),
        max_supply
    );
}

/// Writes block `number` straight into the store with `params` set in the parameters module's
/// state, as if governance had changed them in that block.
fn write_params_block(h: &mut Harness, params: &[(&str, U256)]) {
    use aicoin_primitives::{Seal, modules::PARAMS_ADDRESS, param_key};
    use aicoin_storage::{AccountChange, AccountInfo, StateChanges};
    let store = h.chain.store();
    let reader = store.reader().unwrap();
    let head = reader.head_number().unwrap();
    let module = reader
        .state_at(head)
        .unwrap()
        .account(&PARAMS_ADDRESS)
        .unwrap()
        .unwrap();
    let parent = reader.header(head).unwrap().unwrap();
    let issued = reader.issued().unwrap();
    let changes = StateChanges {
        accounts: vec![AccountChange {
            address: PARAMS_ADDRESS,
            wipe_storage: false,
            info: Some(AccountInfo {
                nonce: module.nonce,
                balance: module.balance,
                code_hash: module.code_hash,
            }),
            storage: params
                .iter()
                .map(|(name, value)| (param_key(name).into(), *value))
                .collect(),
        }],
        code: Default::default(),
    };
    h.time += 3;
    let mut header = aicoin_consensus::header_template(
        &parent,
        parent.hash_slow(),
        h.sealer.beneficiary,
        h.time,
        h.sealer.gas_limit,
        h.sealer.key.address(),
    );
    let mut writer = store.begin_block(head + 1).unwrap();
    header.state_root = writer.apply_state(&changes).unwrap();
    let hash = header.hash_slow();
    writer
        .insert_block(&header, hash, Some(&Seal::ZERO), &[], &[], &[], issued)
        .unwrap();
    writer.commit().unwrap();
}

#[test]
fn rewards_follow_the_parameters_in_state_from_the_block_that_changes_them() {
    use aicoin_primitives::modules::PARAMS_ADDRESS;
    sol! {
        function initialReward() returns (uint256);
        function treasuryShareBps() returns (uint256);
    }
    let mut h = Harness::new();
    let (beneficiary, treasury) = (h.sealer.beneficiary, h.chain.spec().treasury);
    let reward = |h: &Harness| h.call(PARAMS_ADDRESS, initialRewardCall {}.abi_encode());
    assert_eq!(
        U256::from_be_slice(&reward(&h)),
        AIC * U256::from(50u64),
        "genesis parameters come from the spec"
    );
    h.block(vec![]);
    assert_eq!(h.balance(beneficiary), AIC * U256::from(40u64));
    assert_eq!(h.balance(treasury), AIC * U256::from(10u64));

    // Block 2 changes the schedule in state: 10 AIC a block, half to the treasury.
    write_params_block(
        &mut h,
        &[
            ("initialReward", AIC * U256::from(10u64)),
            ("treasuryShareBps", U256::from(5_000u64)),
        ],
    );
    assert_eq!(U256::from_be_slice(&reward(&h)), AIC * U256::from(10u64));
    let share = h.call(PARAMS_ADDRESS, treasuryShareBpsCall {}.abi_encode());
    assert_eq!(U256::from_be_slice(&share), U256::from(5_000u64));
    let issued = h.chain.store().reader().unwrap().issued().unwrap();
    h.block(vec![]);
    h.block(vec![]);
    assert_eq!(h.balance(beneficiary), AIC * U256::from(40u64 + 5 + 5));
    assert_eq!(h.balance(treasury), AIC * U256::from(10u64 + 5 + 5));
    assert_eq!(
        h.chain.store().reader().unwrap().issued().unwrap(),
        issued + AIC * U256::from(20u64)
    );
}

#[test]
fn no_parameter_takes_issuance_past_the_cap() {
    // Room for 30 AIC under the cap, and parameters that would pay 1,000 a block.
    let mut h = Harness::with_spec(|mut spec| {
        spec.tokenomics.max_supply = spec.genesis_supply() + AIC * U256::from(30u64);
        spec
    });
    write_params_block(&mut h, &[("initialReward", AIC * U256::from(1_000u64))]);
    for _ in 0..3 {
        h.block(vec![]);
    }
    let reader = h.chain.store().reader().unwrap();
    assert_eq!(
        reader.issued().unwrap(),
        h.chain.spec().tokenomics.max_supply
    );
    assert_eq!(
        h.balance(h.sealer.beneficiary) + h.balance(h.chain.spec().treasury),
        AIC * U256::from(30u64)
    );
}

#[test]
fn unexecutable_transactions_are_rejected_not_included() {
    let h = Harness::new();
    // Passes the pool (which is told the balance is unlimited) but cannot pay its value.
    let too_much = AIC * U256::from(1_000_000u64);
    let poor = h.sign(1, 0, TxKind::Call(Address::ZERO), too_much, Bytes::new());
    let hash = *poor.tx_hash();
    h.pool
        .add(
            poor,
            SenderState {
                nonce: 0,
                balance: U256::MAX,
            },
        )
        .unwrap();
    let produced = h
        .chain
        .produce(&h.sealer, 2_000, &mut h.pool.best())
        .unwrap();
    assert!(produced.block.transactions.is_empty());
    assert_eq!(produced.rejected.len(), 1);
    assert_eq!(produced.rejected[0].0, hash);
    assert!(
        produced.rejected[0].1.contains("funds"),
        "{}",
        produced.rejected[0].1
    );
}

#[test]
fn reverted_transactions_are_mined_as_failed() {
    let mut h = Harness::new();
    let probe = h.users[0].address().create(0);
    h.block(vec![h.sign(
        0,
        0,
        TxKind::Create,
        U256::ZERO,
        bytecode("Probe"),
    )]);
    sol! { function fail(string reason); }
    let input = failCall {
        reason: "nope".into(),
    }
    .abi_encode();
    h.block(vec![h.sign(
        0,
        1,
        TxKind::Call(probe),
        U256::ZERO,
        input.into(),
    )]);
    let receipt = &h.receipts(2)[0];
    assert!(!receipt.success);
    assert!(receipt.cumulative_gas_used > 21_000);
}

#[test]
fn full_blocks_carry_transactions_over() {
    let mut h = Harness::new();
    h.sealer.gas_limit = 50_000; // two transfers fit, not three
    let txs = (0..3).map(|n| h.transfer(2, n)).collect();
    let first = h.block(txs);
    assert_eq!(first.block.transactions.len(), 2);
    let second = h.block(vec![]);
    assert_eq!(second.block.transactions.len(), 1);
}

/// Reads block `number` back as (header, transactions) for import elsewhere.
fn stored_block(h: &Harness, number: u64) -> SealedBlock {
    h.chain.block(number).unwrap().unwrap()
}

/// A second store with the same spec as `h`, ready to import its blocks.
fn replica(h: &Harness) -> (tempfile::TempDir, Chain) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), h.chain.spec()).unwrap();
    (dir, Chain::new(store, h.chain.spec().clone()))
}

#[test]
fn import_reproduces_the_producers_chain() {
    let mut h = Harness::new();
    let probe = h.users[0].address().create(0);
    h.block(vec![h.sign(
        0,
        0,
        TxKind::Create,
        U256::ZERO,
        bytecode("Probe"),
    )]);
    h.block(vec![
        h.sign(
            0,
            1,
            TxKind::Call(probe),
            U256::ZERO,
            setCall {
                v: U256::from(7u64),
            }
            .abi_encode()
            .into(),
        ),
        h.sign(
            3,
            0,
            TxKind::Call(Address::repeat_byte(1)),
            AIC,
            Bytes::new(),
        ),
    ]);
    let (_dir, other) = replica(&h);
    for n in 1..=2 {
        let block = stored_block(&h, n);
        let expected = block.hash();
        let imported = other.import(block, 5_000).unwrap();
        assert_eq!(imported.hash, expected);
    }
}

#[test]
fn import_rejects_foreign_seals_and_wrong_contents() {
    let mut h = Harness::new();
    h.block(vec![h.sign(
        0,
        0,
        TxKind::Call(Address::repeat_byte(1)),
        AIC,
        Bytes::new(),
    )]);
    let block = stored_block(&h, 1);
    let (_dir, other) = replica(&h);

    let stranger = PrivateKeySigner::random();
    let mut forged = block.header.clone();
    forged.extra_data = aicoin_consensus::sealer_extra_data(stranger.address());
    let forged = seal_block(forged, block.transactions.clone(), &stranger).unwrap();
    let err = other.import(forged, 5_000).unwrap_err();
    assert!(
        matches!(err, ChainError::Header(HeaderError::UnknownSealer(a)) if a == stranger.address()),
        "{err}"
    );

    // The authority's seal on a header that names the stranger as sealer.
    let mut renamed = block.clone();
    renamed.header.extra_data = aicoin_consensus::sealer_extra_data(stranger.address());
    let err = other.import(renamed, 5_000).unwrap_err();
    assert!(
        matches!(err, ChainError::Header(HeaderError::Seal(_))),
        "{err}"
    );

    // Sealed by the authority but claiming a different state: re-execution catches it.
    let mut lying = block.header.clone();
    lying.state_root = alloy_primitives::B256::repeat_byte(1);
    let lying = seal_block(lying, block.transactions.clone(), &h.sealer.key).unwrap();
    let err = other.import(lying, 5_000).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Mismatch {
                field: "stateRoot",
                ..
            }
        ),
        "{err}"
    );

    // Transactions that are not the ones the header commits to.
    let emptied = SealedBlock {
        transactions: vec![],
        ..block.clone()
    };
    let err = other.import(emptied, 5_000).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Mismatch {
                field: "transactionsRoot",
                ..
            }
        ),
        "{err}"
    );

    // Nothing was committed by the failures; the genuine block still imports.
    assert_eq!(other.store().reader().unwrap().head_number().unwrap(), 0);
    other.import(block, 5_000).unwrap();
}

/// A replicated validator builds a block, the cluster commits it, and importing it reuses the
/// build's execution; a different block committed at that height (another leader's) is executed
/// in full instead. Both paths leave the same chain as a replica that executes everything.
#[test]
fn committed_proposals_import_from_their_build() {
    let h = Harness::new();
    let (_dir, other) = replica(&h);
    let proposed = |chain: &Chain| {
        chain
            .proposed
            .lock()
            .unwrap()
            .as_ref()
            .map(|(hash, _)| *hash)
    };
    let tx = h.transfer(0, 0);
    let state = SenderState {
        nonce: 0,
        balance: U256::MAX,
    };
    h.pool.add(tx.clone(), state).unwrap();
    // This node proposes block 1 with the transfer, but another leader's empty block 1 is what
    // the cluster commits.
    let lost = h.chain.build(&h.sealer, 1_003, &mut h.pool.best()).unwrap();
    assert_eq!(lost.block.transactions.len(), 1);
    let empty = TxPool::new(PoolConfig::default());
    let winner = other.build(&h.sealer, 1_004, &mut empty.best()).unwrap();
    assert!(matches!(
        h.chain.import_committed(winner.block.clone()).unwrap(),
        Committed::Imported { .. }
    ));
    assert_eq!(proposed(&h.chain), None, "the lost proposal is forgotten");
    assert_eq!(
        h.chain.store().reader().unwrap().block_hash(1).unwrap(),
        Some(winner.block.hash())
    );
    // Its own proposal of block 2, committed, is stored from the execution already done.
    let mine = h.chain.build(&h.sealer, 1_006, &mut h.pool.best()).unwrap();
    let hash = mine.block.hash();
    assert_eq!(proposed(&h.chain), Some(hash));
    h.chain.import_committed(mine.block.clone()).unwrap();
    assert_eq!(proposed(&h.chain), None);
    assert_eq!(h.receipts(2).len(), 1);
    assert_eq!(h.nonce(h.users[0].address()), 1);
    // The replica proposed block 1 itself and executes block 2 from scratch: same chain, roots
    // included.
    other.import_committed(winner.block).unwrap();
    other.import_committed(mine.block).unwrap();
    assert_eq!(
        other.store().reader().unwrap().block_hash(2).unwrap(),
        Some(hash)
    );
}

/// Governance on a real store: a vote weighs the voter's balance at the end of the snapshot
/// block, counting what it received in that block and nothing from the proposal's own block on.
#[test]
fn votes_weigh_the_balance_at_the_end_of_the_snapshot_block() {
    use aicoin_modules::governance::IGovernance;
    use aicoin_primitives::modules::GOVERNANCE_ADDRESS;
    use alloy_sol_types::SolValue;

    let mut h = Harness::new();
    let voter = h.users[3].address();
    let aic = |n: u64| AIC * U256::from(n);
    let before = h.balance(voter);
    // Block 1, the snapshot: the voter receives 5 AIC.
    h.block(vec![h.sign(
        0,
        0,
        TxKind::Call(voter),
        aic(5),
        Bytes::new(),
    )]);
    // Block 2: the proposal, and 7 AIC more to the voter in the same block.
    let propose = IGovernance::proposeCall {
        kind: 0,
        payload: (
            aicoin_primitives::param_key("epochLength"),
            U256::from(50u64),
        )
            .abi_encode()
            .into(),
        description: "test".into(),
    };
    h.block(vec![
        h.sign(2, 0, TxKind::Call(voter), aic(7), Bytes::new()),
        h.sign(
            1,
            0,
            TxKind::Call(GOVERNANCE_ADDRESS),
            U256::ZERO,
            propose.abi_encode().into(),
        ),
    ]);
    assert!(h.receipts(2).iter().all(|r| r.success));
    // Block 3: the vote.
    let vote = IGovernance::voteCall {
        proposalId: U256::ONE,
        support: 1,
    };
    h.block(vec![h.sign(
        3,
        0,
        TxKind::Call(GOVERNANCE_ADDRESS),
        U256::ZERO,
        vote.abi_encode().into(),
    )]);
    assert!(h.receipts(3)[0].success);
    let votes = IGovernance::proposalVotesCall {
        proposalId: U256::ONE,
    };
    let tally = IGovernance::proposalVotesCall::abi_decode_returns(
        &h.call(GOVERNANCE_ADDRESS, votes.abi_encode()),
    )
    .unwrap();
    assert_eq!(tally.forVotes, before + aic(5));
    let at = |block: u64| IGovernance::getVotesCall {
        account: voter,
        blockNumber: U256::from(block),
    };
    let weight = |h: &Harness, block: u64| {
        IGovernance::getVotesCall::abi_decode_returns(
            &h.call(GOVERNANCE_ADDRESS, at(block).abi_encode()),
        )
        .unwrap()
    };
    assert_eq!(weight(&h, 0), before);
    assert_eq!(weight(&h, 2), before + aic(12));
}
