//! Transactions held by two validators before anyone is told they were accepted: a member that
//! admits a transaction into its pool sends it, batched with whatever else arrived meanwhile, to
//! every other voter over the signed transport, and answers its client only once another
//! validator holds it too. So one crash, of the leader or of the node a client talked to, loses
//! no acknowledged transaction: a new leader has it in its own pool, or gets it from a follower's
//! resend.
//!
//! Whose word settles it: while another validator leads, the leader's (it builds the blocks; a
//! transaction it refuses, say for a nonce it already has, is refused to the client with its
//! reason); when the leader cannot be reached, or this node leads, any other voter's.

use std::{sync::Arc, time::Duration};

use alloy_primitives::{Address, Bytes};
use futures::{StreamExt, stream::FuturesUnordered};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::{Metrics, Shared, network::Caller};

/// How long a client waits for another validator to confirm, queueing included.
pub const SHARE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one batch may take at one peer.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Transactions waiting to be sent, per lane (clients' and offers'); a full lane makes its
/// senders wait (backpressure).
const QUEUE: usize = 16_384;
/// Their bytes, waiting or on the wire, in KiB (each rounded up), per lane: with [`QUEUE`] this
/// bounds what sharing holds whatever the transactions' sizes (16,384 of 128 KiB would be 2 GiB).
const QUEUE_KIB: u32 = 16 << 10;
/// A batch closes at this many transactions or bytes (the last may cross it by one transaction
/// of at most 128 KiB: hex-encoded, a batch stays under the endpoint's 1 MiB).
const MAX_BATCH: usize = 1024;
const MAX_BATCH_BYTES: usize = 256 << 10;
/// Batches on the wire at once; while they are, arrivals gather into the next.
const MAX_IN_FLIGHT: usize = 4;

/// What a validator did with one transaction of a batch it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hold {
    /// In its pool now (newly, or already).
    Held,
    /// Not pooled, and why (the pool's or the transaction checks' message).
    Refused(String),
}

/// Why a transaction is not confirmed held by another validator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("the leader {leader} refused it: {reason}")]
    Refused { leader: Address, reason: String },
    #[error("no other validator holds it: {0}")]
    NotHeld(String),
    #[error("no other validator confirmed it within {0:?}")]
    TimedOut(Duration),
    #[error("the node is shutting down")]
    Stopped,
}

/// Where a job's outcome goes; `None` for a resend nobody waits on.
type Reply = Option<oneshot::Sender<Result<(), ShareError>>>;

struct Job {
    raw: Bytes,
    reply: Reply,
    /// Its share of its lane's [`QUEUE_KIB`], given back when the job is done with.
    room: OwnedSemaphorePermit,
}

/// Hands transactions to the cluster's sharing task. Made before the cluster starts (the RPC
/// server, which submits, starts first); jobs wait in the queue until it runs.
///
/// Clients' transactions and offers (a pool resent to a new leader, thousands at once just when
/// clients resend what a failover cost them) queue in lanes of their own, and batches take from
/// the clients' first: offers never keep a client waiting for room.
#[derive(Debug, Clone)]
pub struct Sharer {
    clients: Lane,
    offers: Lane,
}

#[derive(Debug, Clone)]
struct Lane {
    jobs: mpsc::Sender<Job>,
    room: Arc<Semaphore>,
}

/// The receiving end of a [`Sharer`], given to [`crate::start`].
#[derive(Debug)]
pub struct ShareQueue {
    clients: mpsc::Receiver<Job>,
    offers: mpsc::Receiver<Job>,
}

impl ShareQueue {
    /// The next job already queued, clients' first.
    fn try_next(&mut self) -> Option<Job> {
        self.clients
            .try_recv()
            .or_else(|_| self.offers.try_recv())
            .ok()
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} bytes)", self.raw.len())
    }
}

pub fn channel() -> (Sharer, ShareQueue) {
    let lane = || {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let room = Arc::new(Semaphore::new(QUEUE_KIB as usize));
        (Lane { jobs, room }, queue)
    };
    let ((clients, from_clients), (offers, from_offers)) = (lane(), lane());
    let queue = ShareQueue {
        clients: from_clients,
        offers: from_offers,
    };
    (Sharer { clients, offers }, queue)
}

