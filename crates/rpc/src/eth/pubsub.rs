//! `eth_subscribe`/`eth_unsubscribe` over WebSocket: `newHeads`, `logs` (with a filter) and
//! `newPendingTransactions` (hashes, or full transactions with `true`), fed by the chain's and
//! the pool's announcements. Subscription ids are 0x-prefixed random hex, as geth's.
//!
//! A subscriber too slow for the announcements misses none of the blocks: the heads and logs of
//! the blocks it skipped are read back from storage before the next one is sent. (Pending
//! transaction hashes it was too slow for are dropped, as geth drops them.)

use std::sync::Arc;

use aicoin_primitives::NewBlock;
use alloy_primitives::{B128, B256};
use alloy_rpc_types_eth::{
    Filter,
    pubsub::{Params, SubscriptionKind},
};
use jsonrpsee::{
    PendingSubscriptionSink, SubscriptionMessage, SubscriptionSink,
    core::SubscriptionResult,
    proc_macros::rpc,
    server::IdProvider,
    types::{ErrorObjectOwned, SubscriptionId, error::INVALID_PARAMS_CODE},
};
use serde::Serialize;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::logs::check_criteria;
use crate::{
    convert::{StoredBlock, pending_transaction, rpc_header},
    state::RpcState,
};

#[rpc(server, namespace = "eth")]
pub trait EthPubSubApi {
    #[subscription(
        name = "subscribe" => "subscription",
        unsubscribe = "unsubscribe",
        item = serde_json::Value
    )]
    async fn subscribe(&self, kind: SubscriptionKind, params: Option<Params>)
    -> SubscriptionResult;
}

/// Subscription ids as geth makes them: `0x` and 32 random hex digits.
#[derive(Debug, Clone, Copy)]
pub struct HexIdProvider;

impl IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        SubscriptionId::Str(B128::from(rand::random::<[u8; 16]>()).to_string().into())
    }
}

#[derive(Debug, Clone)]
pub struct EthPubSub {
    state: Arc<RpcState>,
}

impl EthPubSub {
    pub fn new(state: Arc<RpcState>) -> Self {
        Self { state }
    }
}

/// Sends one notification; false once the subscriber is gone.
async fn send(sink: &SubscriptionSink, item: &impl Serialize) -> bool {
    let Ok(message) = SubscriptionMessage::new(sink.method_name(), sink.subscription_id(), item)
    else {
        return false;
    };
    sink.send(message).await.is_ok()
}

/// The next announcement, skipping over any the subscriber was too slow to receive (the caller
/// fills block gaps from storage); `None` once the channel closes or the subscriber leaves.
async fn next<T: Clone>(sink: &SubscriptionSink, rx: &mut Receiver<T>) -> Option<T> {
    loop {
        tokio::select! {
            _ = sink.closed() => return None,
            item = rx.recv() => match item {
                Ok(item) => return Some(item),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "subscriber lagged behind announcements");
                }
                Err(RecvError::Closed) => return None,
            },
        }
    }
}

impl EthPubSub {
    /// The blocks to report when `announced` arrives: any skipped since `next`, then it.
    fn catch_up(next: &mut Option<u64>, announced: u64) -> std::ops::RangeInclusive<u64> {
        let from = next.unwrap_or(announced).min(announced);
        *next = Some(announced + 1);
        from..=announced
    }

    async fn new_heads(&self, sink: SubscriptionSink, mut blocks: Receiver<Arc<NewBlock>>) {
        let mut next_number = None;
        while let Some(block) = next(&sink, &mut blocks).await {
            for number in Self::catch_up(&mut next_number, block.header.number) {
                let header = if number == block.header.number {
                    Some(rpc_header(block.header.clone(), block.hash, None))
                } else {
                    self.stored_header(number)
                };
                if let Some(header) = header
                    && !send(&sink, &header).await
                {
                    return;
                }
            }
        }
    }

    fn stored_header(&self, number: u64) -> Option<alloy_rpc_types_eth::Header> {
        let reader = self.state.reader().ok()?;
        let header = reader.header(number).ok()??;
        let hash = reader.block_hash(number).ok()??;
        Some(rpc_header(header, hash, None))
    }

