//! The transaction pool: signed, validated transactions waiting for a block.
//!
//! Each sender's transactions are kept by nonce. The run of consecutive nonces starting at the
//! account's state nonce is *pending* (executable now); anything after a gap is *queued*. Because
//! sending is free on AICoin, fees cannot rank or price out spam; the pool's caps are the defence:
//!
//! - `max_nonce_gap`: a transaction more than this far ahead of its sender's next executable
//!   nonce (the account nonce plus its pending run) is refused;
//! - `max_per_sender`: pending + queued transactions one sender may hold;
//! - `max_queued`: queued transactions across all senders (they cannot execute, so they get a
//!   small share of the pool);
//! - `max_txs` and `max_bytes`: the whole pool, by count and by encoded size, so memory is bounded;
//! - `queued_lifetime`: queued transactions older than this are evicted at the next block.
//!
//! A full pool still takes a newcomer's transaction when someone holds more than their share:
//! it evicts the last (highest-nonce, so no gap opens) transaction of an unfunded sender when the
//! newcomer is funded, or else of the sender holding the most, if that is more than the newcomer
//! would hold. So keys that own nothing cannot fill the pool against senders who pay their way,
//! and no one sender can hold it against the rest.
//!
//! A transaction with the nonce of one already in the pool replaces it (there is no fee to bump).
//! Block producers take transactions in arrival order, each sender's in nonce order.

mod best;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_consensus::{Transaction, TxEnvelope, transaction::Recovered};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, U256};
use parking_lot::Mutex;
use tokio::sync::broadcast;

pub use best::BestTransactions;

/// A validated transaction with its signer recovered.
#[derive(Debug)]
pub struct PooledTx {
    pub tx: Recovered<TxEnvelope>,
    pub hash: B256,
    pub encoded_len: usize,
    /// Arrival order across the whole pool; producers take lower first.
    seq: u64,
    added: Instant,
}

impl PooledTx {
    /// How long it has been in the pool.
    pub fn age(&self) -> std::time::Duration {
        self.added.elapsed()
    }

    pub fn sender(&self) -> Address {
        self.tx.signer()
    }

    pub fn nonce(&self) -> u64 {
        self.tx.nonce()
    }
}

/// The pool's limits; see the module documentation for what each defends against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_txs: usize,
    pub max_bytes: usize,
    pub max_queued: usize,
    pub max_per_sender: usize,
    pub max_nonce_gap: u64,
    pub queued_lifetime: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 16_384,
            max_bytes: 128 * 1024 * 1024,
            max_queued: 2_048,
            max_per_sender: 256,
            max_nonce_gap: 64,
            queued_lifetime: Duration::from_secs(3 * 3600),
        }
    }
}

/// Why the pool refused a transaction. Messages start with geth's wording, which client
/// libraries recognise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("already known")]
    AlreadyKnown,
    #[error("nonce too low: next nonce {state}, tx nonce {nonce}")]
    NonceTooLow { nonce: u64, state: u64 },
    #[error(
        "nonce too high: tx nonce {nonce} is more than {max_gap} ahead of the next executable nonce {next}"
    )]
    NonceTooHigh { nonce: u64, next: u64, max_gap: u64 },
    #[error(
        "insufficient funds for gas * price + value: balance {balance}, needed {cost} for this \
         and the sender's earlier pooled transactions"
    )]
    InsufficientFunds { balance: U256, cost: U256 },
    #[error("sender {sender} already has {limit} transactions in the pool (per-sender limit)")]
    SenderLimit { sender: Address, limit: usize },
    #[error("txpool is full: {0}")]
    PoolFull(&'static str),
}

/// What an accepted transaction became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    pub hash: B256,
    /// Waiting behind a nonce gap rather than executable now.
    pub queued: bool,
    /// The transaction with the same sender and nonce that this one replaced.
    pub replaced: Option<B256>,
}

/// The account fields the pool checks a transaction against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderState {
    pub nonce: u64,
    pub balance: U256,
}

