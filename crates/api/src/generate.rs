//! Turning a queued generation into the HTTP answer: one JSON body, or server-sent events (a
//! chunk per text piece, a final chunk with the finish reason, a usage chunk when asked, then
//! `data: [DONE]`). Dropping the answer (the client disconnected) drops the receiver, which
//! cancels the generation before its next step.

use std::{convert::Infallible, time::SystemTime};

use aicoin_inference::{Event as GenerationEvent, FinishReason, Usage as GenerationUsage};
use axum::{
    Json,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{error::ApiError, types::Usage};

/// Which API's shapes to answer in.
#[derive(Debug, Clone)]
pub enum Flavor {
    Chat,
    /// `echo` is the prompt text to put before the completion.
    Completion {
        echo: Option<String>,
    },
}

/// The fixed parts of every chunk of one answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub flavor: Flavor,
    pub id: String,
    pub model: String,
    pub created: u64,
    /// Each choice carries `token_ids` (vLLM's `return_token_ids`).
    pub token_ids: bool,
}

/// Runs `work` (template rendering, tokenizing: CPU-bound) off the async workers, which also
/// serve the node's RPC.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::server(format!("the request's preparation failed: {e}")))?
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `prefix-` and 24 random hex digits, as OpenAI's ids look.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:024x}", rand::random::<u128>() >> 32)
}

impl Answer {
    pub fn new(flavor: Flavor, model: &str, token_ids: bool) -> Self {
        let prefix = match flavor {
            Flavor::Chat => "chatcmpl",
            Flavor::Completion { .. } => "cmpl",
        };
        Self {
            flavor,
            id: new_id(prefix),
            model: model.to_string(),
            created: unix_now(),
            token_ids,
        }
    }

    /// `choice` with `ids` as its `token_ids`, when the request asked for them.
    fn with_ids(&self, mut choice: Value, ids: &mut Vec<u32>) -> Value {
        if self.token_ids
            && let Some(object) = choice.as_object_mut()
        {
            object.insert("token_ids".into(), json!(std::mem::take(ids)));
        }
        choice
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (&self.flavor, chunk) {
            (Flavor::Chat, false) => "chat.completion",
            (Flavor::Chat, true) => "chat.completion.chunk",
            (Flavor::Completion { .. }, _) => "text_completion",
        }
    }

    fn choice(&self, text: Option<&str>, finish: Option<FinishReason>, chunk: bool) -> Value {
        let finish_reason = finish.map(|f| f.as_str());
        match (&self.flavor, chunk) {
            (Flavor::Chat, false) => json!({
                "index": 0,
                "message": { "role": "assistant", "content": text.unwrap_or_default(), "refusal": null },
                "logprobs": null,
                "finish_reason": finish_reason,
            }),
            (Flavor::Chat, true) => {
                let delta = match text {
                    Some(text) => json!({ "content": text }),
                    None => json!({}),
                };
                json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason })
            }
            (Flavor::Completion { .. }, _) => json!({
                "index": 0,
                "text": text.unwrap_or_default(),
                "logprobs": null,
                "finish_reason": finish_reason,
            }),
        }
    }

    fn envelope(&self, choices: Vec<Value>, usage: Option<Usage>, chunk: bool) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
            "usage": usage,
        })
    }

    fn echo(&self) -> Option<&str> {
        match &self.flavor {
            Flavor::Completion { echo } => echo.as_deref(),
            Flavor::Chat => None,
        }
    }
}

fn usage(u: &GenerationUsage) -> Usage {
    Usage::new(u.prompt_tokens, u.completion_tokens)
}

