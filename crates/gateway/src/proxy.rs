//! Forwarding a metered request to a provider, signed with the gateway's key, and falling back
//! to the next provider while nothing has reached the client: a provider that cannot be
//! reached, answers a server error or is busy, or whose stream ends before its first token is
//! marked failed (for its circuit breaker) and the next one is tried. Once a token has been
//! streamed, the answer is that provider's; a stream cut after it ends the client's stream.
//!
//! Every answer carries `usage` (the gateway asks streams for it) and names its provider in
//! `x-aicoin-provider`; the usage settles the request's token reservation and counts to the
//! provider's served tokens for the epoch.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aicoin_api::signed;
use aicoin_api::{ApiError, inspect::Endpoint};
use alloy_signer_local::PrivateKeySigner;
use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::{
    chain::Upstream,
    quota::Reservation,
    route::{InFlight, Routes},
    usage::Served,
};

/// Header naming the provider that served an answer.
pub const PROVIDER_HEADER: &str = "x-aicoin-provider";
/// The most a provider may take to answer with headers, and again to its stream's first token:
/// a queue at a busy provider, not a dead one.
const FIRST_TOKEN_TIMEOUT: Duration = Duration::from_secs(120);
/// The most a stream may go silent after its first token.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The most a whole non-streamed answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest non-streamed answer read back.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// The largest error answer read back, and how long it may take.
const MAX_ERROR_BYTES: usize = 64 * 1024;
const ERROR_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest server-sent-event line taken from a provider.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Signs and sends requests to providers.
pub struct Forwarder {
    pub http: reqwest::Client,
    pub key: PrivateKeySigner,
    pub routes: Arc<Routes>,
    pub served: Arc<Served>,
}

/// A request ready to forward.
pub struct Outbound {
    pub endpoint: Endpoint,
    pub body: Bytes,
    pub stream: bool,
    pub providers: Vec<Upstream>,
    /// Its prompt's tokens, as counted at the gateway (used when a cut stream reports none).
    pub prompt_tokens: u64,
    pub reservation: Reservation,
    /// The epoch its tokens count to.
    pub epoch: u64,
}

/// Why one provider did not answer.
enum Failure {
    /// Try the next provider.
    Retry(String),
    /// The provider refused the request itself (a 4xx): the client's answer.
    Refused(Response),
}