    async fn logs(
        &self,
        sink: SubscriptionSink,
        mut blocks: Receiver<Arc<NewBlock>>,
        filter: Filter,
    ) {
        let mut next_number = None;
        while let Some(block) = next(&sink, &mut blocks).await {
            for number in Self::catch_up(&mut next_number, block.header.number) {
                let (state, filter) = (self.state.clone(), filter.clone());
                let logs = tokio::task::spawn_blocking(move || {
                    let reader = state.reader().ok()?;
                    let header = reader.header(number).ok()??;
                    if !filter.matches_bloom(header.logs_bloom) {
                        return Some(Vec::new());
                    }
                    let stored = StoredBlock::load(&reader, number).ok()??;
                    let receipts = reader.receipts(number).ok()?;
                    let system = reader.system_logs(number).ok()?;
                    Some(
                        stored
                            .logs(&receipts, &system)
                            .into_iter()
                            .filter(|l| filter.matches(&l.inner))
                            .collect::<Vec<_>>(),
                    )
                })
                .await;
                for log in logs.ok().flatten().unwrap_or_default() {
                    if !send(&sink, &log).await {
                        return;
                    }
                }
            }
        }
    }

    async fn pending_transactions(
        &self,
        sink: SubscriptionSink,
        mut hashes: Receiver<B256>,
        full: bool,
    ) {
        while let Some(hash) = next(&sink, &mut hashes).await {
            let sent = match full {
                false => send(&sink, &hash).await,
                true => match self.state.pool.get(&hash) {
                    Some(pooled) => send(&sink, &pending_transaction(pooled.tx.clone())).await,
                    // Already mined or dropped: nothing to show in full.
                    None => true,
                },
            };
            if !sent {
                return;
            }
        }
    }
}

#[jsonrpsee::core::async_trait]
impl EthPubSubApiServer for EthPubSub {
    async fn subscribe(
        &self,
        pending: PendingSubscriptionSink,
        kind: SubscriptionKind,
        params: Option<Params>,
    ) -> SubscriptionResult {
        let params = params.unwrap_or_default();
        // Each subscription listens before the client learns its id: whatever happens after
        // `eth_subscribe` answers (the subscriber's own transaction, the next block) is reported.
        let blocks = || self.state.new_blocks.subscribe();
        match (kind, params) {
            (SubscriptionKind::NewHeads, Params::None) => {
                let rx = blocks();
                self.new_heads(pending.accept().await?, rx).await
            }
            (SubscriptionKind::Logs, Params::None) => {
                let rx = blocks();
                self.logs(pending.accept().await?, rx, Filter::default())
                    .await
            }
            (SubscriptionKind::Logs, Params::Logs(filter)) => {
                if let Err(e) = check_criteria(&filter) {
                    pending.reject(ErrorObjectOwned::from(e)).await;
                    return Ok(());
                }
                let rx = blocks();
                self.logs(pending.accept().await?, rx, *filter).await
            }
            (SubscriptionKind::NewPendingTransactions, Params::None) => {
                let rx = self.state.pool.subscribe();
                self.pending_transactions(pending.accept().await?, rx, false)
                    .await
            }
            (SubscriptionKind::NewPendingTransactions, Params::Bool(full)) => {
                let rx = self.state.pool.subscribe();
                self.pending_transactions(pending.accept().await?, rx, full)
                    .await
            }
            (kind, params) => {
                let message = format!(
                    "unsupported subscription {kind:?} with {params:?}: AICoin serves newHeads, \
                     logs (optionally with a filter) and newPendingTransactions (optionally true)"
                );
                pending
                    .reject(ErrorObjectOwned::owned(
                        INVALID_PARAMS_CODE,
                        message,
                        None::<()>,
                    ))
                    .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::EthPubSub;

    #[test]
    fn a_subscriber_that_skipped_blocks_gets_them_first() {
        let mut next = None;
        assert_eq!(EthPubSub::catch_up(&mut next, 5), 5..=5);
        assert_eq!(EthPubSub::catch_up(&mut next, 6), 6..=6);
        // Announcements 7 and 8 were missed.
        assert_eq!(EthPubSub::catch_up(&mut next, 9), 7..=9);
        assert_eq!(next, Some(10));
    }
}