/// Waits for the whole generation and answers with one body.
pub async fn collect(
    answer: Answer,
    mut events: UnboundedReceiver<GenerationEvent>,
    param: &str,
) -> Response {
    let mut text = answer.echo().unwrap_or_default().to_string();
    let mut ids = Vec::new();
    while let Some(event) = events.recv().await {
        match event {
            GenerationEvent::Started => {}
            GenerationEvent::Token(id) => ids.push(id),
            GenerationEvent::Text(piece) => text.push_str(&piece),
            GenerationEvent::Done(u) => {
                let choice = answer.choice(Some(&text), Some(u.finish_reason), false);
                let choice = answer.with_ids(choice, &mut ids);
                return Json(answer.envelope(vec![choice], Some(usage(&u)), false)).into_response();
            }
            GenerationEvent::Failed(e) => {
                return ApiError::from_inference(e, param).into_response();
            }
        }
    }
    ApiError::server("the generation ended without an answer").into_response()
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

/// Streams the generation as server-sent events.
pub fn stream(
    answer: Answer,
    events: UnboundedReceiver<GenerationEvent>,
    include_usage: bool,
) -> Response {
    let chunk_usage = move |u: Option<Usage>| if include_usage { u } else { None };
    let first: Vec<Value> = match &answer.flavor {
        // The first chat chunk names the role, as OpenAI's does.
        Flavor::Chat => {
            let mut head = answer.envelope(
                vec![json!({ "index": 0, "delta": { "role": "assistant", "content": "" }, "logprobs": null, "finish_reason": null })],
                None,
                true,
            );
            if !include_usage {
                strip_usage(&mut head);
            }
            vec![head]
        }
        Flavor::Completion { echo: Some(prompt) } => {
            let mut head =
                answer.envelope(vec![answer.choice(Some(prompt), None, true)], None, true);
            if !include_usage {
                strip_usage(&mut head);
            }
            vec![head]
        }
        Flavor::Completion { echo: None } => Vec::new(),
    };
    let head = stream::iter(first.into_iter().map(|v| Ok::<_, Infallible>(data(&v))));
    // Token ids wait for the chunk of the text they released (a piece held back for a
    // possible stop sequence comes later), the rest for the final chunk.
    let body = stream::unfold(
        Some((answer, events, Vec::new())),
        move |state| async move {
            let (answer, mut events, mut ids) = state?;
            loop {
                let event = events.recv().await;
                let mut out: Vec<Value> = Vec::new();
                let done = match event {
                    Some(GenerationEvent::Started) => continue,
                    Some(GenerationEvent::Token(id)) => {
                        ids.push(id);
                        continue;
                    }
                    Some(GenerationEvent::Text(piece)) => {
                        let choice = answer.choice(Some(&piece), None, true);
                        out.push(answer.envelope(
                            vec![answer.with_ids(choice, &mut ids)],
                            None,
                            true,
                        ));
                        false
                    }
                    Some(GenerationEvent::Done(u)) => {
                        let choice = answer.choice(None, Some(u.finish_reason), true);
                        out.push(answer.envelope(
                            vec![answer.with_ids(choice, &mut ids)],
                            None,
                            true,
                        ));
                        if let Some(u) = chunk_usage(Some(usage(&u))) {
                            out.push(answer.envelope(Vec::new(), Some(u), true));
                        }
                        true
                    }
                    Some(GenerationEvent::Failed(e)) => {
                        out.push(ApiError::from_inference(e, "messages").body());
                        true
                    }
                    None => {
                        out.push(ApiError::server("the generation ended without an answer").body());
                        true
                    }
                };
                if !include_usage {
                    out.iter_mut().for_each(strip_usage);
                }
                let mut events_out: Vec<Event> = out.iter().map(data).collect();
                if done {
                    events_out.push(Event::default().data("[DONE]"));
                    return Some((stream::iter(events_out), None));
                }
                return Some((stream::iter(events_out), Some((answer, events, ids))));
            }
        },
    )
    .flat_map(|events| events.map(Ok::<_, Infallible>));
    Sse::new(head.chain(body))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Without `stream_options.include_usage`, chunks carry no `usage` key at all.
fn strip_usage(chunk: &mut Value) {
    if let Some(object) = chunk.as_object_mut() {
        object.remove("usage");
    }
}
