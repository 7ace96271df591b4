//! The `eth_` namespace (and `personal_sign`), split by concern: state, blocks, calls, chain
//! facts, sending and signing, logs and filters, subscriptions.

mod blocks;
mod call;
mod filters;
mod info;
mod logs;
mod pubsub;
mod send;
mod state;

use std::sync::Arc;

pub use blocks::EthBlocksApiServer;
pub use call::EthCallApiServer;
pub use filters::{EthFilters, EthFiltersApiServer};
pub use info::EthInfoApiServer;
pub use pubsub::{EthPubSub, EthPubSubApiServer, HexIdProvider};
pub use send::{EthSendApiServer, PersonalApiServer};
pub use state::EthStateApiServer;

use crate::state::RpcState;

/// Implements the request/response `eth_` methods over the node's state.
#[derive(Debug, Clone)]
pub struct EthRpc {
    state: Arc<RpcState>,
}

impl EthRpc {
    pub fn new(state: Arc<RpcState>) -> Self {
        Self { state }
    }
}
