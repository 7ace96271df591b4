//! Where a transaction goes before the node that admitted it acknowledges it, and again when the
//! producer changes, so that no single crash loses an acknowledged transaction:
//!
//! - a cluster member shares it with the other validators over the signed transport
//!   ([`aicoin_cluster::share`]) and answers once another validator holds it; when another
//!   validator becomes leader, it offers the new leader its whole pool (what the old leader
//!   held, and shared, is then in a follower's pool and reaches the new one);
//! - a full node forwards it to the producer's JSON-RPC and answers with the producer's answer
//!   (the producer, a cluster member, holds it on two validators before answering); when the
//!   producer changes, it resends its pool there, and it resends each pending transaction left
//!   unmined [`STALE`] after it arrived, then after waits doubling to [`MAX_RESEND_WAIT`] (a
//!   standalone producer that restarts at the same URL has lost its pool).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_cluster::{ShareError, Sharer};
use aicoin_rpc::{Replicate, ReplicateError};
use aicoin_txpool::{PooledTx, TxPool};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes};
use futures::future::BoxFuture;
use tokio::sync::watch;

/// A cluster member's [`Replicate`]: another validator holds it.
#[derive(Debug, Clone)]
pub struct ShareWithValidators(pub Sharer);

impl Replicate for ShareWithValidators {
    fn replicate(&self, raw: Bytes) -> BoxFuture<'static, Result<(), ReplicateError>> {
        let sharer = self.0.clone();
        Box::pin(async move {
            sharer.share(raw).await.map_err(|e| match e {
                ShareError::Refused { .. } => ReplicateError::Refused(e.to_string()),
                other => ReplicateError::NotHeld(other.to_string()),
            })
        })
    }
}

/// A pooled transaction's hash and its bytes as sent.
fn as_sent(tx: &PooledTx) -> (B256, Bytes) {
    (tx.hash, tx.tx.inner().encoded_2718().into())
}

/// The pool's transactions at least `age` old that are not in `offered` (then added to it),
/// as sent, in the pool's order (each sender's by nonce). With an age, only pending ones:
/// queued ones wait for their nonce gap, not a leader.
fn pooled(pool: &TxPool, age: Duration, offered: &mut HashSet<B256>) -> Vec<(B256, Bytes)> {
    let content = pool.content();
    let queued = content.queued.values().filter(|_| age.is_zero());
    content
        .pending
        .values()
        .chain(queued)
        .flat_map(|by_nonce| by_nonce.values())
        .filter(|tx| tx.age() >= age && offered.insert(tx.hash))
        .map(|tx| as_sent(tx))
        .collect()
}

/// The pool's transactions, as sent.
fn whole_pool(pool: &TxPool) -> Vec<(B256, Bytes)> {
    pooled(pool, Duration::ZERO, &mut HashSet::new())
}

/// A pending transaction still in the pool this long after it arrived may be one the leader
/// never got (it was confirmed by a follower while the leader did not answer): it is offered
/// again, once per leader.
const STALE: Duration = Duration::from_secs(10);

