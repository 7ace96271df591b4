//! JSON-RPC and HTTP behaviour every client relies on: the standard error codes for malformed
//! input, batch and body limits, CORS preflight and origins, gzip, the per-client rate limit,
//! the MetaMask page, Prometheus metrics, and answers before the first block.

use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};

use crate::common::*;

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let response = Client::new()
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Starts a POST that announces a `len`-byte body, sends only its first bytes, and returns the
/// response's status line.
fn announce_body(url: &str, len: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n{{\"jsonrpc\""
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).unwrap();
    status.trim_end().to_string()
}

fn call(method: &str, params: Value) -> String {
    json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string()
}

async fn error_code(url: &str, body: impl Into<reqwest::Body>) -> i64 {
    let (_, response) = post(url, body).await;
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error in {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_standard_codes() {
    let tmp = tempdir();
    // No block for an hour: everything below runs before the first block.
    let node = DevNode::spawn(&data_dir(&tmp), |c| {
        c.block_interval = std::time::Duration::from_secs(3600)
    })
    .await;
    let url = node.url.as_str();

    let (_, r) = post(url, call("eth_chainId", json!([]))).await;
    assert_eq!(r["result"], "0x83c");
    let (_, r) = post(url, call("eth_blockNumber", json!([]))).await;
    assert_eq!(r["result"], "0x0");

    assert_eq!(error_code(url, "{not json").await, -32700);
    assert_eq!(error_code(url, r#"{"jsonrpc":"2.0","id":1}"#).await, -32600);
    assert_eq!(error_code(url, "[]").await, -32600);
    assert_eq!(
        error_code(url, call("eth_noSuchMethod", json!([]))).await,
        -32601
    );
    for (method, params) in [
        ("eth_getBalance", json!([12, "latest"])),
        ("eth_getBalance", json!(["0x1234", "latest"])),
        (
            "eth_getBalance",
            json!(["0x0000000000000000000000000000000000000001", "latestt"]),
        ),
        ("eth_getBlockByNumber", json!(["0xzz", false])),
        ("eth_getBlockByNumber", json!(["-0x1", false])),
        (
            "eth_getBlockByNumber",
            json!(["0x1ffffffffffffffff", false]),
        ),
        ("eth_getBlockByNumber", json!([])),
        ("eth_feeHistory", json!(["0x1", "latest", [90, 10]])),
        ("eth_call", json!([{ "to": "0x00" }])),
        (
            "eth_getLogs",
            json!([{ "fromBlock": "0x5", "toBlock": "0x1" }]),
        ),
    ] {
        let code = error_code(url, call(method, params.clone())).await;
        assert_eq!(code, -32602, "{method} {params}");
    }

    // Batches: answered entry by entry, and capped.
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": [] }))
        .collect();
    let (_, r) = post(url, Value::from(batch).to_string()).await;
    assert_eq!(r.as_array().unwrap().len(), 3);
    let huge: Vec<Value> = (0..101)
        .map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": [] }))
        .collect();
    let (_, r) = post(url, Value::from(huge).to_string()).await;
    assert_eq!(r["error"]["code"], -32010, "{r}");

    // A 10 MB body is refused from its Content-Length, before it is read or parsed.
    assert_eq!(
        announce_body(url, 10 << 20),
        "HTTP/1.1 413 Payload Too Large"
    );

    // The node is still fine.
    let (_, r) = post(url, call("eth_chainId", json!([]))).await;
    assert_eq!(r["result"], "0x83c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_browsers_metamask_and_prometheus() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| c.metrics_port = Some(0)).await;
    let url = node.url.as_str();
    let client = Client::new();

    // CORS: a browser's preflight from any origin is allowed by default.
    let preflight = client
        .request(reqwest::Method::OPTIONS, url)
        .header(header::ORIGIN, "https://dapp.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "*"
    );

    // gzip for clients that ask, on large responses.
    let blocks: Vec<Value> = (0..40)
        .map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "eth_getBlockByNumber", "params": ["0x0", false] }))
        .collect();
    let response = client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Value::from(blocks).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");

    // The MetaMask page, with the spec's network parameters.
    for path in ["/", "/aicoin.html"] {
        let page = client.get(format!("{url}{path}")).send().await.unwrap();
        assert!(page.status().is_success());
        let html = page.text().await.unwrap();
        assert!(html.contains("Add AICoin to MetaMask"));
        assert!(html.contains(r#""chainId":"0x83C""#));
        assert!(html.contains(r#""chainName":"AICoinChain""#));
    }

    // Prometheus metrics on their own port.
    node.wait_until(|| async { node.block_number().await >= 1 })
        .await;
    let metrics_url = format!("http://{}/metrics", node.handle.metrics_addr().unwrap());
    let text = client
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "aicoin_chain_height ",
        "aicoin_txpool_pending 0",
        "aicoin_txpool_queued 0",
        "aicoin_block_build_seconds_count",
        r#"aicoin_rpc_calls_total{method="eth_blockNumber",outcome="ok"}"#,
        "aicoin_rpc_call_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "no {needle:?} in metrics:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_and_request_rates_can_be_limited() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| {
        c.rpc.cors = aicoin_rpc::CorsOrigins::List(vec!["https://app.example".into()]);
        c.rpc.rate_limit = std::num::NonZeroU32::new(5);
    })
    .await;
    let client = Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, &node.url)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    // 20 calls in one batch from one client against a limit of 5 per second: the excess is
    // refused with EIP-1474's "limit exceeded", not queued or dropped silently.
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": [] }))
        .collect();
    let (_, r) = post(&node.url, Value::from(batch).to_string()).await;
    let answers = r.as_array().unwrap();
    let limited = answers
        .iter()
        .filter(|a| a["error"]["code"] == -32005)
        .count();
    let served = answers.iter().filter(|a| a["result"] == "0x83c").count();
    assert_eq!(limited + served, 20, "{r}");
    assert!(limited >= 10, "only {limited} of 20 limited: {r}");
    assert!(served >= 1);
}

/// A batch of `n` eth_chainId calls with `X-Forwarded-For: forwarded`: how many were refused
/// with -32005.
async fn limited_of(url: &str, forwarded: &str, n: usize) -> usize {
    let batch: Vec<Value> = (0..n)
        .map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": [] }))
        .collect();
    let answers: Value = Client::new()
        .post(url)
        .header("x-forwarded-for", forwarded)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), n);
    answers
        .iter()
        .filter(|a| a["error"]["code"] == -32005)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate_limit() {
    let tmp = tempdir();
    let node = DevNode::spawn(&data_dir(&tmp), |c| {
        c.rpc.rate_limit = std::num::NonZeroU32::new(5);
        c.rpc.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // The proxy appends the client's address; what the client wrote before it proves nothing.
    assert!(limited_of(&node.url, "203.0.113.7", 20).await >= 10);
    assert_eq!(
        limited_of(&node.url, "203.0.113.7, 198.51.100.1", 5).await,
        0
    );
    assert!(limited_of(&node.url, "203.0.113.8, 203.0.113.7", 20).await >= 10);

    // Without the proxy trusted, the header is the client's own word and changes nothing:
    // every request is the peer's.
    let tmp = tempdir();
    let direct = DevNode::spawn(&data_dir(&tmp), |c| {
        c.rpc.rate_limit = std::num::NonZeroU32::new(5);
    })
    .await;
    assert!(limited_of(&direct.url, "203.0.113.7", 20).await >= 10);
    assert!(limited_of(&direct.url, "198.51.100.1", 20).await >= 10);
}
