//! The order in which a block producer takes pooled transactions: senders by the arrival of
//! their next transaction, each sender's transactions in nonce order.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashSet},
    sync::Arc,
    vec,
};

use alloy_primitives::Address;

use crate::PooledTx;

/// A snapshot of the pending transactions, yielded in block order. Detached from the pool:
/// transactions added meanwhile wait for the next block.
#[derive(Debug)]
pub struct BestTransactions {
    /// Each sender's remaining pending transactions, in nonce order.
    queues: Vec<vec::IntoIter<Arc<PooledTx>>>,
    /// Each sender's next transaction, taken off its queue.
    next: Vec<Option<Arc<PooledTx>>>,
    /// (arrival of a sender's next transaction, index into `queues`), earliest first.
    heads: BinaryHeap<Reverse<(u64, usize)>>,
    skipped: HashSet<Address>,
}

impl BestTransactions {
    pub(crate) fn new(per_sender: impl Iterator<Item = Vec<Arc<PooledTx>>>) -> Self {
        let queues: Vec<_> = per_sender.map(Vec::into_iter).collect();
        let mut best = Self {
            next: vec![None; queues.len()],
            queues,
            heads: BinaryHeap::new(),
            skipped: HashSet::new(),
        };
        for idx in 0..best.queues.len() {
            best.advance(idx);
        }
        best
    }

    fn advance(&mut self, idx: usize) {
        self.next[idx] = self.queues[idx].next();
        if let Some(tx) = &self.next[idx] {
            self.heads.push(Reverse((tx.seq, idx)));
        }
    }

    /// Stops yielding `sender`'s transactions: one of them failed, so the later nonces cannot
    /// execute in this block.
    pub fn skip_sender(&mut self, sender: Address) {
        self.skipped.insert(sender);
    }
}

impl Iterator for BestTransactions {
    type Item = Arc<PooledTx>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(Reverse((_, idx))) = self.heads.pop() {
            let tx = self.next[idx].take()?;
            if self.skipped.contains(&tx.sender()) {
                continue;
            }
            self.advance(idx);
            return Some(tx);
        }
        None
    }
}
