use alloy_consensus::TxLegacy;
use alloy_primitives::{Bytes, TxKind};
use alloy_signer_local::PrivateKeySigner;

use super::*;

fn signer(n: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(n)).unwrap()
}

fn tx_with(
    signer: &PrivateKeySigner,
    nonce: u64,
    value: u64,
    input: usize,
) -> Recovered<TxEnvelope> {
    let tx = TxLegacy {
        chain_id: Some(2108),
        nonce,
        gas_price: 0,
        gas_limit: 1_000_000,
        to: TxKind::Call(Address::repeat_byte(0xee)),
        value: U256::from(value),
        input: Bytes::from(vec![0u8; input]),
    };
    let tx = aicoin_primitives::sign_transaction(signer, tx).unwrap();
    Recovered::new_unchecked(tx, signer.address())
}

fn tx(signer: &PrivateKeySigner, nonce: u64) -> Recovered<TxEnvelope> {
    tx_with(signer, nonce, 1, 0)
}

fn rich(nonce: u64) -> SenderState {
    SenderState {
        nonce,
        balance: U256::from(1_000_000u64),
    }
}

fn order(pool: &TxPool) -> Vec<(Address, u64)> {
    pool.best().map(|t| (t.sender(), t.nonce())).collect()
}

#[test]
fn gap_makes_queued_and_filling_it_promotes() {
    let pool = TxPool::new(PoolConfig::default());
    let a = signer(1);
    assert!(!pool.add(tx(&a, 0), rich(0)).unwrap().queued);
    assert!(pool.add(tx(&a, 2), rich(0)).unwrap().queued);
    assert_eq!(
        pool.status(),
        PoolStatus {
            pending: 1,
            queued: 1,
            bytes: pool.status().bytes
        }
    );
    assert_eq!(pool.pending_nonce(&a.address()), Some(1));

    assert!(!pool.add(tx(&a, 1), rich(0)).unwrap().queued);
    assert_eq!((pool.status().pending, pool.status().queued), (3, 0));
    assert_eq!(pool.pending_nonce(&a.address()), Some(3));
    assert_eq!(
        order(&pool),
        vec![(a.address(), 0), (a.address(), 1), (a.address(), 2)]
    );
}

#[test]
fn same_nonce_replaces() {
    let pool = TxPool::new(PoolConfig::default());
    let a = signer(1);
    let first = pool.add(tx_with(&a, 0, 1, 0), rich(0)).unwrap();
    let second = pool.add(tx_with(&a, 0, 2, 0), rich(0)).unwrap();
    assert_eq!(second.replaced, Some(first.hash));
    assert!(pool.get(&first.hash).is_none());
    assert_eq!(pool.best().next().unwrap().hash, second.hash);
    assert_eq!(pool.status().pending, 1);
    assert_eq!(
        pool.add(tx_with(&a, 0, 2, 0), rich(0)),
        Err(PoolError::AlreadyKnown)
    );
}

#[test]
fn nonce_and_balance_are_checked() {
    let pool = TxPool::new(PoolConfig {
        max_nonce_gap: 4,
        ..Default::default()
    });
    let a = signer(1);
    assert_eq!(
        pool.add(tx(&a, 2), rich(3)),
        Err(PoolError::NonceTooLow { nonce: 2, state: 3 })
    );
    assert_eq!(
        pool.add(tx(&a, 8), rich(3)),
        Err(PoolError::NonceTooHigh {
            nonce: 8,
            next: 3,
            max_gap: 4
        })
    );
    assert!(pool.add(tx(&a, 7), rich(3)).is_ok());
    // The gap counts from the end of the sender's pending run, so a long run is no gap.
    for n in 3..7 {
        pool.add(tx(&a, n), rich(3)).unwrap();
    }
    assert!(pool.add(tx(&a, 12), rich(3)).is_ok());
    assert!(matches!(
        pool.add(tx(&a, 13), rich(3)),
        Err(PoolError::NonceTooHigh { next: 8, .. })
    ));
    let poor = SenderState {
        nonce: 0,
        balance: U256::ZERO,
    };
    assert_eq!(
        pool.add(tx_with(&signer(2), 0, 5, 0), poor),
        Err(PoolError::InsufficientFunds {
            balance: U256::ZERO,
            cost: U256::from(5u64)
        })
    );
    // Zero-value transactions from empty accounts are free to send and accepted.
    assert!(pool.add(tx_with(&signer(2), 0, 0, 0), poor).is_ok());
}