/// Pool sizes, as `txpool_status` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    pub pending: usize,
    pub queued: usize,
    pub bytes: usize,
}

#[derive(Debug, Default)]
struct SenderTxs {
    /// The account's nonce in the latest state.
    state_nonce: u64,
    txs: BTreeMap<u64, Arc<PooledTx>>,
    /// How many of `txs` form the consecutive run from `state_nonce`.
    pending: usize,
    /// Whether the sender's balance was above zero when it last added a transaction.
    funded: bool,
}

impl SenderTxs {
    fn count_pending(&self) -> usize {
        self.txs
            .keys()
            .zip(self.state_nonce..)
            .take_while(|(n, expected)| **n == *expected)
            .count()
    }

    /// Moves the state nonce forward to `nonce`, returning the transactions it made stale.
    fn advance(&mut self, nonce: u64) -> Vec<Arc<PooledTx>> {
        self.state_nonce = self.state_nonce.max(nonce);
        let keep = self.txs.split_off(&self.state_nonce);
        std::mem::replace(&mut self.txs, keep)
            .into_values()
            .collect()
    }

    fn next_nonce(&self) -> u64 {
        self.state_nonce + self.pending as u64
    }
}

#[derive(Debug, Default)]
struct Inner {
    senders: HashMap<Address, SenderTxs>,
    by_hash: HashMap<B256, Arc<PooledTx>>,
    pending: usize,
    bytes: usize,
    next_seq: u64,
}

impl Inner {
    fn queued(&self) -> usize {
        self.by_hash.len() - self.pending
    }

    /// Recounts `sender`'s pending run after a change and keeps the global count in step.
    fn refresh(&mut self, sender: &Address) {
        let Some(s) = self.senders.get_mut(sender) else {
            return;
        };
        let before = s.pending;
        s.pending = s.count_pending();
        self.pending = self.pending + s.pending - before;
        if s.txs.is_empty() {
            self.senders.remove(sender);
        }
    }

    fn remove_tx(&mut self, tx: &PooledTx) {
        self.by_hash.remove(&tx.hash);
        self.bytes -= tx.encoded_len;
    }

    /// Evicts one transaction to make room for one from `newcomer`, which holds `held` and is
    /// `funded` or not: the last of an unfunded sender's if the newcomer is funded, else the
    /// last of the sender holding the most, if that is more than `held + 1`. Returns whether
    /// it evicted.
    fn make_room(&mut self, newcomer: &Address, funded: bool, held: usize) -> bool {
        let victim = self
            .senders
            .iter()
            .filter(|(sender, _)| *sender != newcomer)
            // A funded newcomer looks at unfunded senders first; an unfunded one only at who
            // holds the most.
            .max_by_key(|(_, s)| (funded && !s.funded, s.txs.len()))
            .filter(|(_, s)| (funded && !s.funded) || s.txs.len() > held + 1)
            .map(|(sender, _)| *sender);
        let Some(victim) = victim else {
            return false;
        };
        let evicted = self
            .senders
            .get_mut(&victim)
            .and_then(|s| s.txs.pop_last())
            .map(|(_, tx)| tx);
        if let Some(tx) = evicted {
            tracing::debug!(hash = %tx.hash, sender = %victim, "evicted to make room in a full pool");
            self.remove_tx(&tx);
        }
        self.refresh(&victim);
        true
    }
}

/// The transaction pool. Cheap to share: all methods take `&self`.
#[derive(Debug)]
pub struct TxPool {
    config: PoolConfig,
    inner: Mutex<Inner>,
    new_pending: broadcast::Sender<B256>,
}

