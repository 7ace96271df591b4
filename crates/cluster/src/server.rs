//! The server half of the node-to-node transport, on `--sync-port`: raft's RPCs, transactions
//! other validators admitted (to hold before they acknowledge them) and forwarded admin
//! requests (signed, from validators only; every refusal is logged), beside the public,
//! read-only endpoints of [`crate::public`]. A request's headers are checked before its body is
//! read, and each endpoint reads at most its own limit.

use std::{net::SocketAddr, sync::Arc};

use alloy_primitives::Bytes;
use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header::CONTENT_LENGTH},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::watch;

use crate::{
    Hold, Shared,
    admin::{self, AdminRequest},
    body::{SMALL_BODY_BYTES, SYNC_LIMITS, max_request_bytes},
    public,
};

pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let source = public::Source {
        ledger: shared.ledger.clone(),
        address: shared.auth.address(),
        me: shared.me.clone(),
        genesis: shared.auth.chain(),
        raft: Some(shared.raft.clone()),
    };
    let app = Router::new()
        .route("/raft/{endpoint}", post(raft_rpc))
        // Each endpoint reads its body itself, within its own limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
        .merge(public::router(source));
    aicoin_http::listen_with_limits("node-to-node", addr, app, SYNC_LIMITS, shutdown).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

async fn raft_rpc(
    State(shared): State<Arc<Shared>>,
    Path(endpoint): Path<String>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A stranger's body is never read: the headers must claim a validator first.
    if let Err(e) = shared.auth.precheck_request(&headers) {
        shared.rejections.warn(remote, &endpoint, &e);
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let max = max_request_bytes(&endpoint);
    // The headers prove nothing yet (the signature covers the body), so large bodies are read
    // a few at a time: whoever forges headers cannot make the node buffer more than that.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let _large = match declared.is_some_and(|n| n <= SMALL_BODY_BYTES) {
        true => None,
        false => match shared.large_bodies.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy reading other large messages; retry",
                );
            }
        },
    };
    let body = match axum::body::to_bytes(body, max).await {
        Ok(body) => body,
        Err(e) => {
            shared.rejections.warn(remote, &endpoint, &e);
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a {endpoint} message is at most {max} bytes: {e}"),
            );
        }
    };
    let request = match shared.auth.check_request(&headers, &endpoint, &body) {
        Ok(request) => request,
        Err(e) => {
            shared.rejections.warn(remote, &endpoint, &e);
            return error(StatusCode::UNAUTHORIZED, e.to_string());
        }
    };
    let raft = &shared.raft;
    let reply = match endpoint.as_str() {
        "append" => answer(&body, |r| raft.append_entries(r)).await,
        "vote" => answer(&body, |r| raft.vote(r)).await,
        "snapshot" => answer(&body, |r| raft.install_snapshot(r)).await,
        "admin" => answer(&body, |r: AdminRequest| admin::execute(&shared, r, true)).await,
        "txs" => answer(&body, |raws: Vec<Bytes>| hold(&shared, raws)).await,
        _ => Err(error(
            StatusCode::NOT_FOUND,
            format!("no endpoint {endpoint}"),
        )),
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    let signed = match shared.auth.sign_response(&request, &endpoint, &reply) {
        Ok(signed) => signed,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in signed {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    (StatusCode::OK, headers, reply).into_response()
}

/// Pools what another validator admitted, off the async workers (each transaction's signature
/// is recovered and its sender's account read).
async fn hold(shared: &Arc<Shared>, raws: Vec<Bytes>) -> Vec<Hold> {
    let ledger = shared.ledger.clone();
    let count = raws.len();
    tokio::task::spawn_blocking(move || ledger.hold(&raws))
        .await
        .unwrap_or_else(|e| vec![Hold::Refused(format!("pooling failed: {e}")); count])
}

/// Decodes the request, runs it, and encodes what it returned.
async fn answer<Req, Resp, F>(body: &[u8], run: impl FnOnce(Req) -> F) -> Result<Vec<u8>, Response>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: Future<Output = Resp>,
{
    let request = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed message: {e}")))?;
    serde_json::to_vec(&run(request).await)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