#[test]
fn caps_refuse_instead_of_growing() {
    let pool = TxPool::new(PoolConfig {
        max_per_sender: 2,
        max_txs: 4,
        max_queued: 1,
        ..Default::default()
    });
    let (a, b, c) = (signer(1), signer(2), signer(3));
    pool.add(tx(&a, 0), rich(0)).unwrap();
    pool.add(tx(&a, 1), rich(0)).unwrap();
    assert!(matches!(
        pool.add(tx(&a, 2), rich(0)),
        Err(PoolError::SenderLimit { limit: 2, .. })
    ));
    // Replacing within the cap is still allowed.
    assert!(pool.add(tx_with(&a, 1, 9, 0), rich(0)).is_ok());
    pool.add(tx(&b, 5), rich(0)).unwrap();
    assert_eq!(
        pool.add(tx(&c, 3), rich(0)),
        Err(PoolError::PoolFull("queued transaction limit reached"))
    );
    pool.add(tx(&c, 0), rich(0)).unwrap();
    assert_eq!(
        pool.add(tx(&c, 1), rich(0)),
        Err(PoolError::PoolFull("transaction count limit reached"))
    );

    let small = TxPool::new(PoolConfig {
        max_bytes: 300,
        ..Default::default()
    });
    small.add(tx_with(&a, 0, 1, 100), rich(0)).unwrap();
    assert_eq!(
        small.add(tx_with(&b, 0, 1, 100), rich(0)),
        Err(PoolError::PoolFull("size limit reached"))
    );
}

#[test]
fn best_follows_arrival_across_senders_and_nonce_within() {
    let pool = TxPool::new(PoolConfig::default());
    let (a, b) = (signer(1), signer(2));
    pool.add(tx(&b, 0), rich(0)).unwrap();
    pool.add(tx(&a, 1), rich(0)).unwrap(); // queued until nonce 0 arrives
    pool.add(tx(&a, 0), rich(0)).unwrap();
    pool.add(tx(&b, 1), rich(0)).unwrap();
    assert_eq!(
        order(&pool),
        vec![
            (b.address(), 0),
            (a.address(), 0),
            (a.address(), 1),
            (b.address(), 1)
        ]
    );

    let mut best = pool.best();
    let first = best.next().unwrap();
    best.skip_sender(first.sender());
    assert_eq!(
        best.map(|t| t.sender()).collect::<Vec<_>>(),
        vec![a.address(), a.address()]
    );
}

#[test]
fn new_block_drops_included_and_promotes() {
    let pool = TxPool::new(PoolConfig::default());
    let a = signer(1);
    for n in [0, 1, 3] {
        pool.add(tx(&a, n), rich(0)).unwrap();
    }
    assert_eq!((pool.status().pending, pool.status().queued), (2, 1));
    // Block included nonces 0..=2 (2 came from elsewhere): 3 becomes pending.
    pool.on_new_block([(a.address(), 3)]);
    assert_eq!((pool.status().pending, pool.status().queued), (1, 0));
    assert_eq!(order(&pool), vec![(a.address(), 3)]);
    pool.on_new_block([(a.address(), 4)]);
    assert_eq!(pool.status(), PoolStatus::default());
    assert_eq!(pool.pending_nonce(&a.address()), None);
}

#[test]
fn removing_a_failed_tx_queues_the_later_ones() {
    let pool = TxPool::new(PoolConfig::default());
    let a = signer(1);
    let hashes: Vec<_> = (0..3)
        .map(|n| pool.add(tx(&a, n), rich(0)).unwrap().hash)
        .collect();
    pool.remove(&hashes[..1]);
    assert_eq!((pool.status().pending, pool.status().queued), (0, 2));
    assert!(pool.best().next().is_none());
}

#[test]
fn expired_queued_transactions_are_evicted() {
    let pool = TxPool::new(PoolConfig {
        queued_lifetime: Duration::ZERO,
        ..Default::default()
    });
    let a = signer(1);
    pool.add(tx(&a, 0), rich(0)).unwrap();
    pool.add(tx(&a, 5), rich(0)).unwrap();
    pool.on_new_block([]);
    // Pending transactions never expire; the queued one did.
    assert_eq!((pool.status().pending, pool.status().queued), (1, 0));
}

#[test]
fn content_splits_pending_and_queued() {
    let pool = TxPool::new(PoolConfig::default());
    let a = signer(1);
    pool.add(tx(&a, 0), rich(0)).unwrap();
    pool.add(tx(&a, 2), rich(0)).unwrap();
    let content = pool.content();
    assert_eq!(
        content.pending[&a.address()].keys().collect::<Vec<_>>(),
        vec![&0]
    );
    assert_eq!(
        content.queued[&a.address()].keys().collect::<Vec<_>>(),
        vec![&2]
    );
}

/// The RPC reads the sender's state before taking the pool's lock; a block processed in between
/// must not let a mined nonce back in or break the sender's pending run.
#[test]
fn state_read_before_a_block_cannot_reinsert_a_mined_nonce() {
    let pool = TxPool::new(PoolConfig::default());
    let a = signer(1);
    pool.add(tx(&a, 0), rich(0)).unwrap();
    pool.add(tx(&a, 1), rich(0)).unwrap();
    pool.on_new_block([(a.address(), 1)]);
    // A resend of nonce 0 checked against the stale snapshot (nonce 0).
    let resend = tx_with(&a, 0, 2, 0);
    assert_eq!(
        pool.add(resend, rich(0)),
        Err(PoolError::NonceTooLow { nonce: 0, state: 1 })
    );
    assert_eq!(order(&pool), [(a.address(), 1)]);
    let bytes = pool.status().bytes;
    // Replacing the still-pooled nonce 1 with a stale snapshot frees its bytes exactly once.
    pool.add(tx_with(&a, 1, 3, 0), rich(0)).unwrap();
    assert_eq!(pool.status().bytes, bytes);
    assert_eq!(pool.status().pending, 1);
}

