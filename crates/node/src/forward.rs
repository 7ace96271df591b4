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
use aicoin_txpool::TxPool;
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

/// The pool's transactions at least `age` old that are not in `offered` (then added to it),
/// as sent. With an age, only pending ones: queued ones wait for their nonce gap, not a leader.
fn pooled(pool: &TxPool, age: Duration, offered: &mut HashSet<B256>) -> Vec<Bytes> {
    let content = pool.content();
    let queued = content.queued.values().filter(|_| age.is_zero());
    content
        .pending
        .values()
        .chain(queued)
        .flat_map(|by_nonce| by_nonce.values())
        .filter(|tx| tx.age() >= age && offered.insert(tx.hash))
        .map(|tx| tx.tx.inner().encoded_2718().into())
        .collect()
}

/// The pool's transactions, as sent.
fn whole_pool(pool: &TxPool) -> Vec<Bytes> {
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
                for raw in txs {
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
            for raw in stale {
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
/// waited [`STALE`] unmined, then after waits that double up to [`MAX_RESEND_WAIT`]. A resend
/// the producer holds already costs it an `already known`; one it lost (it restarted) is held
/// again and mined.
#[derive(Debug, Default)]
struct Resends {
    /// By transaction: when it is due next, and the wait after that.
    due: HashMap<B256, (Instant, Duration)>,
}

impl Resends {
    /// The pool's pending transactions due at `now`, as sent; forgets those gone from it.
    fn due(&mut self, pool: &TxPool, now: Instant) -> Vec<Bytes> {
        let content = pool.content();
        let pending: HashMap<B256, _> = content
            .pending
            .values()
            .flat_map(|by_nonce| by_nonce.values())
            .map(|tx| (tx.hash, tx))
            .collect();
        let ages = pending.values().map(|tx| (tx.hash, tx.age()));
        self.due_hashes(ages, now)
            .into_iter()
            .filter_map(|hash| pending.get(&hash))
            .map(|tx| tx.tx.inner().encoded_2718().into())
            .collect()
    }

    /// Which of `pooled` (hash, time in the pool) are due at `now`; the rest of what it knew
    /// is forgotten.
    fn due_hashes(
        &mut self,
        pooled: impl Iterator<Item = (B256, Duration)>,
        now: Instant,
    ) -> Vec<B256> {
        let mut due = Vec::new();
        let mut kept = HashMap::new();
        for (hash, age) in pooled {
            let (at, wait) = match self.due.get(&hash) {
                Some(&(at, wait)) => (at, wait),
                None => (now + STALE.saturating_sub(age), STALE),
            };
            let schedule = match at <= now {
                true => {
                    due.push(hash);
                    let wait = (wait * 2).min(MAX_RESEND_WAIT);
                    (now + wait, wait)
                }
                false => (at, wait),
            };
            kept.insert(hash, schedule);
        }
        self.due = kept;
        due
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

    async fn forward(&self, raw: &Bytes) -> Result<(), ForwardError> {
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
            None => Ok(()),
            // Held there already: sent before, or by another node.
            Some(error) if error["message"] == "already known" => Ok(()),
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
            for raw in txs {
                if let Err(e) = self.forward(&raw).await {
                    tracing::debug!(error = %e, "producer did not take a resent transaction");
                }
            }
        }
    }
}

impl Replicate for ForwardToProducer {
    fn replicate(&self, raw: Bytes) -> BoxFuture<'static, Result<(), ReplicateError>> {
        let this = self.clone();
        Box::pin(async move {
            this.forward(&raw).await.map_err(|e| match e {
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
        let (tx, other) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // Arrived 3 s ago: due once it has waited STALE (10 s) in all.
        let due_at = |resends: &mut Resends, secs: u64| {
            let age = Duration::from_secs(3 + secs);
            resends.due_hashes([(tx, age)].into_iter(), at(secs))
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

        // Mined (gone from the pool): forgotten. Another one old on arrival is due at once.
        let due = resends.due_hashes([(other, Duration::from_secs(60))].into_iter(), at(last));
        assert_eq!(due, [other]);
        assert_eq!(resends.due.keys().collect::<Vec<_>>(), [&other]);
    }
}