impl Forwarder {
    /// Forwards `out` to the best provider, then the next, until one answers.
    pub async fn forward(&self, out: Outbound) -> Response {
        let mut tried = Vec::new();
        let mut reasons = Vec::new();
        let mut out = out;
        while let Some(flight) = self.routes.pick(&out.providers, &tried) {
            let provider = flight.upstream.address;
            tried.push(provider);
            match self.attempt(flight, out).await {
                Ok(response) => return response,
                Err((Failure::Refused(response), _)) => return response,
                Err((Failure::Retry(reason), back)) => {
                    tracing::info!(%provider, %reason, "provider failed; trying the next");
                    self.routes.failed(provider);
                    reasons.push(format!("{provider}: {reason}"));
                    out = back;
                }
            }
        }
        let message = match reasons.is_empty() {
            true => "every provider of this model is unavailable (circuit open); retry shortly"
                .to_string(),
            false => format!("no provider could answer: {}", reasons.join("; ")),
        };
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(Duration::from_secs(5)),
            ..ApiError::server(message)
        }
        .into_response()
    }

    async fn attempt(
        &self,
        flight: InFlight,
        out: Outbound,
    ) -> Result<Response, (Failure, Outbound)> {
        let upstream = flight.upstream.clone();
        let path = out.endpoint.path();
        let url = format!("{}{path}", upstream.api_url.trim_end_matches('/'));
        let to = match upstream.pipeline {
            true => crate::pipeline::ADDRESS,
            false => upstream.address,
        };
        let headers = match signed::sign(&self.key, to, "POST", path, &out.body) {
            Ok(headers) => headers,
            Err(e) => return Err((Failure::Retry(format!("cannot sign: {e}")), out)),
        };
        let mut request = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(out.body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let sent = Instant::now();
        let response = match tokio::time::timeout(FIRST_TOKEN_TIMEOUT, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err((Failure::Retry(format!("no answer: {e}")), out)),
            Err(_) => return Err((Failure::Retry("no answer in time".into()), out)),
        };
        let status = response.status();
        // The provider's own verdict on a request the gateway passed (e.g. a context it cannot
        // take) is the client's answer; anything else (a server error, busy, refusing the
        // gateway, not serving the model it registered) is the provider failing.
        let verdict = [
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY,
        ];
        if !status.is_success() && !verdict.contains(&status) {
            let body = read_limited(response, MAX_ERROR_BYTES, ERROR_TIMEOUT).await;
            let reason = format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            );
            return Err((Failure::Retry(reason), out));
        }
        if !status.is_success() {
            let body = read_limited(response, MAX_ERROR_BYTES, ERROR_TIMEOUT).await;
            let mut answer = (status, body).into_response();
            answer.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            name_provider(&mut answer, &upstream);
            return Err((Failure::Refused(answer), out));
        }
        match out.stream {
            false => self.whole(flight, response, out).await,
            true => self.streamed(flight, response, sent, out).await,
        }
    }

    async fn whole(
        &self,
        flight: InFlight,
        response: reqwest::Response,
        out: Outbound,
    ) -> Result<Response, (Failure, Outbound)> {
        let read = async {
            let mut response = response;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok::<_, reqwest::Error>(body)
        };
        let body = match tokio::time::timeout(ANSWER_TIMEOUT, read).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return Err((Failure::Retry(format!("answer cut: {e}")), out)),
            Err(_) => return Err((Failure::Retry("no whole answer in time".into()), out)),
        };
        let Some(used) = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|answer| total_tokens(&answer))
        else {
            return Err((Failure::Retry("an answer without usage".into()), out));
        };
        // A whole answer's time is not a time to first token: it counts as a success only.
        self.routes.answered(flight.upstream.address);
        // Never more than was reserved (the provider's own count cannot inflate its revenue).
        let used = out.reservation.settle(used);
        // A pipeline's shards have their work recorded for them.
        if !flight.upstream.pipeline {
            self.served.record(out.epoch, flight.upstream.address, used);
        }
        let mut answer = (StatusCode::OK, body).into_response();
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        name_provider(&mut answer, &flight.upstream);
        Ok(answer)
    }

    async fn streamed(
        &self,
        flight: InFlight,
        mut response: reqwest::Response,
        sent: Instant,
        out: Outbound,
    ) -> Result<Response, (Failure, Outbound)> {
        let mut lines = Lines::default();
        // Read until the first token (or the end): until then, a failure falls back.
        let first = async {
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        if lines.push(&chunk)? {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Err("the stream ended before its first token".to_string()),
                    Err(e) => return Err(format!("the stream broke before its first token: {e}")),
                }
            }
        };
        match tokio::time::timeout(FIRST_TOKEN_TIMEOUT, first).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err((Failure::Retry(reason), out)),
            Err(_) => return Err((Failure::Retry("no first token in time".into()), out)),
        }
        self.routes
            .succeeded(flight.upstream.address, sent.elapsed());
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let head = Bytes::from(std::mem::take(&mut lines.passed));
        let served = self.served.clone();
        let upstream = flight.upstream.clone();
        let named = flight.upstream.clone();
        tokio::spawn(async move {
            let _flight = flight;
            let mut client_gone = tx.send(Ok(head)).await.is_err();
            while !client_gone && !lines.done {
                let next = tokio::select! {
                    next = tokio::time::timeout(STREAM_IDLE_TIMEOUT, response.chunk()) => next,
                    () = tx.closed() => break,
                };
                let Ok(next) = next else {
                    tracing::info!(provider = %upstream.address, "a provider's stream went silent after its first token");
                    let _ = tx
                        .send(Err(std::io::Error::other("the provider went silent")))
                        .await;
                    break;
                };
                match next {
                    Ok(Some(chunk)) => {
                        if let Err(reason) = lines.push(&chunk) {
                            tracing::info!(provider = %upstream.address, %reason, "a provider's stream failed after its first token");
                        }
                        let passed = Bytes::from(std::mem::take(&mut lines.passed));
                        client_gone = tx.send(Ok(passed)).await.is_err();
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(provider = %upstream.address, error = %e, "a provider's stream was cut after its first token");
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        break;
                    }
                }
            }
            // A stream cut short reports no usage: count its prompt and the chunks it sent.
            let used = lines
                .usage
                .unwrap_or(out.prompt_tokens + lines.content_chunks);
            let used = out.reservation.settle(used);
            if !upstream.pipeline {
                served.record(out.epoch, upstream.address, used);
            }
        });
        let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let mut answer = Response::new(body);
        let headers = answer.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        name_provider(&mut answer, &named);
        Ok(answer)
    }
}

