//! The API over a tiny random model: OpenAI's response shapes, streaming, and the error shape
//! and status of every kind of bad request.

use std::sync::Arc;

use aicoin_inference::{
    InferenceMetrics, LocalModel, ModelKind, SchedulerConfig, WeightFormat,
    testing::write_tiny_llama,
};
use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

struct Server {
    _dir: tempfile::TempDir,
    router: Router,
}

fn server(config: SchedulerConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama(&path, 11).unwrap();
    let mut registry = Registry::default();
    let metrics = InferenceMetrics::register(&mut registry);
    let local = LocalModel {
        id: "tiny".into(),
        kind: ModelKind::Text,
        path,
    };
    let config = ApiConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        models: vec![local],
        device: "cpu".into(),
        weights: WeightFormat::AsShipped,
        scheduler: config,
        max_context: None,
        explicit: true,
    };
    let models = Models::load(&config, &metrics).unwrap();
    Server {
        _dir: dir,
        router: router(Arc::new(models), Arc::new(registry), None),
    }
}

async fn send(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn post_json(server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, text) = send(server, "POST", path, Some(body.to_string())).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "tiny",
        "messages": [{ "role": "user", "content": "the cat" }],
        "temperature": 0,
        "max_tokens": 8,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The `data:` payloads of an SSE body.
fn events(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn models_are_listed_and_unknown_ones_are_404() {
    let server = server(SchedulerConfig::default());
    let (status, _, body) = send(&server, "GET", "/v1/models", None).await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], "tiny");
    assert_eq!(list["data"][0]["object"], "model");
    let (status, _, _) = send(&server, "GET", "/v1/models/tiny", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(&server, "GET", "/v1/models/gpt-4", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "model_not_found");
    let (status, error) = post_json(
        &server,
        "/v1/chat/completions",
        chat(json!({ "model": "gpt-4" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["param"], "model");
    let (status, _, _) = send(&server, "GET", "/v2/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chat_answers_whole_and_streamed_alike() {
    let server = server(SchedulerConfig::default());
    let (status, whole) = post_json(&server, "/v1/chat/completions", chat(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    assert!(whole["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &whole["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let usage = &whole["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 8);

    let (status, headers, body) = send(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(
            chat(json!({ "stream": true, "stream_options": { "include_usage": true } }))
                .to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    let data = events(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"])
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, choice["message"]["content"].as_str().unwrap());
    let finish = &chunks[chunks.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, &choice["finish_reason"]);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], whole["usage"]);

    // Without include_usage no chunk carries usage.
    let (_, _, body) = send(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(chat(json!({ "stream": true })).to_string()),
    )
    .await;
    let data = events(&body);
    assert!(
        data[..data.len() - 1]
            .iter()
            .all(|d| !d.contains("\"usage\"")),
        "{body}"
    );
}

#[tokio::test]
async fn completions_take_text_or_tokens_and_echo() {
    let server = server(SchedulerConfig::default());
    let (status, answer) = post_json(
        &server,
        "/v1/completions",
        json!({ "model": "tiny", "prompt": "the cat", "temperature": 0, "echo": true }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    assert!(
        answer["choices"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("the cat")
    );
    // OpenAI's default max_tokens for completions is 16.
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() <= 16);
    let (status, by_tokens) = post_json(
        &server,
        "/v1/completions",
        json!({ "model": "tiny", "prompt": [84, 72], "max_tokens": 3, "temperature": 0 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{by_tokens}");
    assert_eq!(by_tokens["usage"]["prompt_tokens"], 2);
    let (status, error) = post_json(
        &server,
        "/v1/completions",
        json!({ "model": "tiny", "prompt": [999999] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["param"], "prompt");
}

#[tokio::test]
async fn bad_requests_get_openai_errors_with_the_right_status() {
    let server = server(SchedulerConfig::default());
    let (status, _, body) = send(
        &server,
        "POST",
        "/v1/chat/completions",
        Some("{not json".into()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parse the JSON")
    );
    assert!(error["error"].as_object().unwrap().contains_key("param"));
    assert!(error["error"].as_object().unwrap().contains_key("code"));

    let cases = [
        (chat(json!({ "temperature": "hot" })), "temperature", None),
        (chat(json!({ "temperature": 3.5 })), "temperature", None),
        (chat(json!({ "top_p": 0 })), "top_p", None),
        (chat(json!({ "frobnicate": true })), "frobnicate", None),
        (chat(json!({ "messages": [] })), "messages", None),
        (
            chat(json!({ "messages": [{ "role": "wizard", "content": "x" }] })),
            "messages[0].role",
            None,
        ),
        (
            chat(json!({ "max_tokens": 100000 })),
            "messages",
            Some("context_length_exceeded"),
        ),
        (chat(json!({ "max_tokens": 0 })), "max_tokens", None),
        (chat(json!({ "n": 2 })), "n", None),
        (
            chat(json!({ "tools": [{ "type": "function" }] })),
            "tools",
            None,
        ),
        (
            chat(json!({ "stop": ["a", "b", "c", "d", "e"] })),
            "stop",
            None,
        ),
        (chat(json!({ "stop": ["x".repeat(257)] })), "stop", None),
        // More messages than tokens fit, each empty: refused before the template renders them.
        (
            chat(json!({ "messages": vec![json!({ "role": "user", "content": "" }); 100_000] })),
            "messages",
            Some("context_length_exceeded"),
        ),
        (
            chat(json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url" }] }] })),
            "messages[0].content",
            None,
        ),
        (
            json!({ "messages": [{ "role": "user", "content": "x" }] }),
            ".",
            None,
        ),
    ];
    for (body, param, code) in cases {
        let (status, error) = post_json(&server, "/v1/chat/completions", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        if param != "." {
            assert_eq!(error["error"]["param"], param, "{body}: {error}");
        }
        if let Some(code) = code {
            assert_eq!(error["error"]["code"], code, "{body}: {error}");
        }
    }
    // Token ids beyond the context are refused before they are decoded.
    let (status, error) = post_json(
        &server,
        "/v1/completions",
        json!({ "model": "tiny", "prompt": vec![1; 1_000_000] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["code"], "context_length_exceeded", "{error}");
    let (status, error) = post_json(
        &server,
        "/v1/embeddings",
        json!({ "model": "tiny", "input": "x" }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
}

#[tokio::test]
async fn a_busy_model_answers_429_with_retry_after() {
    let server = Arc::new(server(SchedulerConfig {
        max_queue: 1,
        max_active: 1,
    }));
    let long = chat(json!({ "max_tokens": 200, "messages": [{ "role": "user", "content": "x" }] }));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (server, body) = (server.clone(), long.to_string());
        tasks.push(tokio::spawn(async move {
            send(&server, "POST", "/v1/chat/completions", Some(body)).await
        }));
    }
    let mut refused = 0;
    for task in tasks {
        let (status, headers, body) = task.await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
            assert!(headers.contains_key(header::RETRY_AFTER));
            let error: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["error"]["code"], "rate_limit_exceeded");
        } else {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    assert!(refused >= 1, "no request was refused");
}

#[tokio::test]
async fn health_and_metrics() {
    let server = server(SchedulerConfig::default());
    let (status, _, body) = send(&server, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("tiny"));
    post_json(&server, "/v1/chat/completions", chat(json!({}))).await;
    let (_, _, metrics) = send(&server, "GET", "/metrics", None).await;
    for needle in [
        "aicoin_inference_completion_tokens_total{model=\"tiny\"}",
        "aicoin_inference_prompt_tokens_total{model=\"tiny\"}",
        "aicoin_inference_time_to_first_token_seconds_bucket",
        "aicoin_inference_inter_token_seconds_bucket",
        "aicoin_inference_queue_depth",
        "aicoin_inference_tokens_per_second",
        "aicoin_inference_requests_total{model=\"tiny\",outcome=\"completed\"}",
    ] {
        assert!(metrics.contains(needle), "no {needle} in\n{metrics}");
    }
}
