//! The `txpool_` namespace (geth's): pool sizes, and its pending and queued transactions by
//! sender and nonce, in full or summarised (on the blocking pool: a full pool is up to
//! `--txpool-max-txs` transactions to convert).

use std::{collections::BTreeMap, sync::Arc};

use aicoin_txpool::{PoolContent, PooledTx, TxPool};
use alloy_primitives::Address;
use alloy_rpc_types_eth::Transaction;
use alloy_rpc_types_txpool::{
    TxpoolContent, TxpoolContentFrom, TxpoolInspect, TxpoolInspectSummary, TxpoolStatus,
};
use jsonrpsee::proc_macros::rpc;

use crate::{convert::pending_transaction, error::RpcResult};

#[rpc(server, namespace = "txpool")]
pub trait TxPoolApi {
    #[method(name = "status")]
    fn status(&self) -> RpcResult<TxpoolStatus>;

    #[method(name = "content", blocking)]
    fn content(&self) -> RpcResult<TxpoolContent>;

    #[method(name = "contentFrom", blocking)]
    fn content_from(&self, from: Address) -> RpcResult<TxpoolContentFrom>;

    #[method(name = "inspect", blocking)]
    fn inspect(&self) -> RpcResult<TxpoolInspect>;
}

#[derive(Debug, Clone)]
pub struct TxPoolRpc {
    pool: Arc<TxPool>,
}

impl TxPoolRpc {
    pub fn new(pool: Arc<TxPool>) -> Self {
        Self { pool }
    }
}

type BySender<T> = BTreeMap<Address, BTreeMap<String, T>>;

/// `sender → nonce (decimal string) → f(tx)`, as geth keys its pool listings.
fn by_sender<T>(
    side: BTreeMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
    f: impl Fn(&PooledTx) -> T,
) -> BySender<T> {
    side.into_iter()
        .map(|(sender, txs)| {
            let txs = txs
                .into_iter()
                .map(|(n, tx)| (n.to_string(), f(&tx)))
                .collect();
            (sender, txs)
        })
        .collect()
}

fn full(tx: &PooledTx) -> Transaction {
    pending_transaction(tx.tx.clone())
}

fn summary(tx: &PooledTx) -> TxpoolInspectSummary {
    TxpoolInspectSummary::from_tx(tx.tx.inner().clone())
}

impl TxPoolApiServer for TxPoolRpc {
    fn status(&self) -> RpcResult<TxpoolStatus> {
        let status = self.pool.status();
        Ok(TxpoolStatus {
            pending: status.pending as u64,
            queued: status.queued as u64,
        })
    }

    fn content(&self) -> RpcResult<TxpoolContent> {
        let PoolContent { pending, queued } = self.pool.content();
        Ok(TxpoolContent {
            pending: by_sender(pending, full),
            queued: by_sender(queued, full),
        })
    }

    fn content_from(&self, from: Address) -> RpcResult<TxpoolContentFrom> {
        let PoolContent {
            mut pending,
            mut queued,
        } = self.pool.content();
        let side = |txs: Option<BTreeMap<u64, Arc<PooledTx>>>| {
            txs.unwrap_or_default()
                .into_iter()
                .map(|(n, tx)| (n.to_string(), full(&tx)))
                .collect()
        };
        Ok(TxpoolContentFrom {
            pending: side(pending.remove(&from)),
            queued: side(queued.remove(&from)),
        })
    }

    fn inspect(&self) -> RpcResult<TxpoolInspect> {
        let PoolContent { pending, queued } = self.pool.content();
        Ok(TxpoolInspect {
            pending: by_sender(pending, summary),
            queued: by_sender(queued, summary),
        })
    }
}
