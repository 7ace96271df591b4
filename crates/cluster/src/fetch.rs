//! Fetching blocks by height from other nodes' public sync endpoints (`GET /blocks`,
//! `GET /status`). Block data needs no authentication: every block is checked against its
//! validator seal and re-executed when imported.

use std::{sync::Arc, time::Duration};

use alloy_primitives::Bytes;
use serde::{Deserialize, Serialize};

use crate::{
    Ledger, LedgerError,
    body::{BodyError, MAX_BLOCKS_BYTES, MAX_STATUS_BYTES, read_capped},
    types::{ChainPoint, Member},
};

/// Most blocks one `GET /blocks` returns.
pub const MAX_BLOCKS_PER_REQUEST: usize = 512;
/// Most bytes of blocks one `GET /blocks` returns (at least one block is always sent).
pub const MAX_BYTES_PER_REQUEST: usize = 8 << 20;

/// How long a peer may take to describe itself: an unreachable one is given up on quickly.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a peer may take to send one batch of blocks (up to 8 MiB).
const BLOCKS_TIMEOUT: Duration = Duration::from_secs(60);

/// What `GET /status` tells about a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub address: alloy_primitives::Address,
    pub member: Member,
    pub head: ChainPoint,
    pub genesis: alloy_primitives::B256,
    /// The raft leader this node knows of (validators only).
    pub leader: Option<alloy_primitives::Address>,
    pub term: u64,
    /// This node's software version (absent from nodes before 0.7).
    #[serde(default)]
    pub version: String,
    /// A protocol upgrade governance scheduled that this node is older than.
    #[serde(default)]
    pub upgrade: Option<crate::PendingUpgrade>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent a malformed answer")]
    Malformed { url: String },
    #[error("{url} sent more than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("block {number} does not import: {source}")]
    Import { number: u64, source: LedgerError },
    #[error("no peer could serve blocks from {from}: {last}")]
    NoPeer { from: u64, last: String },
    #[error("reached block {number} but its hash is {got}, not the {expected} agreed on")]
    Diverged {
        number: u64,
        got: alloy_primitives::B256,
        expected: alloy_primitives::B256,
    },
}

/// An HTTP client for other nodes' sync endpoints.
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Self { http }
    }

    pub async fn status(&self, sync_url: &str) -> Result<NodeStatus, FetchError> {
        let (url, body) = self
            .get(sync_url, "status", STATUS_TIMEOUT, MAX_STATUS_BYTES)
            .await?;
        serde_json::from_slice(&body).map_err(|_| FetchError::Malformed { url })
    }

    /// Consecutive blocks from `from`, as many as the peer sends at once.
    pub async fn blocks(&self, sync_url: &str, from: u64) -> Result<Vec<Bytes>, FetchError> {
        let path = format!("blocks?from={from}");
        let (url, body) = self
            .get(sync_url, &path, BLOCKS_TIMEOUT, MAX_BLOCKS_BYTES)
            .await?;
        split_rlp_items(&body).ok_or(FetchError::Malformed { url })
    }

    /// The body of a successful `GET` of `path` at `sync_url` (at most `max` bytes), with the
    /// URL asked.
    async fn get(
        &self,
        sync_url: &str,
        path: &str,
        timeout: Duration,
        max: usize,
    ) -> Result<(String, Bytes), FetchError> {
        let url = format!("{}/{path}", sync_url.trim_end_matches('/'));
        let http = |source| FetchError::Http {
            url: url.clone(),
            source,
        };
        let response = self
            .http
            .get(&url)
            .timeout(timeout)
            .send()
            .await
            .map_err(http)?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                status: response.status().as_u16(),
                url,
            });
        }
        match read_capped(response, max).await {
            Ok(body) => Ok((url, Bytes::from(body))),
            Err(BodyError::TooLarge { max }) => Err(FetchError::TooLarge { url, max }),
            Err(BodyError::Http(source)) => Err(FetchError::Http { url, source }),
        }
    }

    /// Imports blocks from `peers` until the ledger's head is `target`.
    pub async fn sync_to(
        &self,
        ledger: &Arc<dyn Ledger>,
        peers: &[String],
        target: ChainPoint,
    ) -> Result<(), FetchError> {
        loop {
            let head = head(ledger).await?;
            if head.number >= target.number {
                return match head.number == target.number && head.hash != target.hash {
                    true => Err(FetchError::Diverged {
                        number: head.number,
                        got: head.hash,
                        expected: target.hash,
                    }),
                    false => Ok(()),
                };
            }
            let mut last = String::from("no peers");
            let mut progressed = false;
            for peer in peers {
                match self.blocks(peer, head.number + 1).await {
                    Ok(blocks) if !blocks.is_empty() => {
                        let take = (target.number - head.number) as usize;
                        import(
                            ledger,
                            blocks.into_iter().take(take).collect(),
                            head.number + 1,
                        )
                        .await?;
                        progressed = true;
                        break;
                    }
                    Ok(_) => last = format!("{peer} has no block {}", head.number + 1),
                    Err(e) => last = e.to_string(),
                }
            }
            if !progressed {
                return Err(FetchError::NoPeer {
                    from: head.number + 1,
                    last,
                });
            }
        }
    }
}

pub(crate) async fn head(ledger: &Arc<dyn Ledger>) -> Result<ChainPoint, FetchError> {
    let ledger = ledger.clone();
    tokio::task::spawn_blocking(move || ledger.head())
        .await
        .map_err(LedgerError::from)
        .and_then(|head| head)
        .map_err(|source| FetchError::Import { number: 0, source })
}

/// Imports `blocks` (numbered from `first`) in order, off the async workers.
pub(crate) async fn import(
    ledger: &Arc<dyn Ledger>,
    blocks: Vec<Bytes>,
    first: u64,
) -> Result<ChainPoint, FetchError> {
    let ledger = ledger.clone();
    tokio::task::spawn_blocking(move || {
        let mut last = None;
        for (i, block) in blocks.iter().enumerate() {
            let number = first + i as u64;
            last = Some(
                ledger
                    .apply(block)
                    .map_err(|source| FetchError::Import { number, source })?,
            );
        }
        last.ok_or(FetchError::NoPeer {
            from: first,
            last: "empty batch".into(),
        })
    })
    .await
    .map_err(|e| FetchError::Import {
        number: first,
        source: e.into(),
    })?
}

/// Splits a concatenation of RLP items (geth's block stream format) into the items.
pub fn split_rlp_items(mut bytes: &[u8]) -> Option<Vec<Bytes>> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let start = bytes;
        let header = alloy_rlp::Header::decode(&mut bytes).ok()?;
        let header_len = start.len() - bytes.len();
        let total = header_len.checked_add(header.payload_length)?;
        if total > start.len() {
            return None;
        }
        items.push(Bytes::copy_from_slice(&start[..total]));
        bytes = &start[total..];
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlp_streams_split_into_items() {
        let mut stream = Vec::new();
        alloy_rlp::encode_list::<u64, u64>(&[1, 2, 3], &mut stream);
        alloy_rlp::encode_list::<u64, u64>(&[], &mut stream);
        let items = split_rlp_items(&stream).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref(), &[0xc0]);
        assert!(split_rlp_items(&stream[..stream.len() - 2]).is_none());
    }
}
