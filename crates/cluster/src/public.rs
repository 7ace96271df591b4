//! The public, read-only half of the sync port: `GET /status` (who this node is, its head, the
//! leader it knows, its version and a protocol upgrade it is older than) and `GET /blocks?from=N` (consecutive blocks as concatenated RLP). Followers
//! and full nodes sync from it. It needs no authentication: every block carries its validator
//! seal and is re-executed where it is imported. A standalone validator serves it alone, so full
//! nodes can follow a single-authority chain too.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};
use axum::{
    Json, Router,
    body::Body,
    extract::{Query, State},
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use tokio::sync::{Semaphore, watch};

use crate::{
    Ledger,
    body::SYNC_LIMITS,
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

/// Most `GET /blocks` answered at once (each holds up to 8 MiB until it is sent); more get 503
/// and retry.
const CONCURRENT_BLOCK_READS: usize = 4;

/// How long one `GET /blocks` answer may take to send; a slower reader loses it (and its read
/// slot), as a follower would give up on it by then.
const BLOCKS_SEND_DEADLINE: Duration = Duration::from_secs(60);

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
    aicoin_http::listen_with_limits("sync", addr, router(source), SYNC_LIMITS, shutdown).await
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
    // Held until the answer is sent, not just built: a reader that never takes its blocks
    // cannot have the node buffer answers for it without bound.
    let Ok(permit) = reads.try_acquire_owned() else {
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
            let deadline = Instant::now() + BLOCKS_SEND_DEADLINE;
            let chunks = futures::stream::unfold(
                (blocks.into_iter(), Some(permit)),
                move |(mut blocks, permit)| async move {
                    permit.as_ref()?;
                    if Instant::now() > deadline {
                        let late = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the reader took too long over its blocks",
                        );
                        return Some((Err(late), (blocks, None)));
                    }
                    let block = blocks.next()?;
                    Some((Ok(block), (blocks, permit)))
                },
            );
            (
                [(CONTENT_TYPE, "application/octet-stream")],
                Body::from_stream(chunks),
            )
                .into_response()
        }
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Bytes;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;
    use crate::{LedgerError, types::ChainPoint};

    /// A chain whose every answer to `/blocks` is 32 MiB: more than the sockets buffer.
    struct BigBlocks;

    impl Ledger for BigBlocks {
        fn head(&self) -> Result<ChainPoint, LedgerError> {
            Ok(ChainPoint {
                number: 4,
                hash: B256::ZERO,
            })
        }
        fn apply(&self, _: &[u8]) -> Result<ChainPoint, LedgerError> {
            self.head()
        }
        fn blocks(&self, _: u64, _: usize, _: usize) -> Result<Vec<Bytes>, LedgerError> {
            Ok(vec![Bytes::from(vec![0u8; 8 << 20]); 4])
        }
        fn build(&self) -> Result<Bytes, LedgerError> {
            Ok(Bytes::new())
        }
    }

    async fn get_blocks(addr: SocketAddr) -> TcpStream {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /blocks?from=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tcp
    }

    async fn status_line(tcp: &mut TcpStream) -> String {
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.unwrap();
        String::from_utf8_lossy(&head).into_owned()
    }

    #[tokio::test]
    async fn readers_that_never_take_their_blocks_hold_their_slots_not_more() {
        let member = Member {
            name: "n".into(),
            sync_url: String::new(),
            rpc_url: String::new(),
            priority: 1,
        };
        let (_stop, stop) = watch::channel(false);
        let addr = serve(
            Arc::new(BigBlocks),
            Address::ZERO,
            member,
            B256::ZERO,
            "127.0.0.1:0".parse().unwrap(),
            stop,
        )
        .await
        .unwrap();
        // Four readers take a slot each and read nothing past the status line.
        let mut stalled = Vec::new();
        for _ in 0..CONCURRENT_BLOCK_READS {
            let mut tcp = get_blocks(addr).await;
            assert_eq!(status_line(&mut tcp).await, "HTTP/1.1 200");
            stalled.push(tcp);
        }
        // Their answers are still being sent, so a fifth waits its turn.
        let mut fifth = get_blocks(addr).await;
        assert_eq!(status_line(&mut fifth).await, "HTTP/1.1 503");
        // One hangs up: its slot comes back.
        drop(stalled.pop());
        let started = Instant::now();
        loop {
            let mut again = get_blocks(addr).await;
            if status_line(&mut again).await == "HTTP/1.1 200" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the slot never came back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
