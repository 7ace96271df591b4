//! Watching for protocol upgrades governance schedules: when the chain's scheduled version is
//! newer than this node's, the node warns once when it learns of it and again once the
//! activation block is reached, so its operator upgrades in time. (`aic_upgrade` and the MetaMask
//! page show the same.)

use std::sync::Arc;

use aicoin_modules::{governance::upgrade, store::ReadOnly};
use aicoin_primitives::{NewBlock, modules::GOVERNANCE_ADDRESS};
use aicoin_storage::Store;
use tokio::sync::{broadcast, watch};

use crate::{Core, services::Services};

/// This node's protocol version.
pub const NODE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The upgrade governance scheduled in the head's state, when it is newer than this node.
pub fn pending_upgrade(store: &Store) -> Option<upgrade::Upgrade> {
    let reader = store.reader().ok()?;
    let state = reader.state_at(reader.head_number().ok()?).ok()?;
    let mut load = |slot: alloy_primitives::B256| state.storage(&GOVERNANCE_ADDRESS, &slot.into());
    let scheduled = upgrade::scheduled(&mut ReadOnly(&mut load)).ok()??;
    scheduled.is_newer_than(NODE_VERSION).then_some(scheduled)
}

pub(crate) fn start_watch(core: &Core, services: &mut Services) {
    let store = core.chain.store().clone();
    let blocks = core.chain.subscribe();
    let shutdown = services.shutdown();
    services.spawn(watch_blocks(store, blocks, shutdown));
}

async fn watch_blocks(
    store: Store,
    mut blocks: broadcast::Receiver<Arc<NewBlock>>,
    mut shutdown: watch::Receiver<bool>,
) {
    // What was last said: (version, whether it was already active).
    let mut told: Option<(String, bool)> = None;
    loop {
        let Some(block) = aicoin_compute::heads::next_block(&mut blocks, &mut shutdown).await
        else {
            return;
        };
        let Some(pending) = pending_upgrade(&store) else {
            continue;
        };
        let active = block.header.number >= pending.activation;
        let version = pending.version.to_string();
        if told.as_ref() == Some(&(version.clone(), active)) {
            continue;
        }
        match active {
            false => tracing::warn!(
                "governance scheduled protocol v{} from block {}; this node runs v{}: upgrade it \
                 before then",
                pending.version,
                pending.activation,
                NODE_VERSION
            ),
            true => tracing::error!(
                "protocol v{} is the chain's since block {}; this node runs the older v{}: \
                 upgrade it",
                pending.version,
                pending.activation,
                NODE_VERSION
            ),
        }
        told = Some((version, active));
    }
}
