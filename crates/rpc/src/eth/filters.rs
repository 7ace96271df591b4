//! `eth_getLogs` and the polling filters: `eth_newFilter`, `eth_newBlockFilter`,
//! `eth_newPendingTransactionFilter`, `eth_getFilterChanges`, `eth_getFilterLogs`,
//! `eth_uninstallFilter`.
//!
//! A filter remembers the next block it has not reported; a poll reports at most the log range
//! limit's worth of blocks and the next poll continues from there. Pending-transaction filters
//! buffer the hashes the pool announces (bounded, oldest dropped first). Filters nobody polls
//! within the timeout are removed, as geth does; the number installed is capped, in all and per
//! client address. Each filter has its own lock, so a slow poll holds up no other filter.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use alloy_primitives::{B256, U128};
use alloy_rpc_types_eth::{Filter, FilterChanges, Log};
use jsonrpsee::{Extensions, proc_macros::rpc};
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;

use super::logs::{check_criteria, filter_range, logs, logs_in_range};
use crate::{
    error::{RpcError, RpcResult},
    server::ClientIp,
    state::RpcState,
};

/// Most transaction hashes a pending-transaction filter holds between polls (32 KiB).
const MAX_PENDING_BUFFER: usize = 1024;

#[rpc(server, namespace = "eth")]
pub trait EthFiltersApi {
    #[method(name = "getLogs", blocking)]
    fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>>;

    #[method(name = "newFilter", blocking, with_extensions)]
    fn new_filter(&self, filter: Filter) -> RpcResult<U128>;

    #[method(name = "newBlockFilter", blocking, with_extensions)]
    fn new_block_filter(&self) -> RpcResult<U128>;

    #[method(name = "newPendingTransactionFilter", with_extensions)]
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
    kind: Mutex<Kind>,
    /// The client address that installed it, for the per-client cap.
    owner: Option<IpAddr>,
    last_poll: Mutex<Instant>,
}

impl Installed {
    fn touch(&self) {
        *self.last_poll.lock() = Instant::now();
    }

    fn expired(&self, timeout: Duration) -> bool {
        self.last_poll.lock().elapsed() > timeout
    }
}

/// The installed filters.
#[derive(Debug)]
pub struct EthFilters {
    state: Arc<RpcState>,
    filters: Mutex<HashMap<U128, Arc<Installed>>>,
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

    fn install(&self, ext: &Extensions, kind: Kind) -> RpcResult<U128> {
        let owner = ext.get::<ClientIp>().map(|ClientIp(ip)| *ip);
        let limits = &self.state.limits;
        let mut filters = self.filters.lock();
        self.expire(&mut filters);
        if filters.len() >= limits.max_filters {
            return Err(RpcError::LimitExceeded(format!(
                "too many filters installed (limit {}); uninstall some",
                limits.max_filters
            )));
        }
        if owner.is_some()
            && filters.values().filter(|f| f.owner == owner).count()
                >= limits.max_filters_per_client
        {
            return Err(RpcError::LimitExceeded(format!(
                "this client has {} filters installed, the most allowed; uninstall some",
                limits.max_filters_per_client
            )));
        }
        let id = U128::from(rand::random::<u128>());
        let installed = Installed {
            kind: Mutex::new(kind),
            owner,
            last_poll: Mutex::new(Instant::now()),
        };
        filters.insert(id, Arc::new(installed));
        Ok(id)
    }

    fn expire(&self, filters: &mut HashMap<U128, Arc<Installed>>) {
        let timeout = self.state.limits.filter_timeout;
        filters.retain(|_, f| !f.expired(timeout));
    }

    /// The filter `id`, marked as polled now.
    fn polled(&self, id: &U128) -> RpcResult<Arc<Installed>> {
        let mut filters = self.filters.lock();
        self.expire(&mut filters);
        let installed = filters.get(id).ok_or(RpcError::FilterNotFound)?.clone();
        installed.touch();
        Ok(installed)
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
                for f in installed.values() {
                    if let Kind::PendingTransactions { hashes } = &mut *f.kind.lock() {
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

    fn new_filter(&self, ext: &Extensions, filter: Filter) -> RpcResult<U128> {
        check_criteria(&filter)?;
        // Resolve the range now: a bad range is refused at install time, not at first poll.
        let reader = self.state.reader()?;
        let next_block = match filter_range(&reader, &filter)? {
            Some((from, _)) => from,
            // A fromBlock still in the future.
            None => filter.get_from_block().unwrap_or(reader.head_number()? + 1),
        };
        let filter = Box::new(filter);
        self.install(ext, Kind::Logs { filter, next_block })
    }

    fn new_block_filter(&self, ext: &Extensions) -> RpcResult<U128> {
        let next_block = self.head()? + 1;
        self.install(ext, Kind::Blocks { next_block })
    }

    fn new_pending_transaction_filter(&self, ext: &Extensions) -> RpcResult<U128> {
        self.install(
            ext,
            Kind::PendingTransactions {
                hashes: VecDeque::new(),
            },
        )
    }

    fn filter_changes(&self, id: U128) -> RpcResult<FilterChanges> {
        let installed = self.polled(&id)?;
        let reader = self.state.reader()?;
        let head = reader.head_number()?;
        let limits = &self.state.limits;
        // Only this filter waits while its logs are read.
        let mut kind = installed.kind.lock();
        match &mut *kind {
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
                let Some((_, to)) = filter_range(&reader, filter)? else {
                    // Its fromBlock is not mined yet.
                    return Ok(FilterChanges::Empty);
                };
                let to = to.min(head);
                if *next_block > to {
                    return Ok(FilterChanges::Empty);
                }
                // A filter that fell behind catches up one range limit's worth per poll.
                let to = to.min(*next_block + limits.max_logs_range - 1);
                let logs = logs_in_range(&reader, filter, (*next_block, to), limits)?;
                *next_block = to + 1;
                Ok(FilterChanges::Logs(logs))
            }
        }
    }

    fn filter_logs(&self, id: U128) -> RpcResult<Vec<Log>> {
        let installed = self.polled(&id)?;
        let filter = match &*installed.kind.lock() {
            Kind::Logs { filter, .. } => filter.clone(),
            _ => return Err(RpcError::FilterNotFound),
        };
        logs(&self.state.reader()?, &filter, &self.state.limits)
    }

    fn uninstall_filter(&self, id: U128) -> RpcResult<bool> {
        Ok(self.filters.lock().remove(&id).is_some())
    }
}