/// A sender cannot queue more value than it holds by spreading it over several transactions.
#[test]
fn pooled_values_count_against_the_balance_together() {
    let pool = TxPool::new(PoolConfig::default());
    let a = signer(1);
    let balance = SenderState {
        nonce: 0,
        balance: U256::from(10u64),
    };
    pool.add(tx_with(&a, 0, 6, 0), balance).unwrap();
    assert!(matches!(
        pool.add(tx_with(&a, 1, 6, 0), balance),
        Err(PoolError::InsufficientFunds { .. })
    ));
    pool.add(tx_with(&a, 1, 4, 0), balance).unwrap();
    // Replacing nonce 0 with a cheaper transaction only counts what comes before it.
    pool.add(tx_with(&a, 0, 1, 0), balance).unwrap();
    assert_eq!(pool.status().pending, 2);
}

fn broke(nonce: u64) -> SenderState {
    SenderState {
        nonce,
        balance: U256::ZERO,
    }
}

fn zero_value(signer: &PrivateKeySigner, nonce: u64) -> Recovered<TxEnvelope> {
    tx_with(signer, nonce, 0, 0)
}

#[test]
fn unfunded_keys_filling_the_pool_make_room_for_a_funded_sender() {
    let pool = TxPool::new(PoolConfig {
        max_txs: 64,
        max_per_sender: 16,
        ..Default::default()
    });
    // Four keys with nothing, sending free zero-value transactions, fill it.
    let spammers: Vec<_> = (10..14).map(signer).collect();
    for spammer in &spammers {
        for nonce in 0..16 {
            pool.add(zero_value(spammer, nonce), broke(0)).unwrap();
        }
    }
    assert_eq!(pool.status().pending, 64);
    // An honest, funded sender still gets in: a spammer's last transaction makes room.
    let honest = signer(1);
    pool.add(tx(&honest, 0), rich(0)).unwrap();
    assert_eq!(pool.status().pending, 64);
    assert!(order(&pool).contains(&(honest.address(), 0)));
    let held: Vec<_> = spammers
        .iter()
        .map(|s| pool.pending_nonce(&s.address()).unwrap())
        .collect();
    assert_eq!(held.iter().filter(|&&n| n == 15).count(), 1, "{held:?}");
    // The spammer refilling its place is refused: no one holds more than it would.
    let refill = spammers
        .iter()
        .find(|s| pool.pending_nonce(&s.address()) == Some(15))
        .unwrap();
    assert_eq!(
        pool.add(zero_value(refill, 15), broke(0)),
        Err(PoolError::PoolFull("transaction count limit reached"))
    );
    assert!(order(&pool).contains(&(honest.address(), 0)));
}

#[test]
fn among_equals_the_sender_holding_the_most_gives_way() {
    let pool = TxPool::new(PoolConfig {
        max_txs: 8,
        max_per_sender: 8,
        ..Default::default()
    });
    let (hog, other) = (signer(1), signer(2));
    for nonce in 0..8 {
        pool.add(tx(&hog, nonce), rich(0)).unwrap();
    }
    // Until the two are level (one apart at most), each newcomer transaction evicts the hog's
    // last.
    let mut added = 0;
    while pool.add(tx(&other, added), rich(0)).is_ok() {
        added += 1;
    }
    assert_eq!(added, 4);
    assert_eq!(pool.pending_nonce(&hog.address()), Some(4));
    assert_eq!(pool.pending_nonce(&other.address()), Some(4));
    assert_eq!(
        pool.add(tx(&other, 4), rich(0)),
        Err(PoolError::PoolFull("transaction count limit reached"))
    );
}

#[test]
fn unfunded_newcomers_compete_by_count_and_refusals_evict_nothing() {
    let pool = TxPool::new(PoolConfig {
        max_txs: 8,
        max_per_sender: 8,
        max_queued: 1,
        ..Default::default()
    });
    let (hog, small, newcomer) = (signer(1), signer(2), signer(3));
    for nonce in 0..7 {
        pool.add(tx(&hog, nonce), rich(0)).unwrap();
    }
    pool.add(zero_value(&small, 0), broke(0)).unwrap();
    // An unfunded newcomer makes room at the funded hog's expense (it holds the most), not at
    // the other unfunded sender's, which holds one.
    pool.add(zero_value(&newcomer, 0), broke(0)).unwrap();
    assert_eq!(pool.pending_nonce(&hog.address()), Some(6));
    assert_eq!(pool.pending_nonce(&small.address()), Some(1));
    // A queued transaction refused at the queued limit evicts nobody first.
    pool.add(zero_value(&newcomer, 5), broke(0)).unwrap();
    let before = pool.status();
    assert_eq!(
        pool.add(zero_value(&small, 7), broke(0)),
        Err(PoolError::PoolFull("queued transaction limit reached"))
    );
    assert_eq!(pool.status(), before);
}
