//! `POST /v1/completions`: plain text (or token ids) continued, with `echo`.

use std::sync::Arc;

use aicoin_inference::{GenerateParams, SamplingParams};
use axum::{extract::State, response::Response};
use serde_json::Value;

use crate::{
    Models,
    error::ApiError,
    generate::{Answer, Flavor, collect, off_thread, stream},
    json::OpenAiJson,
    params::{
        check_prompt_size, check_prompt_tokens, logit_bias, refuse_unsupported, sampling, stops,
    },
    types::CompletionRequest,
};

/// OpenAI's default for completions.
pub(crate) const DEFAULT_MAX_TOKENS: usize = 16;

/// The one prompt, as text or as token ids.
pub(crate) enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

pub(crate) fn prompt(value: &Value) -> Result<Prompt, ApiError> {
    let bad = |message: &str| ApiError::invalid(message, Some("prompt"));
    let tokens = |items: &[Value]| -> Option<Vec<u32>> {
        items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect()
    };
    match value {
        Value::String(text) => Ok(Prompt::Text(text.clone())),
        Value::Array(items) if items.len() == 1 && items[0].is_string() => Ok(Prompt::Text(
            items[0].as_str().unwrap_or_default().to_string(),
        )),
        Value::Array(items) if items.len() == 1 && items[0].is_array() => {
            let inner = items[0].as_array().map(Vec::as_slice).unwrap_or_default();
            tokens(inner)
                .map(Prompt::Tokens)
                .ok_or_else(|| bad("token ids must be whole numbers"))
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number) => {
            tokens(items)
                .map(Prompt::Tokens)
                .ok_or_else(|| bad("token ids must be whole numbers"))
        }
        Value::Array(items) if items.len() > 1 => Err(bad(
            "one prompt per request: batches of prompts are not supported",
        )),
        _ => Err(bad(
            "`prompt` must be a string, a list of one string, or a list of token ids",
        )),
    }
}

/// Refuses the OpenAI arguments this server does not run.
pub(crate) fn refuse(request: &CompletionRequest) -> Result<(), ApiError> {
    refuse_unsupported(&[
        ("n", request.n.is_some_and(|n| n != 1)),
        ("best_of", request.best_of.is_some_and(|n| n != 1)),
        ("logprobs", request.logprobs.is_some()),
        ("suffix", request.suffix.is_some()),
    ])
}

pub async fn completions(
    State(models): State<Arc<Models>>,
    OpenAiJson(request): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    refuse(&request)?;
    let scheduler = models.text(&request.model)?.clone();
    let prompt = prompt(&request.prompt)?;
    let model = scheduler.model();
    match &prompt {
        Prompt::Text(text) => check_prompt_size(model, text.len(), "prompt")?,
        Prompt::Tokens(tokens) => check_prompt_tokens(model, tokens.len(), "tokens", "prompt")?,
    }
    let params = GenerateParams {
        max_tokens: Some(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        sampling: sampling(SamplingParams {
            temperature: request.temperature.unwrap_or(1.0),
            top_p: request.top_p,
            top_k: request.top_k,
            seed: request.seed,
            repetition_penalty: request.repetition_penalty.unwrap_or(1.0),
            presence_penalty: request.presence_penalty.unwrap_or(0.0),
            frequency_penalty: request.frequency_penalty.unwrap_or(0.0),
            logit_bias: logit_bias(request.logit_bias.as_ref(), model)?,
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
    let echo = request.echo.unwrap_or(false);
    let (events, text) = off_thread(move || {
        let model = scheduler.model();
        let (tokens, text) = match prompt {
            Prompt::Text(text) => {
                let tokens = model
                    .encode(&text)
                    .map_err(|e| ApiError::from_inference(e, "prompt"))?;
                (tokens, Some(text))
            }
            Prompt::Tokens(tokens) => {
                let vocabulary = model.tokenizer().get_vocab_size(true) as u32;
                if let Some(bad) = tokens.iter().find(|&&t| t >= vocabulary) {
                    return Err(ApiError::invalid(
                        format!("token id {bad} is outside the model's vocabulary of {vocabulary}"),
                        Some("prompt"),
                    ));
                }
                // Decoded only to be echoed.
                let text = echo
                    .then(|| model.tokenizer().decode(&tokens, false).ok())
                    .flatten();
                (tokens, text)
            }
        };
        let events = scheduler
            .submit(tokens, params)
            .map_err(|e| ApiError::from_submit(e, "prompt"))?;
        Ok((events, text))
    })
    .await?;
    let echo = text.filter(|_| echo);
    let answer = Answer::new(
        Flavor::Completion { echo },
        &request.model,
        request.return_token_ids.unwrap_or(false),
    );
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    Ok(match request.stream {
        true => stream(answer, events, include_usage),
        false => collect(answer, events, "prompt").await,
    })
}
