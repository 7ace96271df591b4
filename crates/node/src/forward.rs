//! Transaction forwarding: a node that does not produce (a follower, a full node) sends every
//! transaction its pool accepts on to the node that does, over that node's public JSON-RPC. The
//! transaction also stays in this node's pool until a block includes it, and the whole pool is
//! sent again whenever the producer changes (a failover), so an acknowledged transaction is not
//! lost with a leader.

use std::{sync::Arc, time::Duration};

use aicoin_txpool::TxPool;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::B256;
use tokio::sync::{broadcast::error::RecvError, watch};

/// Where transactions go now: the producer's JSON-RPC URL, or `None` when this node produces
/// (or no producer is known).
pub type Target = watch::Receiver<Option<String>>;

pub async fn run(pool: Arc<TxPool>, mut target: Target, mut shutdown: watch::Receiver<bool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut arrivals = pool.subscribe();
    loop {
        tokio::select! {
            arrived = arrivals.recv() => match arrived {
                Ok(hash) => {
                    let url = target.borrow().clone();
                    if let Some(url) = url {
                        send(&http, &pool, &url, hash).await;
                    }
                }
                Err(RecvError::Lagged(_)) => resend_all(&http, &pool, &target).await,
                Err(RecvError::Closed) => return,
            },
            changed = target.changed() => {
                if changed.is_err() {
                    return;
                }
                resend_all(&http, &pool, &target).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn resend_all(http: &reqwest::Client, pool: &TxPool, target: &Target) {
    let Some(url) = target.borrow().clone() else {
        return;
    };
    let content = pool.content();
    let hashes: Vec<B256> = content
        .pending
        .values()
        .chain(content.queued.values())
        .flat_map(|by_nonce| by_nonce.values().map(|tx| tx.hash))
        .collect();
    if !hashes.is_empty() {
        tracing::info!(count = hashes.len(), %url, "forwarding the pool to the new producer");
    }
    for hash in hashes {
        send(http, pool, &url, hash).await;
    }
}

async fn send(http: &reqwest::Client, pool: &TxPool, url: &str, hash: B256) {
    let Some(tx) = pool.get(&hash) else {
        return;
    };
    let raw = alloy_primitives::hex::encode_prefixed(tx.tx.inner().encoded_2718());
    let request = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw],
    });
    match http.post(url).json(&request).send().await {
        Ok(response) => {
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            if let Some(error) = answer.get("error") {
                // "already known" and nonce races are expected when re-sending.
                tracing::debug!(%hash, %url, %error, "producer refused a forwarded transaction");
            }
        }
        Err(e) => tracing::warn!(%hash, %url, error = %e, "cannot forward a transaction"),
    }
}
