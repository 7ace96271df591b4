//! `eth_getLogs` and the polling filters: `eth_newFilter`, `eth_newBlockFilter`,
//! `eth_newPendingTransactionFilter`, `eth_getFilterChanges`, `eth_getFilterLogs`,
//! `eth_uninstallFilter`.
//!
//! A filter remembers the next block it has not reported; pending-transaction filters buffer
//! the hashes the pool announces (bounded, oldest dropped first). Filters nobody polls within
//! the timeout are removed, as geth does, and the number installed is capped.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Weak},
    time::Instant,
};

use alloy_primitives::{B256, U128};
use alloy_rpc_types_eth::{Filter, FilterChanges, Log};
use jsonrpsee::proc_macros::rpc;
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;

use super::logs::{filter_range, logs, logs_in_range};
use crate::{
    error::{RpcError, RpcResult},
    state::RpcState,
};

/// Most transaction hashes a pending-transaction filter holds between polls.
const MAX_PENDING_BUFFER: usize = 10_000;

#[rpc(server, namespace = "eth")]
pub trait EthFiltersApi {
    #[method(name = "getLogs", blocking)]
    fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>>;

    #[method(name = "newFilter", blocking)]
    fn new_filter(&self, filter: Filter) -> RpcResult<U128>;

    #[method(name = "newBlockFilter", blocking)]
    fn new_block_filter(&self) -> RpcResult<U128>;

    #[method(name = "newPendingTransactionFilter")]
    fn new_pending_transaction_filter(&self) -> RpcResult<U128>;

    #[method(name = "getFilterChanges", blocking)]
    fn filter_changes(&self, id: U128) -> RpcResult<FilterChanges>;

    #[method(name = "getFilterLogs", blocking)]
    fn filter_logs(&self, id: U128) -> RpcResult<Vec<Log>>;

    #[method(name = "uninstallFilter")]
    fn uninstall_filter(&self, id: U128) -> RpcResult<bool>;
}

#[derive(Debug)]
enum Kind {
    Logs {
        filter: Box<Filter>,
        next_block: u64,
    },
    Blocks {
        next_block: u64,
    },
    PendingTransactions {
        hashes: VecDeque<B256>,
    },
}

#[derive(Debug)]
struct Installed {
    kind: Kind,
    last_poll: Instant,
}

/// The installed filters.
#[derive(Debug)]
pub struct EthFilters {
    state: Arc<RpcState>,
    filters: Mutex<HashMap<U128, Installed>>,
}

impl EthFilters {
    /// The filter registry, with its background task that feeds pending-transaction filters and
    /// removes expired ones (it ends when the registry is dropped).
    pub fn spawn(state: Arc<RpcState>) -> Arc<Self> {
        let filters = Arc::new(Self {
            state: state.clone(),
            filters: Mutex::default(),
        });
        tokio::spawn(maintain(Arc::downgrade(&filters), state));
        filters
    }

    fn install(&self, kind: Kind) -> RpcResult<U128> {
        let mut filters = self.filters.lock();
        self.expire(&mut filters);
        if filters.len() >= self.state.limits.max_filters {
            return Err(RpcError::LimitExceeded(format!(
                "too many filters installed (limit {}); uninstall some",
                self.state.limits.max_filters
            )));
        }
        let id = U128::from(rand::random::<u128>());
        let last_poll = Instant::now();
        filters.insert(id, Installed { kind, last_poll });
        Ok(id)
    }

    fn expire(&self, filters: &mut HashMap<U128, Installed>) {
        let timeout = self.state.limits.filter_timeout;
        filters.retain(|_, f| f.last_poll.elapsed() <= timeout);
    }

    fn head(&self) -> RpcResult<u64> {
        Ok(self.state.reader()?.head_number()?)
    }
}

async fn maintain(filters: Weak<EthFilters>, state: Arc<RpcState>) {
    let mut pending = state.pool.subscribe();
    let mut sweep = tokio::time::interval(state.limits.filter_timeout / 4);
    loop {
        let event = tokio::select! {
            hash = pending.recv() => Some(hash),
            _ = sweep.tick() => None,
        };
        let Some(filters) = filters.upgrade() else {
            return;
        };
        let mut installed = filters.filters.lock();
        match event {
            Some(Ok(hash)) => {
                for f in installed.values_mut() {
                    if let Kind::PendingTransactions { hashes } = &mut f.kind {
                        if hashes.len() == MAX_PENDING_BUFFER {
                            hashes.pop_front();
                        }
                        hashes.push_back(hash);
                    }
                }
            }
            Some(Err(RecvError::Lagged(_))) => {}
            Some(Err(RecvError::Closed)) => return,
            None => filters.expire(&mut installed),
        }
    }
}

impl EthFiltersApiServer for Arc<EthFilters> {
    fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>> {
        logs(&self.state.reader()?, &filter, &self.state.limits)
    }

    fn new_filter(&self, filter: Filter) -> RpcResult<U128> {
        // Resolve the range now: a bad range is refused at install time, not at first poll.
        let reader = self.state.reader()?;
        let next_block = match filter_range(&reader, &filter)? {
            Some((from, _)) => from,
            None => reader.head_number()? + 1,
        };
        let filter = Box::new(filter);
        self.install(Kind::Logs { filter, next_block })
    }

    fn new_block_filter(&self) -> RpcResult<U128> {
        let next_block = self.head()? + 1;
        self.install(Kind::Blocks { next_block })
    }

    fn new_pending_transaction_filter(&self) -> RpcResult<U128> {
        self.install(Kind::PendingTransactions {
            hashes: VecDeque::new(),
        })
    }

    fn filter_changes(&self, id: U128) -> RpcResult<FilterChanges> {
        let reader = self.state.reader()?;
        let head = reader.head_number()?;
        let mut filters = self.filters.lock();
        self.expire(&mut filters);
        let installed = filters.get_mut(&id).ok_or(RpcError::FilterNotFound)?;
        installed.last_poll = Instant::now();
        match &mut installed.kind {
            Kind::Blocks { next_block } => {
                let hashes = (*next_block..=head)
                    .filter_map(|n| reader.block_hash(n).transpose())
                    .collect::<Result<Vec<_>, _>>()?;
                *next_block = head + 1;
                Ok(FilterChanges::Hashes(hashes))
            }
            Kind::PendingTransactions { hashes } => {
                Ok(FilterChanges::Hashes(hashes.drain(..).collect()))
            }
            Kind::Logs { filter, next_block } => {
                let to = match filter_range(&reader, filter)? {
                    Some((_, to)) => to.min(head),
                    None => head,
                };
                if *next_block > to {
                    return Ok(FilterChanges::Empty);
                }
                let logs = logs_in_range(&reader, filter, (*next_block, to), &self.state.limits)?;
                *next_block = to + 1;
                Ok(FilterChanges::Logs(logs))
            }
        }
    }

    fn filter_logs(&self, id: U128) -> RpcResult<Vec<Log>> {
        let filter = {
            let mut filters = self.filters.lock();
            self.expire(&mut filters);
            let installed = filters.get_mut(&id).ok_or(RpcError::FilterNotFound)?;
            installed.last_poll = Instant::now();
            match &installed.kind {
                Kind::Logs { filter, .. } => filter.clone(),
                _ => return Err(RpcError::FilterNotFound),
            }
        };
        logs(&self.state.reader()?, &filter, &self.state.limits)
    }

    fn uninstall_filter(&self, id: U128) -> RpcResult<bool> {
        Ok(self.filters.lock().remove(&id).is_some())
    }
}
