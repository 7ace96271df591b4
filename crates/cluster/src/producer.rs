//! Block production in a cluster: only the raft leader builds, and only once an entry of its own
//! term is applied (so every block committed before it is imported and its head is final). One
//! block is in flight at a time: the next is built after the last is committed and applied.

use std::{sync::Arc, time::Duration};

use alloy_primitives::Address;
use openraft::ServerState;
use tokio::{sync::watch, time::Instant};

use crate::{
    ConsensusThread, Ledger,
    types::{BlockEntry, Raft},
};

/// Whether `me` leads, has applied an entry of its own term, and heard from a quorum lately (a
/// restarted node briefly believes in the leadership it had stored).
fn ready(raft: &openraft::Raft<Raft>, me: Address) -> bool {
    let m = raft.metrics().borrow().clone();
    m.state == ServerState::Leader
        && m.current_leader == Some(me)
        && m.last_applied
            .is_some_and(|l| l.leader_id.term == m.current_term)
        && m.millis_since_quorum_ack.is_some_and(|ms| ms < 1000)
}

pub async fn run(
    raft: openraft::Raft<Raft>,
    ledger: Arc<dyn Ledger>,
    consensus: ConsensusThread,
    me: Address,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    // When this node last proposed; a new leader proposes at once.
    let mut last: Option<(Instant, u64)> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if !ready(&raft, me) {
            last = None;
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                // Quorum acknowledgements age without a metrics change.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let term = raft.metrics().borrow().current_term;
        if let Some((at, in_term)) = last
            && in_term == term
            && at.elapsed() < interval
        {
            tokio::select! {
                _ = tokio::time::sleep_until(at + interval) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        last = Some((Instant::now(), term));
        let builder = ledger.clone();
        let block = match consensus.run(move || builder.build()).await {
            Ok(Ok(block)) => block,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "block building failed");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "block building task failed");
                continue;
            }
        };
        match raft.client_write(BlockEntry(block)).await {
            Ok(written) => {
                if let Some(point) = written.data.0 {
                    tracing::info!(number = point.number, hash = %point.hash, index = written.log_id.index,
                        "block committed by the cluster");
                }
            }
            // Leadership moved while the block was in flight: the new leader's log decides
            // whether it survives.
            Err(e) => tracing::warn!(error = %e, "proposed block not committed"),
        }
    }
}