impl Sharer {
    /// Returns once another validator holds `raw` (see the module docs for whose word counts).
    pub async fn share(&self, raw: Bytes) -> Result<(), ShareError> {
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(SHARE_TIMEOUT, async {
            self.clients.enqueue(raw, Some(reply)).await?;
            answer.await.map_err(|_| ShareError::Stopped)?
        });
        waited
            .await
            .unwrap_or(Err(ShareError::TimedOut(SHARE_TIMEOUT)))
    }

    /// Sends `raw` to the other validators with nobody waiting on the outcome (a pool resent to
    /// a new leader); waits only for room in the offers' lane.
    pub async fn offer(&self, raw: Bytes) {
        let _ = self.offers.enqueue(raw, None).await;
    }
}

impl Lane {
    /// Queues `raw` once there is room for its bytes and a place in the queue.
    async fn enqueue(&self, raw: Bytes, reply: Reply) -> Result<(), ShareError> {
        let kib = u32::try_from(raw.len().div_ceil(1024)).map_or(QUEUE_KIB, |k| k.min(QUEUE_KIB));
        let room =
            (self.room.clone().acquire_many_owned(kib).await).map_err(|_| ShareError::Stopped)?;
        let job = Job { raw, reply, room };
        self.jobs.send(job).await.map_err(|_| ShareError::Stopped)
    }
}

/// Who a batch goes to.
struct Recipients {
    /// The other voters, with their sync URLs.
    peers: Vec<(Address, String)>,
    /// The leader, when another validator leads.
    leader: Option<Address>,
    /// This node is the only voter: nobody else can hold anything, or lose it.
    alone: bool,
}

fn recipients(metrics: &Metrics, me: Address) -> Recipients {
    let membership = metrics.membership_config.membership();
    let voters: Vec<Address> = membership.voter_ids().collect();
    let peers = voters
        .iter()
        .filter(|id| **id != me)
        .filter_map(|id| Some((*id, membership.get_node(id)?.sync_url.clone())))
        .collect();
    Recipients {
        peers,
        leader: metrics.current_leader.filter(|leader| *leader != me),
        alone: voters == [me],
    }
}

/// Batches the queue's jobs and sends them, until shutdown.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut queue: ShareQueue,
    mut stop: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let me = shared.auth.address();
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = tokio::select! {
            biased;
            job = queue.clients.recv() => match job {
                Some(job) => job,
                None => return,
            },
            job = queue.offers.recv() => match job {
                Some(job) => job,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let mut bytes = 0;
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            // Its client gave up waiting (and was told to resend): not worth the peers' work.
            if !job.reply.as_ref().is_some_and(|r| r.is_closed()) {
                bytes += job.raw.len();
                batch.push(job);
            }
            if batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                next = queue.try_next();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let to = recipients(&shared.raft.metrics().borrow(), me);
        let caller = shared.caller.clone();
        tokio::spawn(async move {
            send(&caller, batch, to).await;
            drop(permit);
        });
    }
}