impl TxPool {
    pub fn new(config: PoolConfig) -> Self {
        let (new_pending, _) = broadcast::channel(1024);
        Self {
            config,
            inner: Mutex::default(),
            new_pending,
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Hashes of transactions as they become pool members (for `newPendingTransactions`).
    pub fn subscribe(&self) -> broadcast::Receiver<B256> {
        self.new_pending.subscribe()
    }

    /// Adds a validated transaction, checked against its sender's latest `state`.
    pub fn add(&self, tx: Recovered<TxEnvelope>, state: SenderState) -> Result<Added, PoolError> {
        let hash = *tx.tx_hash();
        let sender = tx.signer();
        let nonce = tx.nonce();
        let cost = tx.value();
        let encoded_len = tx.encode_2718_len();
        let cfg = &self.config;

        let mut inner = self.inner.lock();
        if inner.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        // `state` was read before the lock; the pool may already have seen a later block. Drop
        // what that block made stale, then check against the newer of the two nonces.
        let account_nonce = match inner.senders.get_mut(&sender) {
            Some(s) => {
                let stale = s.advance(state.nonce);
                let account_nonce = s.state_nonce;
                for tx in &stale {
                    inner.remove_tx(tx);
                }
                inner.refresh(&sender);
                account_nonce
            }
            None => state.nonce,
        };
        if nonce < account_nonce {
            return Err(PoolError::NonceTooLow {
                nonce,
                state: account_nonce,
            });
        }

        let (replaced, held, next_nonce, spent_before) = match inner.senders.get(&sender) {
            Some(s) => {
                let run = s
                    .txs
                    .keys()
                    .zip(account_nonce..)
                    .take_while(|(n, e)| **n == *e)
                    .count();
                // What the sender's earlier pooled transactions will already have spent.
                let spent_before = s
                    .txs
                    .range(..nonce)
                    .fold(U256::ZERO, |sum, (_, tx)| sum.saturating_add(tx.tx.value()));
                (
                    s.txs.get(&nonce).cloned(),
                    s.txs.len(),
                    account_nonce + run as u64,
                    spent_before,
                )
            }
            None => (None, 0, account_nonce, U256::ZERO),
        };
        let needed = spent_before.saturating_add(cost);
        if state.balance < needed {
            return Err(PoolError::InsufficientFunds {
                balance: state.balance,
                cost: needed,
            });
        }
        if nonce - next_nonce.min(nonce) > cfg.max_nonce_gap {
            return Err(PoolError::NonceTooHigh {
                nonce,
                next: next_nonce,
                max_gap: cfg.max_nonce_gap,
            });
        }
        let queued = nonce > next_nonce;
        let funded = state.balance > U256::ZERO;
        if replaced.is_none() {
            if held >= cfg.max_per_sender {
                return Err(PoolError::SenderLimit {
                    sender,
                    limit: cfg.max_per_sender,
                });
            }
            // Checked before anything is evicted for this transaction.
            if queued && inner.queued() >= cfg.max_queued {
                return Err(PoolError::PoolFull("queued transaction limit reached"));
            }
            while inner.by_hash.len() >= cfg.max_txs {
                if !inner.make_room(&sender, funded, held) {
                    return Err(PoolError::PoolFull("transaction count limit reached"));
                }
            }
        }
        let freed = replaced.as_ref().map_or(0, |r| r.encoded_len);
        while inner.bytes - freed + encoded_len > cfg.max_bytes {
            if !inner.make_room(&sender, funded, held) {
                return Err(PoolError::PoolFull("size limit reached"));
            }
        }

        let seq = inner.next_seq;
        inner.next_seq += 1;
        let pooled = Arc::new(PooledTx {
            tx,
            hash,
            encoded_len,
            seq,
            added: Instant::now(),
        });
        if let Some(replaced) = &replaced {
            inner.remove_tx(replaced);
        }
        inner.bytes += encoded_len;
        inner.by_hash.insert(hash, pooled.clone());
        let entry = inner.senders.entry(sender).or_default();
        entry.state_nonce = account_nonce;
        entry.funded = funded;
        entry.txs.insert(nonce, pooled);
        inner.refresh(&sender);
        drop(inner);

        // Nobody listening is fine.
        let _ = self.new_pending.send(hash);
        Ok(Added {
            hash,
            queued,
            replaced: replaced.map(|r| r.hash),
        })
    }

    /// Snapshot of the executable transactions, in the order a block should take them.
    pub fn best(&self) -> BestTransactions {
        let inner = self.inner.lock();
        BestTransactions::new(
            inner
                .senders
                .values()
                .filter(|s| s.pending > 0)
                .map(|s| s.txs.values().take(s.pending).cloned().collect::<Vec<_>>()),
        )
    }

    /// After a block: senders' new state nonces drop their included (or now stale) transactions,
    /// promote queued ones that became executable, and expired queued transactions go.
    pub fn on_new_block(&self, nonces: impl IntoIterator<Item = (Address, u64)>) {
        let mut inner = self.inner.lock();
        for (sender, nonce) in nonces {
            let Some(s) = inner.senders.get_mut(&sender) else {
                continue;
            };
            let stale = s.advance(nonce);
            for tx in &stale {
                inner.remove_tx(tx);
            }
            inner.refresh(&sender);
        }
        self.evict_expired(&mut inner);
    }

    /// Drops transactions that turned out not to execute (for example the balance fell below the
    /// value); the sender's later nonces become queued behind the gap.
    pub fn remove(&self, hashes: &[B256]) {
        let mut inner = self.inner.lock();
        for hash in hashes {
            let Some(tx) = inner.by_hash.get(hash).cloned() else {
                continue;
            };
            let sender = tx.sender();
            if let Some(s) = inner.senders.get_mut(&sender) {
                s.txs.remove(&tx.nonce());
            }
            inner.remove_tx(&tx);
            inner.refresh(&sender);
        }
    }

    fn evict_expired(&self, inner: &mut Inner) {
        let now = Instant::now();
        let lifetime = self.config.queued_lifetime;
        let expired: Vec<Arc<PooledTx>> = inner
            .senders
            .values()
            .flat_map(|s| s.txs.values().skip(s.pending))
            .filter(|tx| now.duration_since(tx.added) > lifetime)
            .cloned()
            .collect();
        for tx in expired {
            if let Some(s) = inner.senders.get_mut(&tx.sender()) {
                s.txs.remove(&tx.nonce());
            }
            inner.remove_tx(&tx);
            inner.refresh(&tx.sender());
        }
    }

    pub fn get(&self, hash: &B256) -> Option<Arc<PooledTx>> {
        self.inner.lock().by_hash.get(hash).cloned()
    }

    /// The nonce a sender's next transaction should use, counting its pending transactions
    /// (`eth_getTransactionCount(addr, "pending")`); `None` if it has none in the pool.
    pub fn pending_nonce(&self, sender: &Address) -> Option<u64> {
        let inner = self.inner.lock();
        inner
            .senders
            .get(sender)
            .filter(|s| s.pending > 0)
            .map(SenderTxs::next_nonce)
    }

    pub fn status(&self) -> PoolStatus {
        let inner = self.inner.lock();
        PoolStatus {
            pending: inner.pending,
            queued: inner.queued(),
            bytes: inner.bytes,
        }
    }

    /// Every pooled transaction, split into pending and queued, by sender and nonce.
    pub fn content(&self) -> PoolContent {
        let inner = self.inner.lock();
        let mut content = PoolContent::default();
        for (sender, s) in &inner.senders {
            for (i, (nonce, tx)) in s.txs.iter().enumerate() {
                let side = if i < s.pending {
                    &mut content.pending
                } else {
                    &mut content.queued
                };
                side.entry(*sender).or_default().insert(*nonce, tx.clone());
            }
        }
        content
    }
}

/// `txpool_content`'s shape: sender → nonce → transaction.
#[derive(Debug, Default)]
pub struct PoolContent {
    pub pending: BTreeMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
    pub queued: BTreeMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
}

#[cfg(test)]
mod tests;
