//! A full node: follows validators' chains by height over their public sync endpoints,
//! importing every block through the ledger (seal checked, re-executed), and logs its progress
//! (blocks/s and ETA) every few seconds while behind.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::{
    Ledger,
    fetch::{Fetcher, head, import},
};

/// How often a caught-up full node asks for new blocks.
const POLL: Duration = Duration::from_millis(250);
/// How often progress is logged while syncing.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Syncs from `bootnodes` (sync URLs) until `shutdown`.
pub async fn run(
    ledger: Arc<dyn Ledger>,
    bootnodes: Vec<String>,
    fetcher: Fetcher,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut progress = Progress::default();
    let mut next = 0;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let peer = &bootnodes[next % bootnodes.len()];
        match step(&ledger, peer, &fetcher, &mut progress).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "sync from this bootnode failed; trying the next");
                next += 1;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One round: imports what `peer` has beyond our head. True when there may be more right away.
async fn step(
    ledger: &Arc<dyn Ledger>,
    peer: &str,
    fetcher: &Fetcher,
    progress: &mut Progress,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let ours = head(ledger).await?;
    let theirs = fetcher.status(peer).await?;
    if theirs.head.number <= ours.number {
        progress.done(ours.number);
        return Ok(false);
    }
    let blocks = fetcher.blocks(peer, ours.number + 1).await?;
    if blocks.is_empty() {
        return Ok(false);
    }
    let count = blocks.len() as u64;
    let reached = import(ledger, blocks, ours.number + 1).await?;
    progress.advance(count, reached.number, theirs.head.number);
    Ok(reached.number < theirs.head.number)
}

#[derive(Default)]
struct Progress {
    window: Option<(Instant, u64)>,
    syncing: bool,
}

impl Progress {
    fn advance(&mut self, count: u64, at: u64, target: u64) {
        let (since, blocks) = self.window.get_or_insert((Instant::now(), 0));
        *blocks += count;
        let elapsed = since.elapsed();
        if elapsed >= PROGRESS_EVERY {
            let rate = *blocks as f64 / elapsed.as_secs_f64();
            // The peer may have produced more since it told us its head.
            let left = target.saturating_sub(at) as f64;
            let eta = Duration::try_from_secs_f64(left / rate.max(1e-9)).unwrap_or(Duration::MAX);
            tracing::info!(block = at, target, blocks_per_s = format!("{rate:.0}"),
                eta = ?Duration::from_secs(eta.as_secs()), "syncing");
            self.window = None;
        }
        // Following a live chain imports a block at a time; only a real catch-up is reported.
        self.syncing |= count > 16 || at < target;
    }

    fn done(&mut self, at: u64) {
        if self.syncing {
            tracing::info!(block = at, "in sync with the bootnode");
            self.syncing = false;
            self.window = None;
        }
    }
}
