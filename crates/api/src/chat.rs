//! `POST /v1/chat/completions`: the conversation rendered with the model's own chat template,
//! then generated like a completion, answered whole or streamed.

use std::sync::Arc;

use aicoin_inference::{GenerateParams, Message, SamplingParams};
use axum::{extract::State, response::Response};

use crate::{
    Models,
    error::ApiError,
    generate::{Answer, Flavor, collect, off_thread, stream},
    json::OpenAiJson,
    params::{
        check_prompt_size, check_prompt_tokens, logit_bias, refuse_unsupported, sampling, stops,
    },
    types::{ChatCompletionRequest, ChatMessage, Content},
};

fn text_of(message: &ChatMessage, index: usize) -> Result<String, ApiError> {
    let param = format!("messages[{index}].content");
    match &message.content {
        None => Ok(String::new()),
        Some(Content::Text(text)) => Ok(text.clone()),
        Some(Content::Parts(parts)) => parts
            .iter()
            .map(|part| match (part.kind.as_str(), &part.text) {
                ("text", Some(text)) => Ok(text.as_str()),
                (kind, _) => Err(ApiError::invalid(
                    format!("content parts of type `{kind}` are not supported; send text"),
                    Some(&param),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("")),
    }
}

/// The conversation as the template sees it; `developer` is OpenAI's newer name for `system`.
pub(crate) fn messages(request: &ChatCompletionRequest) -> Result<Vec<Message>, ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            "`messages` must contain at least one message",
            Some("messages"),
        ));
    }
    request
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                "tool" | "function" => {
                    return Err(ApiError::invalid(
                        "tool messages are not supported: this server runs no tools",
                        Some(&format!("messages[{i}].role")),
                    ));
                }
                other => {
                    return Err(ApiError::invalid(
                        format!(
                            "`{other}` is not a role: use system, developer, user or assistant"
                        ),
                        Some(&format!("messages[{i}].role")),
                    ));
                }
            };
            Ok(Message {
                role: role.to_string(),
                content: text_of(m, i)?,
            })
        })
        .collect()
}

/// Refuses the OpenAI arguments this server does not run.
pub(crate) fn refuse(request: &ChatCompletionRequest) -> Result<(), ApiError> {
    refuse_unsupported(&[
        ("n", request.n.is_some_and(|n| n != 1)),
        ("logprobs", request.logprobs == Some(true)),
        (
            "tools",
            request.tools.as_ref().is_some_and(|t| !t.is_null()),
        ),
        (
            "functions",
            request.functions.as_ref().is_some_and(|f| !f.is_null()),
        ),
        (
            "response_format",
            request
                .response_format
                .as_ref()
                .is_some_and(|f| f.get("type").and_then(|t| t.as_str()) != Some("text")),
        ),
    ])
}

pub async fn chat_completions(
    State(models): State<Arc<Models>>,
    OpenAiJson(request): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    refuse(&request)?;
    let scheduler = models.text(&request.model)?.clone();
    check_prompt_tokens(
        scheduler.model(),
        request.messages.len(),
        "messages",
        "messages",
    )?;
    let conversation = messages(&request)?;
    let bytes = conversation.iter().map(|m| m.content.len()).sum();
    check_prompt_size(scheduler.model(), bytes, "messages")?;
    let params = GenerateParams {
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        sampling: sampling(SamplingParams {
            temperature: request.temperature.unwrap_or(1.0),
            top_p: request.top_p,
            top_k: request.top_k,
            seed: request.seed,
            repetition_penalty: request.repetition_penalty.unwrap_or(1.0),
            presence_penalty: request.presence_penalty.unwrap_or(0.0),
            frequency_penalty: request.frequency_penalty.unwrap_or(0.0),
            logit_bias: logit_bias(request.logit_bias.as_ref(), scheduler.model())?,
        })?,
        stop: stops(request.stop)?,
        ignore_eos: request.ignore_eos.unwrap_or(false),
    };
    if params.max_tokens == Some(0) {
        return Err(ApiError::invalid(
            "max_tokens must be at least 1",
            Some("max_tokens"),
        ));
    }
    let events = off_thread(move || {
        let model = scheduler.model();
        let prompt = model
            .chat_prompt(&conversation)
            .map_err(|e| ApiError::from_inference(e, "messages"))?;
        let tokens = model
            .encode(&prompt)
            .map_err(|e| ApiError::from_inference(e, "messages"))?;
        scheduler
            .submit(tokens, params)
            .map_err(|e| ApiError::from_submit(e, "messages"))
    })
    .await?;
    let answer = Answer::new(
        Flavor::Chat,
        &request.model,
        request.return_token_ids.unwrap_or(false),
    );
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    Ok(match request.stream {
        true => stream(answer, events, include_usage),
        false => collect(answer, events, "messages").await,
    })
}
