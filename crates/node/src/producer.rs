//! The block production loop: one block every interval, empty or not, built from the pool's
//! best transactions on the node's consensus thread; afterwards the pool drops what was
//! included or cannot execute.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aicoin_cluster::ConsensusThread;
use aicoin_txpool::TxPool;
use tokio::{sync::watch, time::MissedTickBehavior};

use crate::{
    chain::{Chain, Sealer},
    metrics::NodeMetrics,
};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Produces blocks until `shutdown` turns true.
pub async fn run(
    chain: Arc<Chain>,
    pool: Arc<TxPool>,
    consensus: ConsensusThread,
    sealer: Sealer,
    interval: Duration,
    metrics: Arc<NodeMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The first block comes one interval after start, like every later one.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let sealer = Arc::new(sealer);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        let (chain, sealer, mut best) = (chain.clone(), sealer.clone(), pool.best());
        let produced = consensus
            .run(move || chain.produce(&sealer, unix_now(), &mut best))
            .await;
        match produced {
            Ok(Ok(produced)) => {
                let rejected: Vec<_> = produced.rejected.iter().map(|(hash, _)| *hash).collect();
                for (hash, reason) in &produced.rejected {
                    tracing::info!(%hash, reason, "dropped transaction that cannot execute");
                }
                pool.remove(&rejected);
                pool.on_new_block(produced.next_nonces);
                let t = produced.timings;
                metrics
                    .block_build
                    .observe((t.execution + t.state_root + t.commit).as_secs_f64());
                let header = &produced.block.header;
                tracing::info!(
                    number = header.number,
                    hash = %produced.block.hash,
                    txs = produced.block.transactions.len(),
                    gas_used = header.gas_used,
                    exec_ms = produced.timings.execution.as_secs_f64() * 1e3,
                    state_ms = produced.timings.state_root.as_secs_f64() * 1e3,
                    commit_ms = produced.timings.commit.as_secs_f64() * 1e3,
                    "produced block"
                );
            }
            Ok(Err(e)) => tracing::error!(error = %e, "block production failed"),
            Err(e) => tracing::error!(error = %e, "block production task failed"),
        }
    }
}
