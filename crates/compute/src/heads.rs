//! Following the chain's new heads until the node shuts down: the loop every block-driven task
//! (the prober, a provider's self-registration, the upgrade watch) runs on.

use std::sync::Arc;

use aicoin_primitives::NewBlock;
use tokio::sync::{broadcast, watch};

/// The next new head, skipping over any a slow task missed; `None` once the chain's channel
/// closes or `shutdown` fires.
pub async fn next_block(
    blocks: &mut broadcast::Receiver<Arc<NewBlock>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Arc<NewBlock>> {
    loop {
        tokio::select! {
            block = blocks.recv() => match block {
                Ok(block) => return Some(block),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = shutdown.changed() => return None,
        }
    }
}
