use std::{collections::BTreeMap, sync::Arc};

use aicoin_primitives::{ChainSpec, Seal};
use alloy_primitives::{Address, B256, U256};
use alloy_trie::{KECCAK_EMPTY, TrieAccount, root};
use proptest::prelude::*;

use super::*;

fn spec() -> ChainSpec {
    ChainSpec::local(
        2108,
        Address::repeat_byte(0xaa),
        &[Address::repeat_byte(0xbb)],
    )
}

type Model = BTreeMap<Address, (AccountInfo, BTreeMap<U256, U256>)>;

fn model_root(model: &Model) -> B256 {
    root::state_root_unhashed(model.iter().map(|(a, (info, storage))| {
        let storage_root = root::storage_root_unhashed(
            storage
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (B256::from(k.to_be_bytes()), *v)),
        );
        (
            *a,
            TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash),
        )
    }))
}

fn genesis_model(spec: &ChainSpec) -> Model {
    spec.genesis_accounts()
        .into_iter()
        .map(|(a, acc)| {
            let info = AccountInfo {
                nonce: acc.nonce,
                balance: acc.balance,
                code_hash: acc
                    .code
                    .as_ref()
                    .map_or(KECCAK_EMPTY, alloy_primitives::keccak256),
            };
            let storage = acc
                .storage
                .iter()
                .map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0)))
                .collect();
            (a, (info, storage))
        })
        .collect()
}

/// Commits an empty-bodied block carrying `changes`; returns its state root.
fn commit(store: &Store, number: u64, changes: &StateChanges) -> B256 {
    let mut w = store.begin_block(number).unwrap();
    let root = w.apply_state(changes).unwrap();
    let header = alloy_consensus::Header {
        number,
        state_root: root,
        ..Default::default()
    };
    w.insert_block(
        &header,
        header.hash_slow(),
        Some(&Seal::ZERO),
        &[],
        &[],
        &[],
        U256::ZERO,
    )
    .unwrap();
    w.commit().unwrap();
    root
}

fn transfer(to: Address, balance: u64) -> AccountChange {
    AccountChange {
        address: to,
        info: Some(AccountInfo {
            nonce: 0,
            balance: U256::from(balance),
            code_hash: KECCAK_EMPTY,
        }),
        wipe_storage: false,
        storage: vec![],
    }
}

/// Proofs of present and absent accounts and slots verify against the committed state root.
#[test]
fn proofs_verify_against_the_state_root() {
    use alloy_primitives::keccak256;
    use alloy_trie::{Nibbles, proof::verify_proof};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &spec()).unwrap();
    let contract = Address::repeat_byte(0xcc);
    let mut accounts: Vec<_> = (1..=50u8)
        .map(|i| transfer(Address::repeat_byte(i), i as u64))
        .collect();
    accounts.push(AccountChange {
        storage: (1..=20u64)
            .map(|k| (U256::from(k), U256::from(k * 7)))
            .collect(),
        ..transfer(contract, 1)
    });
    let root = commit(
        &store,
        1,
        &StateChanges {
            accounts,
            code: vec![],
        },
    );

    let reader = store.reader().unwrap();
    let slots = [B256::from(U256::from(3u64)), B256::from(U256::from(999u64))];
    for address in [
        contract,
        Address::repeat_byte(7),
        Address::repeat_byte(0xee),
    ] {
        let p = reader.proof(address, &slots).unwrap();
        assert_eq!(p.state_root, root);
        let leaf = p.account.map(alloy_rlp::encode);
        verify_proof(
            root,
            Nibbles::unpack(keccak256(address)),
            leaf,
            &p.account_proof,
        )
        .unwrap();
        for sp in &p.storage {
            let storage_root = p
                .account
                .map_or(alloy_trie::EMPTY_ROOT_HASH, |a| a.storage_root);
            let value = (!sp.value.is_zero()).then(|| alloy_rlp::encode(sp.value));
            verify_proof(
                storage_root,
                Nibbles::unpack(keccak256(sp.slot)),
                value,
                &sp.proof,
            )
            .unwrap();
        }
    }
    let p = reader.proof(contract, &slots).unwrap();
    assert_eq!(p.storage[0].value, U256::from(21u64));
    assert_eq!(p.storage[1].value, U256::ZERO);
}