/// Offers the pool to the other validators whenever another validator becomes leader, and,
/// while it leads, each pending transaction that has waited [`STALE`] without being mined.
pub async fn offer_pool_to_new_leaders(
    pool: Arc<TxPool>,
    sharer: Sharer,
    mut changes: watch::Receiver<aicoin_cluster::Metrics>,
    me: Address,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leader = None;
    // What this leader was offered, so a transaction is offered to it once.
    let mut offered: HashSet<B256> = HashSet::new();
    let mut stale_check = tokio::time::interval(STALE / 2);
    loop {
        let now = changes.borrow_and_update().current_leader;
        let another = now.is_some_and(|l| l != me);
        if now != leader {
            leader = now;
            offered.clear();
            if another {
                let txs = pooled(&pool, Duration::ZERO, &mut offered);
                if !txs.is_empty() {
                    tracing::info!(count = txs.len(), leader = ?now, "offering the pool to the new leader");
                }
                for (_, raw) in txs {
                    sharer.offer(raw).await;
                }
            }
        } else if another {
            let stale = pooled(&pool, STALE, &mut offered);
            if !stale.is_empty() {
                tracing::info!(
                    count = stale.len(),
                    "offering unmined transactions to the leader again"
                );
            }
            for (_, raw) in stale {
                sharer.offer(raw).await;
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stale_check.tick() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The longest a full node waits between two resends of one unmined transaction: one the
/// producer keeps refusing costs a request every five minutes, not every [`STALE`].
const MAX_RESEND_WAIT: Duration = Duration::from_secs(320);

/// When a full node sends each of its pending transactions to the producer again: once it has
/// waited [`STALE`] unmined, then after waits that double up to [`MAX_RESEND_WAIT`], or at once
/// to that longest wait when the producer answered that it holds it already (it is waiting its
/// turn there, not lost). One the producer lost (it restarted) is held again and mined.
#[derive(Debug, Default)]
struct Resends {
    /// By transaction: when it is due next, and the wait before that.
    due: HashMap<B256, (Instant, Duration)>,
}

impl Resends {
    /// The pool's pending transactions due at `now`, in the pool's order (each sender's by
    /// nonce), with their hashes; forgets those gone from it.
    fn due(&mut self, pool: &TxPool, now: Instant) -> Vec<(B256, Bytes)> {
        let content = pool.content();
        let pending: Vec<_> = content
            .pending
            .values()
            .flat_map(|by_nonce| by_nonce.values())
            .collect();
        let due = self.due_hashes(pending.iter().map(|tx| (tx.hash, tx.age())), now);
        pending
            .into_iter()
            .filter(|tx| due.contains(&tx.hash))
            .map(|tx| as_sent(tx))
            .collect()
    }

    /// Which of `pooled` (hash, time in the pool) are due at `now`; the rest of what it knew
    /// is forgotten.
    fn due_hashes(
        &mut self,
        pooled: impl Iterator<Item = (B256, Duration)>,
        now: Instant,
    ) -> HashSet<B256> {
        let mut known = std::mem::take(&mut self.due);
        for (hash, age) in pooled {
            let schedule = known
                .remove(&hash)
                .unwrap_or((now + STALE.saturating_sub(age), STALE));
            self.due.insert(hash, schedule);
        }
        self.due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(hash, _)| *hash)
            .collect()
    }

    /// `hash` went to the producer at `now`; `held` says it answered that it had it already.
    fn sent(&mut self, hash: B256, now: Instant, held: bool) {
        let last = self.due.get(&hash).map_or(STALE, |&(_, wait)| wait);
        let wait = match held {
            true => MAX_RESEND_WAIT,
            false => (last * 2).min(MAX_RESEND_WAIT),
        };
        self.due.insert(hash, (now + wait, wait));
    }
}

/// Where a full node's transactions go: the producer's JSON-RPC URL, or `None` while none is
/// known.
pub type Target = watch::Receiver<Option<String>>;

/// A full node's [`Replicate`]: the producer's own answer to `eth_sendRawTransaction`.
#[derive(Debug, Clone)]
pub struct ForwardToProducer {
    http: reqwest::Client,
    target: Target,
}

/// How the producer holds a forwarded transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// It took it now.
    Now,
    /// It had it already (sent before, or by another node).
    Already,
}

/// Why the producer does not hold a forwarded transaction.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no producer is known yet")]
    NoProducer,
    #[error("the producer at {url} cannot be reached: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the producer at {url} refused it: {message}")]
    Refused { url: String, message: String },
}

impl ForwardToProducer {
    pub fn new(target: Target) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self { http, target }
    }

    async fn forward(&self, raw: &Bytes) -> Result<Held, ForwardError> {
        let url = self
            .target
            .borrow()
            .clone()
            .ok_or(ForwardError::NoProducer)?;
        let request = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw],
        });
        let unreachable = |source| ForwardError::Unreachable {
            url: url.clone(),
            source,
        };
        let response = self
            .http
            .post(&url)
            .json(&request)
            .send()
            .await
            .map_err(unreachable)?;
        let answer: serde_json::Value = response.json().await.map_err(unreachable)?;
        match answer.get("error") {
            None => Ok(Held::Now),
            // Held there already: sent before, or by another node.
            Some(error) if error["message"] == "already known" => Ok(Held::Already),
            Some(error) => Err(ForwardError::Refused {
                url,
                message: error["message"]
                    .as_str()
                    .unwrap_or("no message")
                    .to_string(),
            }),
        }
    }

    /// Resends the whole pool to the producer whenever it changes, and pending transactions
    /// left unmined on the [`Resends`] schedule.
    pub async fn resend(self, pool: Arc<TxPool>, mut shutdown: watch::Receiver<bool>) {
        let mut target = self.target.clone();
        let mut resends = Resends::default();
        let mut stale_check = tokio::time::interval(STALE / 2);
        loop {
            let txs = tokio::select! {
                changed = target.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    resends = Resends::default();
                    let txs = whole_pool(&pool);
                    if !txs.is_empty() {
                        tracing::info!(count = txs.len(), "forwarding the pool to the new producer");
                    }
                    txs
                }
                _ = stale_check.tick() => {
                    let txs = resends.due(&pool, Instant::now());
                    if !txs.is_empty() {
                        tracing::info!(
                            count = txs.len(),
                            "forwarding unmined transactions to the producer again"
                        );
                    }
                    txs
                }
                _ = shutdown.changed() => return,
            };
            tokio::select! {
                _ = self.send_all(txs, &mut resends) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends `txs` to the producer in order, noting each in `resends`; stops at the first that
    /// cannot reach it (the rest stay due for the next look).
    async fn send_all(&self, txs: Vec<(B256, Bytes)>, resends: &mut Resends) {
        for (hash, raw) in txs {
            match self.forward(&raw).await {
                Ok(held) => resends.sent(hash, Instant::now(), held == Held::Already),
                Err(e @ ForwardError::Refused { .. }) => {
                    tracing::debug!(error = %e, "producer did not take a resent transaction");
                    resends.sent(hash, Instant::now(), false);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot resend now; trying again at the next look");
                    return;
                }
            }
        }
    }
}

impl Replicate for ForwardToProducer {
    fn replicate(&self, raw: Bytes) -> BoxFuture<'static, Result<(), ReplicateError>> {
        let this = self.clone();
        Box::pin(async move {
            this.forward(&raw).await.map(|_| ()).map_err(|e| match e {
                ForwardError::Refused { .. } => ReplicateError::Refused(e.to_string()),
                other => ReplicateError::NotHeld(other.to_string()),
            })
        })
    }
}