/// At most `limit` bytes of `response`'s body, within `timeout` (what arrived by then).
async fn read_limited(mut response: reqwest::Response, limit: usize, timeout: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
            if body.len() >= limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    body
}

fn name_provider(response: &mut Response, upstream: &Upstream) {
    let name = match upstream.pipeline {
        true => "pipeline".to_string(),
        false => upstream.address.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&name) {
        response.headers_mut().insert(PROVIDER_HEADER, value);
    }
}

/// `usage.total_tokens` of an answer or a chunk.
fn total_tokens(value: &Value) -> Option<u64> {
    value.get("usage")?.get("total_tokens")?.as_u64()
}

/// A server-sent event stream read line by line: what has been read is passed on whole lines
/// at a time, and each `data:` line is looked at for a first token, usage, an error or the end.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    /// Complete lines not yet passed on.
    passed: Vec<u8>,
    usage: Option<u64>,
    content_chunks: u64,
    done: bool,
}

impl Lines {
    /// Takes `chunk`; says whether a token (or the end) has been seen in it. An error event
    /// before any token is the provider failing.
    fn push(&mut self, chunk: &[u8]) -> Result<bool, String> {
        self.partial.extend_from_slice(chunk);
        if self.partial.len() > MAX_LINE_BYTES {
            return Err(format!("a stream line longer than {MAX_LINE_BYTES} bytes"));
        }
        let mut token = false;
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if let Some(data) = text.trim().strip_prefix("data:") {
                let data = data.trim();
                if data == "[DONE]" {
                    self.done = true;
                    token = true;
                } else if let Ok(event) = serde_json::from_str::<Value>(data) {
                    if let Some(error) = event.get("error")
                        && self.content_chunks == 0
                    {
                        return Err(format!("the provider's stream failed: {error}"));
                    }
                    if let Some(used) = total_tokens(&event) {
                        self.usage = Some(used);
                    }
                    if has_token(&event) {
                        self.content_chunks += 1;
                        token = true;
                    }
                }
            }
            self.passed.extend_from_slice(&line);
        }
        Ok(token)
    }
}

/// Whether a chunk carries generated text or a finish reason.
fn has_token(event: &Value) -> bool {
    let Some(choice) = event.get("choices").and_then(|c| c.get(0)) else {
        return false;
    };
    let text = choice
        .get("delta")
        .and_then(|d| d.get("content"))
        .or_else(|| choice.get("text"))
        .and_then(Value::as_str);
    text.is_some_and(|t| !t.is_empty()) || choice.get("finish_reason").is_some_and(|r| !r.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_committed_at_its_first_token_and_its_usage_is_read() {
        let mut lines = Lines::default();
        let role = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
        assert_eq!(lines.push(role), Ok(false));
        // Half a line waits for the rest.
        let token = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";
        assert_eq!(lines.push(&token[..20]), Ok(false));
        assert_eq!(lines.push(&token[20..]), Ok(true));
        assert_eq!(lines.passed.len(), role.len() + token.len());
        let usage = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\ndata: [DONE]\n\n";
        assert_eq!(lines.push(usage), Ok(true));
        assert_eq!(
            (lines.usage, lines.content_chunks, lines.done),
            (Some(6), 1, true)
        );
    }

    #[test]
    fn an_error_before_the_first_token_is_a_failure() {
        let mut lines = Lines::default();
        let error = b"data: {\"error\":{\"message\":\"out of memory\"}}\n\n";
        assert!(lines.push(error).is_err());
    }
}
