//! The public, read-only half of the sync port: `GET /status` (who this node is, its head, the
//! leader it knows, its version and a protocol upgrade it is older than) and `GET /blocks?from=N` (consecutive blocks as concatenated RLP). Followers
//! and full nodes sync from it. It needs no authentication: every block carries its validator
//! seal and is re-executed where it is imported. A standalone validator serves it alone, so full
//! nodes can follow a single-authority chain too.

use std::{net::SocketAddr, sync::Arc};

use alloy_primitives::{Address, B256};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use tokio::sync::{Semaphore, watch};

use crate::{
    Ledger,
    fetch::{MAX_BLOCKS_PER_REQUEST, MAX_BYTES_PER_REQUEST, NodeStatus},
    types::{self, Member},
};

/// What the public endpoints describe and serve.
#[derive(Clone)]
pub(crate) struct Source {
    pub ledger: Arc<dyn Ledger>,
    pub address: Address,
    pub me: Member,
    pub genesis: B256,
    /// The raft member, for the leader and term (none on a standalone validator).
    pub raft: Option<openraft::Raft<types::Raft>>,
}

/// Most `GET /blocks` answered at once (each reads up to 8 MiB); more get 503 and retry.
const CONCURRENT_BLOCK_READS: usize = 4;

pub(crate) fn router(source: Source) -> Router {
    let reads = Arc::new(Semaphore::new(CONCURRENT_BLOCK_READS));
    Router::new()
        .route("/status", get(status))
        .route("/blocks", get(blocks))
        .with_state((source, reads))
}

/// Serves only the public endpoints on `addr` (a standalone validator) until `shutdown`.
pub async fn serve(
    ledger: Arc<dyn Ledger>,
    address: Address,
    me: Member,
    genesis: B256,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let source = Source {
        ledger,
        address,
        me,
        genesis,
        raft: None,
    };
    aicoin_http::listen("sync", addr, router(source), shutdown).await
}

fn internal(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

async fn status(State((source, _)): State<(Source, Arc<Semaphore>)>) -> Response {
    let ledger = source.ledger.clone();
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::LedgerError>((ledger.head()?, ledger.pending_upgrade()))
    });
    let (head, upgrade) = match read.await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let (leader, term) = match &source.raft {
        Some(raft) => {
            let metrics = raft.metrics().borrow().clone();
            (metrics.current_leader, metrics.current_term)
        }
        None => (None, 0),
    };
    Json(NodeStatus {
        address: source.address,
        member: source.me.clone(),
        head,
        genesis: source.genesis,
        leader,
        term,
        version: env!("CARGO_PKG_VERSION").to_string(),
        upgrade,
    })
    .into_response()
}

#[derive(Debug, Deserialize)]
struct BlocksQuery {
    from: u64,
}

async fn blocks(
    State((source, reads)): State<(Source, Arc<Semaphore>)>,
    Query(query): Query<BlocksQuery>,
) -> Response {
    let Ok(_permit) = reads.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy serving blocks; retry",
        )
            .into_response();
    };
    let ledger = source.ledger.clone();
    let blocks = tokio::task::spawn_blocking(move || {
        ledger.blocks(query.from, MAX_BLOCKS_PER_REQUEST, MAX_BYTES_PER_REQUEST)
    })
    .await;
    match blocks {
        Ok(Ok(blocks)) => {
            let mut body = Vec::with_capacity(blocks.iter().map(|b| b.len()).sum());
            for block in blocks {
                body.extend_from_slice(&block);
            }
            ([(CONTENT_TYPE, "application/octet-stream")], body).into_response()
        }
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}
