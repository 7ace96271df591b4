//! Followers pass users' transactions to the other validators only over the signed transport,
//! never to a URL anyone could name. Here whoever answers at each validator's sync
//! address rewrites its public, unsigned `GET /status` to name an attacker's RPC; transfers sent
//! to the followers are still mined, and the attacker never sees one.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    agreed_leader, assert_all_receipted, one_cluster_at_a_time, pass_through, prepare, serve,
    start, transfers,
};
use crate::common::{NodeProcess, tempdir};

#[derive(Clone)]
struct Rewriter {
    upstream: String,
    attacker: String,
    http: reqwest::Client,
}

/// Passes everything on, but says the validator's RPC is the attacker's.
async fn rewrite_status(State(proxy): State<Rewriter>, request: Request) -> Response {
    if request.uri().path() != "/status" {
        return pass_through(&proxy.http, &proxy.upstream, request).await;
    }
    let url = format!("{}/status", proxy.upstream);
    let Ok(status) = proxy
        .http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    else {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    };
    let mut status: Value = match status.json().await {
        Ok(status) => status,
        Err(_) => return axum::http::StatusCode::BAD_GATEWAY.into_response(),
    };
    status["member"]["rpc_url"] = json!(proxy.attacker);
    axum::Json(status).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_only_to_the_leaders_own_rpc() {
    let _serial = one_cluster_at_a_time().await;
    let tmp = tempdir();
    let home = tmp.path();
    let seen = Arc::new(AtomicUsize::new(0));
    let attacker = serve(axum::Router::new().fallback({
        let seen = seen.clone();
        move || async move {
            seen.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({ "jsonrpc": "2.0", "id": 1, "result": "0x" }))
        }
    }))
    .await;
    let (_, mut slots) = prepare(home, 3, 3);
    for slot in &mut slots {
        let proxy = Rewriter {
            upstream: format!("http://127.0.0.1:{}", slot.sync_port),
            attacker: attacker.clone(),
            http: reqwest::Client::new(),
        };
        let url = serve(
            axum::Router::new()
                .fallback(rewrite_status)
                .with_state(proxy),
        )
        .await;
        slot.args.extend(["--advertise-sync-url".into(), url]);
    }
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for slot in &slots {
        nodes.push(start(home, slot).await);
    }
    assert_eq!(agreed_leader(&slots, &[0, 1, 2]).await, 0);
    let mut receipted = transfers(&nodes[1], 1, 3).await;
    receipted.extend(transfers(&nodes[2], 2, 3).await);
    for node in &nodes {
        assert_all_receipted(node, &receipted).await;
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a transaction went to the attacker"
    );
}