#[test]
fn genesis_is_created_once_and_bound_to_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec();
    let store = Store::open(dir.path(), &s).unwrap();
    let reader = store.reader().unwrap();
    assert_eq!(reader.head_number().unwrap(), 0);
    let genesis = reader.header(0).unwrap().unwrap();
    assert_eq!(genesis.state_root, model_root(&genesis_model(&s)));
    assert_eq!(reader.issued().unwrap(), s.genesis_supply());
    drop((reader, store));

    assert!(Store::open(dir.path(), &s).is_ok());
    let mut other = s.clone();
    other.chain_id = 5;
    let err = Store::open(dir.path(), &other).unwrap_err();
    assert!(
        matches!(err, StoreError::GenesisMismatch { chain_id: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("holds chain 2108"), "{err}");
}

#[test]
fn uncommitted_block_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &spec()).unwrap();
    let mut w = store.begin_block(1).unwrap();
    w.apply_state(&StateChanges {
        accounts: vec![transfer(Address::repeat_byte(1), 5)],
        code: vec![],
    })
    .unwrap();
    drop(w);
    let reader = store.reader().unwrap();
    assert_eq!(reader.head_number().unwrap(), 0);
    assert!(
        reader
            .state_at(0)
            .unwrap()
            .account(&Address::repeat_byte(1))
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.begin_block(2),
        Err(StoreError::NotNextBlock {
            expected: 1,
            got: 2
        })
    ));
}

#[test]
fn reads_at_older_blocks_see_older_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &spec()).unwrap();
    let a = Address::repeat_byte(1);
    let slot = U256::from(7u64);
    for n in 1..=5u64 {
        let mut change = transfer(a, n * 10);
        // The slot is written at blocks 2 and 4 only, and deleted at 5.
        match n {
            2 | 4 => change.storage.push((slot, U256::from(n))),
            5 => change.storage.push((slot, U256::ZERO)),
            _ => {}
        }
        commit(
            &store,
            n,
            &StateChanges {
                accounts: vec![change],
                code: vec![],
            },
        );
    }
    let reader = store.reader().unwrap();
    for n in 0..=5u64 {
        let state = reader.state_at(n).unwrap();
        let balance = state.account(&a).unwrap().map(|acc| acc.balance);
        assert_eq!(
            balance,
            (n > 0).then(|| U256::from(n * 10)),
            "balance at {n}"
        );
        let expected_slot = match n {
            0 | 1 | 5 => 0u64,
            2 | 3 => 2,
            _ => 4,
        };
        assert_eq!(
            state.storage(&a, &slot).unwrap(),
            U256::from(expected_slot),
            "slot at {n}"
        );
    }
}

#[test]
fn destroyed_account_loses_storage_but_history_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec();
    let store = Store::open(dir.path(), &s).unwrap();
    let mut model = genesis_model(&s);
    let a = Address::repeat_byte(9);
    let mut change = transfer(a, 1);
    change.storage = (1..=20u64)
        .map(|i| (U256::from(i), U256::from(i * 3)))
        .collect();
    let root1 = commit(
        &store,
        1,
        &StateChanges {
            accounts: vec![change.clone()],
            code: vec![],
        },
    );
    model.insert(
        a,
        (
            change.info.unwrap(),
            change.storage.iter().copied().collect(),
        ),
    );
    assert_eq!(root1, model_root(&model));

    let gone = AccountChange {
        address: a,
        info: None,
        wipe_storage: true,
        storage: vec![],
    };
    let root2 = commit(
        &store,
        2,
        &StateChanges {
            accounts: vec![gone],
            code: vec![],
        },
    );
    model.remove(&a);
    assert_eq!(root2, model_root(&model));

    // Re-created in a later block with one slot: the old storage must not reappear.
    let mut again = transfer(a, 2);
    again.wipe_storage = true;
    again.storage = vec![(U256::from(1u64), U256::from(99u64))];
    let root3 = commit(
        &store,
        3,
        &StateChanges {
            accounts: vec![again.clone()],
            code: vec![],
        },
    );
    model.insert(
        a,
        (again.info.unwrap(), again.storage.iter().copied().collect()),
    );
    assert_eq!(root3, model_root(&model));

    let reader = store.reader().unwrap();
    assert_eq!(
        reader
            .state_at(1)
            .unwrap()
            .storage(&a, &U256::from(5u64))
            .unwrap(),
        U256::from(15u64)
    );
    assert_eq!(
        reader
            .state_at(3)
            .unwrap()
            .storage(&a, &U256::from(5u64))
            .unwrap(),
        U256::ZERO
    );
    assert!(reader.state_at(2).unwrap().account(&a).unwrap().is_none());
}