/// Sends one batch to every peer and answers each job as soon as its outcome is settled.
async fn send(caller: &Caller, batch: Vec<Job>, to: Recipients) {
    let (mut raws, mut replies, mut _room) = (Vec::new(), Vec::new(), Vec::new());
    for job in batch {
        raws.push(job.raw);
        replies.push(job.reply);
        _room.push(job.room);
    }
    let mut outcomes = Outcomes::new(replies, to.leader);
    // A cluster of one: nobody else to hold it, and nobody else whose crash could lose it.
    if to.alone {
        outcomes.settle_all(|_| Ok(()));
        return;
    }
    // No membership yet (the cluster is forming, or this node is still joining it).
    if to.peers.is_empty() {
        outcomes.settle_all(|_| Err(ShareError::NotHeld("the cluster has not formed yet".into())));
        return;
    }
    let peers = to.peers;
    let raws = &raws;
    let mut calls: FuturesUnordered<_> = peers
        .iter()
        .map(|(peer, url)| async move {
            let answer = caller
                .call::<_, Vec<Hold>>(*peer, url, "txs", raws, CALL_TIMEOUT)
                .await;
            (*peer, answer)
        })
        .collect();
    while let Some((peer, answer)) = calls.next().await {
        match answer {
            Ok(holds) if holds.len() == raws.len() => outcomes.answered(peer, &holds),
            Ok(holds) => outcomes.unreachable(
                peer,
                format!(
                    "{peer} answered {} of {} transactions",
                    holds.len(),
                    raws.len()
                ),
            ),
            Err(e) => outcomes.unreachable(peer, e.to_string()),
        }
        if outcomes.all_settled() {
            return;
        }
    }
    outcomes.settle_all(|why| Err(ShareError::NotHeld(why.unwrap_or_default())));
}

/// Each job's outcome as the answers come in.
struct Outcomes {
    replies: Vec<Reply>,
    /// The leader, while another validator leads and has not yet failed to answer.
    leader: Option<Address>,
    /// A follower already holds the job's transaction (enough once the leader cannot answer).
    held_elsewhere: Vec<bool>,
    /// Why the job is not held yet, for its error.
    why: Vec<Option<String>>,
    settled: Vec<bool>,
}

impl Outcomes {
    fn new(replies: Vec<Reply>, leader: Option<Address>) -> Self {
        let n = replies.len();
        Self {
            replies,
            leader,
            held_elsewhere: vec![false; n],
            why: vec![None; n],
            settled: vec![false; n],
        }
    }

    fn settle(&mut self, i: usize, outcome: Result<(), ShareError>) {
        if self.settled[i] {
            return;
        }
        self.settled[i] = true;
        if let Some(reply) = self.replies[i].take() {
            let _ = reply.send(outcome);
        }
    }

    fn settle_all(&mut self, outcome: impl Fn(Option<String>) -> Result<(), ShareError>) {
        for i in 0..self.replies.len() {
            let why = self.why[i].take();
            self.settle(i, outcome(why));
        }
    }

    fn all_settled(&self) -> bool {
        self.settled.iter().all(|s| *s)
    }

    fn answered(&mut self, peer: Address, holds: &[Hold]) {
        let from_leader = self.leader == Some(peer);
        for (i, hold) in holds.iter().enumerate() {
            match (hold, from_leader) {
                (Hold::Held, true) => self.settle(i, Ok(())),
                (Hold::Refused(reason), true) => {
                    let reason = reason.clone();
                    self.settle(
                        i,
                        Err(ShareError::Refused {
                            leader: peer,
                            reason,
                        }),
                    );
                }
                (Hold::Held, false) if self.leader.is_none() => self.settle(i, Ok(())),
                (Hold::Held, false) => self.held_elsewhere[i] = true,
                (Hold::Refused(reason), false) => {
                    self.why[i].get_or_insert_with(|| format!("{peer} refused it: {reason}"));
                }
            }
        }
    }

