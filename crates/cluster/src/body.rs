//! Bounded message bodies on the node-to-node port, both ways: what a peer's answer may hold
//! before this node stops reading it, what each endpoint of this node's server reads once a
//! request's headers have passed, and how long a connection may wait on its peer.

/// Most bytes of a `GET /status` answer (a few hundred in practice).
pub const MAX_STATUS_BYTES: usize = 64 << 10;
/// Most bytes of a `GET /blocks` answer: the server stops adding blocks at
/// [`crate::fetch::MAX_BYTES_PER_REQUEST`] (8 MiB) but always sends the block that crosses it,
/// and one block of a 30M-gas chain holds at most about 7.5 MB of calldata.
pub const MAX_BLOCKS_BYTES: usize = 32 << 20;
/// Most bytes of a raft or admin reply (votes, acknowledgements, a status: a few KiB).
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// The sync port's connections: one that sends nothing for 11 minutes closes (hyper reads
/// while a handler runs, so this must outlast the longest: a forwarded `cluster add` or a
/// snapshot install, 10 minutes each), and a peer that takes nothing of an answer for 60 s (the
/// time a follower allows for a batch of blocks) loses it. Since a silent connection is held that
/// long, connections are capped: 64 per client (a validator keeps a few open to each peer, a
/// full node one), 1,024 in all, a newcomer admitted while some client holds more than its share.
pub const SYNC_LIMITS: aicoin_http::Limits = aicoin_http::Limits {
    timeouts: aicoin_http::Timeouts {
        read: std::time::Duration::from_secs(660),
        write: std::time::Duration::from_secs(60),
    },
    max_connections: 1024,
    max_per_client: 64,
};

/// Requests with bodies up to this size (declared by `Content-Length`) are read at once;
/// larger ones, or of undeclared size, [`MAX_LARGE_BODIES`] at a time.
pub const SMALL_BODY_BYTES: usize = 1 << 20;
/// Large request bodies read at once, before their signature can be checked.
pub const MAX_LARGE_BODIES: usize = 2;

/// Most bytes of a request to `endpoint` on the node-to-node port: entries and snapshots carry
/// blocks, the rest are small.
pub fn max_request_bytes(endpoint: &str) -> usize {
    match endpoint {
        "append" | "snapshot" => 256 << 20,
        _ => 1 << 20,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// The body of `response`, refused as soon as it is known to be over `max` bytes: by its
/// `Content-Length` before any is read, or once the bytes read pass it.
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};

    use super::*;

    /// A peer answering `/sized` with 2 MiB (Content-Length set), `/endless` with a chunked
    /// body that never ends, and `/small` with 1 KiB.
    async fn peer() -> String {
        let chunk = || axum::body::Bytes::from(vec![0u8; 64 << 10]);
        let app = Router::new()
            .route("/sized", get(|| async { vec![0u8; 2 << 20] }))
            .route("/small", get(|| async { vec![7u8; 1024] }))
            .route(
                "/endless",
                get(move || async move {
                    let chunks = futures::stream::repeat_with(move || {
                        Ok::<_, std::convert::Infallible>(chunk())
                    });
                    Body::from_stream(chunks)
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn answers_over_the_cap_are_refused_without_being_read_whole() {
        let url = peer().await;
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("{url}{path}")).send();
        for path in ["/sized", "/endless"] {
            let response = get(path).await.unwrap();
            assert!(
                matches!(
                    read_capped(response, 1 << 20).await,
                    Err(BodyError::TooLarge { max }) if max == 1 << 20
                ),
                "{path}"
            );
        }
        let small = read_capped(get("/small").await.unwrap(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(small, vec![7u8; 1024]);
        let sized = read_capped(get("/sized").await.unwrap(), 2 << 20)
            .await
            .unwrap();
        assert_eq!(sized.len(), 2 << 20);
    }
}
