//! One challenge job against a provider: the signed, streamed chat request, timed from sending
//! to the first token and to the last, with the token ids the provider claims it generated.

use std::time::{Duration, Instant};

use alloy_signer_local::PrivateKeySigner;
use serde_json::Value;

use aicoin_api::signed;

use crate::jobs::Job;

/// A provider's answer to one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub token_ids: Vec<u32>,
    /// `stop` or `length`.
    pub finish_reason: String,
    /// From sending the request to the first token id.
    pub ttft: Duration,
    /// From the first token id to the last.
    pub decode: Duration,
}

impl Answer {
    /// Generated tokens per second: the decode rate after the first token (the whole answer's
    /// rate for a one-token answer).
    pub fn tokens_per_second(&self) -> f64 {
        let n = self.token_ids.len() as f64;
        if self.token_ids.len() >= 2 && !self.decode.is_zero() {
            (n - 1.0) / self.decode.as_secs_f64()
        } else {
            n / (self.ttft + self.decode).as_secs_f64().max(1e-3)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot sign the request: {0}")]
    Sign(#[from] alloy_signer::Error),
    #[error("no answer: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the provider reported an error: {0}")]
    Provider(String),
    #[error("the stream is malformed: {0}")]
    Malformed(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The provider a job goes to.
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub address: alloy_primitives::Address,
    pub api_url: &'a str,
}

/// Sends `job` for `model` to the provider `to`, signed with `key`, and reads the whole
/// streamed answer within `timeout`.
pub async fn run_job(
    http: &reqwest::Client,
    key: &PrivateKeySigner,
    to: To<'_>,
    model: &str,
    job: &Job,
    timeout: Duration,
) -> Result<Answer, JobError> {
    tokio::time::timeout(timeout, request(http, key, to, model, job))
        .await
        .map_err(|_| JobError::Timeout(timeout))?
}

async fn request(
    http: &reqwest::Client,
    key: &PrivateKeySigner,
    to: To<'_>,
    model: &str,
    job: &Job,
) -> Result<Answer, JobError> {
    let path = "/v1/chat/completions";
    let body =
        serde_json::to_vec(&job.body(model)).map_err(|e| JobError::Malformed(e.to_string()))?;
    let mut request = http
        .post(format!("{}{path}", to.api_url.trim_end_matches('/')))
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in signed::sign(key, to.address, "POST", path, &body)? {
        request = request.header(name, value);
    }
    let sent = Instant::now();
    let mut response = request.body(body).send().await?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        return Err(JobError::Status {
            status,
            body: body.chars().take(300).collect(),
        });
    }
    let mut buffer = Vec::new();
    let mut ids = Vec::new();
    let (mut first, mut last) = (None, None);
    let mut finish_reason = None;
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                let finish_reason = finish_reason
                    .ok_or_else(|| JobError::Malformed("no finish_reason before [DONE]".into()))?;
                let first = first.unwrap_or(sent);
                return Ok(Answer {
                    token_ids: ids,
                    finish_reason,
                    ttft: first - sent,
                    decode: last.unwrap_or(first) - first,
                });
            }
            let chunk: Value =
                serde_json::from_str(data).map_err(|e| JobError::Malformed(e.to_string()))?;
            if let Some(error) = chunk.get("error") {
                return Err(JobError::Provider(error["message"].to_string()));
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            if let Some(new) = choice["token_ids"].as_array()
                && !new.is_empty()
            {
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                for id in new {
                    let id = id
                        .as_u64()
                        .and_then(|id| u32::try_from(id).ok())
                        .ok_or_else(|| JobError::Malformed(format!("token id {id}")))?;
                    ids.push(id);
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish_reason = Some(reason.to_string());
            }
        }
    }
    Err(JobError::Malformed("the stream ended before [DONE]".into()))
}