    /// `peer` could not be asked. If it was the leader, what followers hold is enough.
    fn unreachable(&mut self, peer: Address, error: String) {
        tracing::debug!(%peer, %error, "could not share transactions with a validator");
        for why in &mut self.why {
            why.get_or_insert_with(|| error.clone());
        }
        if self.leader == Some(peer) {
            self.leader = None;
            for i in 0..self.replies.len() {
                if self.held_elsewhere[i] {
                    self.settle(i, Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(n: usize) -> (Vec<Reply>, Vec<oneshot::Receiver<Result<(), ShareError>>>) {
        (0..n)
            .map(|_| {
                let (tx, rx) = oneshot::channel();
                (Some(tx), rx)
            })
            .unzip()
    }

    fn outcome(
        rx: &mut oneshot::Receiver<Result<(), ShareError>>,
    ) -> Option<Result<(), ShareError>> {
        rx.try_recv().ok()
    }

    const LEADER: Address = Address::repeat_byte(1);
    const FOLLOWER: Address = Address::repeat_byte(2);

    /// The queue holds at most [`QUEUE_KIB`] of transactions, far fewer than [`QUEUE`] when they
    /// are large: the next waits until a queued one is done with.
    #[tokio::test]
    async fn large_transactions_wait_for_room_in_bytes_not_only_in_count() {
        use futures::FutureExt;
        let (sharer, mut queue) = channel();
        let large = Bytes::from(vec![0u8; 128 << 10]);
        let fit = (QUEUE_KIB / 128) as usize;
        for _ in 0..fit {
            sharer.offer(large.clone()).await;
        }
        assert!(fit < QUEUE);
        assert_eq!(
            sharer.offer(large.clone()).now_or_never(),
            None,
            "queued over the budget"
        );
        drop(queue.offers.recv().await);
        assert_eq!(sharer.offer(large.clone()).now_or_never(), Some(()));
    }

    /// A new leader offered a whole pool leaves clients' transactions room of their own, and
    /// batches take clients' first.
    #[tokio::test]
    async fn offers_never_take_the_room_of_clients_transactions() {
        use futures::FutureExt;
        let (sharer, mut queue) = channel();
        let small = Bytes::from_static(&[1; 100]);
        for _ in 0..QUEUE {
            sharer.offer(small.clone()).await;
        }
        let more = sharer.offer(small.clone()).now_or_never();
        assert_eq!(more, None, "the offers' lane is full");
        let client = Bytes::from_static(&[2; 100]);
        // Unconstrained: after 16,384 sends tokio's cooperative budget would hold it back.
        let queued =
            tokio::task::unconstrained(sharer.clients.enqueue(client.clone(), None)).now_or_never();
        assert!(
            matches!(queued, Some(Ok(()))),
            "a client waited behind offers"
        );
        assert_eq!(queue.try_next().map(|job| job.raw), Some(client));
        assert_eq!(queue.try_next().map(|job| job.raw), Some(small));
    }

    #[test]
    fn the_leaders_word_settles_while_it_answers() {
        let (replies, mut rx) = jobs(2);
        let mut outcomes = Outcomes::new(replies, Some(LEADER));
        // A follower holding it is not enough while the leader may still refuse.
        outcomes.answered(FOLLOWER, &[Hold::Held, Hold::Held]);
        assert_eq!(outcome(&mut rx[0]), None);
        outcomes.answered(LEADER, &[Hold::Held, Hold::Refused("nonce too low".into())]);
        assert_eq!(outcome(&mut rx[0]), Some(Ok(())));
        assert_eq!(
            outcome(&mut rx[1]),
            Some(Err(ShareError::Refused {
                leader: LEADER,
                reason: "nonce too low".into()
            }))
        );
        assert!(outcomes.all_settled());
    }

    #[test]
    fn an_unreachable_leader_leaves_it_to_the_followers() {
        let (replies, mut rx) = jobs(2);
        let mut outcomes = Outcomes::new(replies, Some(LEADER));
        outcomes.answered(
            FOLLOWER,
            &[Hold::Held, Hold::Refused("txpool is full".into())],
        );
        outcomes.unreachable(LEADER, "connection refused".into());
        assert_eq!(outcome(&mut rx[0]), Some(Ok(())));
        assert_eq!(outcome(&mut rx[1]), None);
        outcomes.settle_all(|why| Err(ShareError::NotHeld(why.unwrap_or_default())));
        assert!(
            matches!(outcome(&mut rx[1]), Some(Err(ShareError::NotHeld(why))) if why.contains("txpool is full"))
        );
    }

    #[test]
    fn with_no_other_leader_any_voter_holding_it_is_enough() {
        let (replies, mut rx) = jobs(1);
        let mut outcomes = Outcomes::new(replies, None);
        outcomes.unreachable(LEADER, "down".into());
        assert_eq!(outcome(&mut rx[0]), None);
        outcomes.answered(FOLLOWER, &[Hold::Held]);
        assert_eq!(outcome(&mut rx[0]), Some(Ok(())));
    }
}