/// How this node's transactions reach beyond it: made before the RPC server (which submits
/// through it), then handed to the role that runs it.
#[derive(Debug)]
pub(crate) enum Forwarding {
    /// A validator alone: its pool is the only one.
    Alone,
    Cluster {
        sharer: Sharer,
        queue: aicoin_cluster::ShareQueue,
    },
    Full {
        forward: ForwardToProducer,
        target: watch::Sender<Option<String>>,
    },
}

impl Forwarding {
    pub fn for_role(config: &crate::NodeConfig) -> Self {
        if config.role == crate::Role::Full {
            let (target, target_rx) = watch::channel(None);
            let forward = ForwardToProducer::new(target_rx);
            return Self::Full { forward, target };
        }
        if config.replicated() {
            let (sharer, queue) = aicoin_cluster::share::channel();
            return Self::Cluster { sharer, queue };
        }
        Self::Alone
    }

    /// What the RPC server submits through.
    pub fn replicate(&self) -> Option<Arc<dyn Replicate>> {
        match self {
            Self::Alone => None,
            Self::Cluster { sharer, .. } => Some(Arc::new(ShareWithValidators(sharer.clone()))),
            Self::Full { forward, .. } => Some(Arc::new(forward.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmined_transaction_is_resent_after_stale_then_after_doubling_waits() {
        let mut resends = Resends::default();
        let tx = B256::repeat_byte(1);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // Arrived 3 s before `start`: due once it has waited STALE (10 s) in all. Each time it
        // is due, it is sent (and the producer takes it, having lost it).
        let due_at = |resends: &mut Resends, secs: u64| {
            let due =
                resends.due_hashes([(tx, Duration::from_secs(3 + secs))].into_iter(), at(secs));
            for hash in &due {
                resends.sent(*hash, at(secs), false);
            }
            due.into_iter().collect::<Vec<_>>()
        };
        assert!(due_at(&mut resends, 0).is_empty());
        assert!(due_at(&mut resends, 6).is_empty());
        assert_eq!(due_at(&mut resends, 7), [tx]);
        // Then 20 s later, 40 s after that, and so on up to the cap.
        assert!(due_at(&mut resends, 26).is_empty());
        assert_eq!(due_at(&mut resends, 27), [tx]);
        assert!(due_at(&mut resends, 66).is_empty());
        assert_eq!(due_at(&mut resends, 67), [tx]);
        let mut last = 67;
        for _ in 0..6 {
            let wait = resends.due[&tx].1.as_secs();
            assert!(due_at(&mut resends, last + wait - 1).is_empty());
            assert_eq!(due_at(&mut resends, last + wait), [tx]);
            last += wait;
        }
        assert_eq!(resends.due[&tx].1, MAX_RESEND_WAIT);
    }

    #[test]
    fn one_the_producer_holds_waits_the_longest_and_a_mined_one_is_forgotten() {
        let mut resends = Resends::default();
        let (held, lost) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let now = Instant::now();
        let old = Duration::from_secs(60);
        let due = resends.due_hashes([(held, old), (lost, old)].into_iter(), now);
        assert_eq!(due, [held, lost].into());
        resends.sent(held, now, true);
        resends.sent(lost, now, false);
        assert_eq!(resends.due[&held], (now + MAX_RESEND_WAIT, MAX_RESEND_WAIT));
        assert_eq!(resends.due[&lost], (now + 2 * STALE, 2 * STALE));
        // Not sent (the producer was unreachable): still due at the next look.
        let next = now + STALE / 2;
        let due = resends.due_hashes(
            [(held, old), (lost, old), (B256::ZERO, old)].into_iter(),
            next,
        );
        assert_eq!(due, [B256::ZERO].into());
        // Mined (gone from the pool): forgotten.
        resends.due_hashes([(lost, old)].into_iter(), next);
        assert_eq!(resends.due.keys().collect::<Vec<_>>(), [&lost]);
    }
}