#[derive(Debug, Clone)]
struct Op {
    account: u8,
    balance: Option<u64>,
    slots: Vec<(u8, u64)>,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0u8..24,
        prop::option::weighted(0.85, 0u64..1_000),
        prop::collection::vec((0u8..16, 0u64..4), 0..4),
    )
        .prop_map(|(account, balance, slots)| Op {
            account,
            balance,
            slots,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Over random histories of creations, updates, storage writes and deletions, the
    /// incrementally maintained state root equals a from-scratch computation after every block.
    #[test]
    fn state_root_matches_from_scratch(blocks in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let s = spec();
        let store = Store::open(dir.path(), &s).unwrap();
        let mut model = genesis_model(&s);
        for (i, ops) in blocks.into_iter().enumerate() {
            let mut changes: BTreeMap<Address, AccountChange> = BTreeMap::new();
            for op in ops {
                let address = Address::with_last_byte(op.account);
                let change = changes.entry(address).or_insert_with(|| AccountChange {
                    address, info: None, wipe_storage: false, storage: vec![],
                });
                match op.balance {
                    None => {
                        *change = AccountChange { address, info: None, wipe_storage: true, storage: vec![] };
                    }
                    Some(b) => {
                        let info = AccountInfo { nonce: 1, balance: U256::from(b), code_hash: KECCAK_EMPTY };
                        change.info = Some(info);
                        change.storage.retain(|(k, _)| !op.slots.iter().any(|(s, _)| U256::from(*s) == *k));
                        change.storage.extend(op.slots.iter().map(|(s, v)| (U256::from(*s), U256::from(*v))));
                    }
                }
            }
            for change in changes.values() {
                match change.info {
                    None => { model.remove(&change.address); }
                    Some(info) => {
                        let entry = model.entry(change.address).or_insert_with(|| (info, BTreeMap::new()));
                        if change.wipe_storage { entry.1.clear(); }
                        entry.0 = info;
                        for (k, v) in &change.storage { entry.1.insert(*k, *v); }
                    }
                }
            }
            let changes = StateChanges { accounts: changes.into_values().collect(), code: vec![] };
            let root = commit(&store, i as u64 + 1, &changes);
            prop_assert_eq!(root, model_root(&model));
            prop_assert_eq!(store.reader().unwrap().rebuild_state_root().unwrap(), root);
        }
    }
}

#[test]
fn a_data_dir_of_the_old_header_format_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    drop(Store::open(dir.path(), &spec).unwrap());
    // What aicoin 0.5 left: the same tables, no format marker.
    {
        let db = Database::open(dir.path().join("chain.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().remove(META_FORMAT).unwrap();
        txn.commit().unwrap();
    }
    for err in [
        Store::open(dir.path(), &spec).unwrap_err(),
        Store::open_existing(dir.path()).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::OldFormat(_)), "{err}");
        assert!(err.to_string().contains("start a fresh one"), "{err}");
    }
}

#[test]
fn blocks_keep_their_seal_beside_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &spec()).unwrap();
    // Before block 1 (a node that just started): genesis reads as a block with no seal.
    assert_eq!(store.reader().unwrap().seal(0).unwrap(), None);
    commit(&store, 1, &StateChanges::default());
    let reader = store.reader().unwrap();
    assert_eq!(reader.seal(0).unwrap(), None, "no one seals genesis");
    assert!(reader.sealed_block(0).unwrap().is_none());
    let block = reader.sealed_block(1).unwrap().unwrap();
    assert_eq!(block.seal, Seal::ZERO);
    assert_eq!(block.header, reader.header(1).unwrap().unwrap());
}

/// Readers opened between two commits share one snapshot; each commit is seen by the next
/// reader at once, from any clone of the store and any thread, while readers opened before it
/// keep their view.
#[test]
fn the_next_reader_after_a_commit_sees_it_and_older_readers_keep_their_view() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &spec()).unwrap();
    let a = Address::repeat_byte(1);
    let balance = |reader: &Reader| {
        let head = reader.head_number().unwrap();
        let account = reader.state_at(head).unwrap().account(&a).unwrap();
        (head, account.map(|acc| acc.balance))
    };
    let before = store.reader().unwrap();
    assert!(Arc::ptr_eq(&before.0, &store.reader().unwrap().0));
    for n in 1..=3u64 {
        let changes = StateChanges {
            accounts: vec![transfer(a, n)],
            code: vec![],
        };
        commit(&store.clone(), n, &changes);
        let seen = std::thread::scope(|s| s.spawn(|| balance(&store.reader().unwrap())).join());
        assert_eq!(seen.unwrap(), (n, Some(U256::from(n))));
    }
    assert_eq!(balance(&before), (0, None));
}

#[tokio::test]
async fn a_write_failure_wakes_whoever_waits_for_one_and_other_errors_do_not() {
    let failure = Failure::default();
    let waiting = tokio::spawn({
        let failure = failure.clone();
        async move { failure.noted().await.to_string() }
    });
    tokio::task::yield_now().await;
    failure.note(StoreError::Corrupt("a bad row".into()));
    assert!(
        failure.get().is_none(),
        "a corrupt row leaves the database writable"
    );
    failure.note(StoreError::Db(redb::Error::PreviousIo));
    let why = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the waiter wakes")
        .unwrap();
    assert_eq!(Some(why.as_str()), failure.get());
    // Only the first failure is kept, and a later waiter sees it at once.
    failure.note(StoreError::Db(redb::Error::PreviousIo));
    assert_eq!(failure.noted().await, why);
}
