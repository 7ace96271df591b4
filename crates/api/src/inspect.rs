//! What a paid gateway checks of an inference request before forwarding it: the same parsing
//! and the same model-independent checks the handlers make (so a malformed or unsupported
//! request is refused there, with the same error, and never forwarded), and what the request
//! will cost: its prompt, and the most tokens it may generate.

use aicoin_inference::{Message, SamplingParams};

use crate::{
    chat, completions, embeddings,
    error::ApiError,
    json::parse,
    params::{sampling, stops},
    types::{ChatCompletionRequest, CompletionRequest, EmbeddingRequest},
};

/// The inference endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
        }
    }
}

/// The prompt, as the model will tokenize it.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A conversation, rendered by the model's chat template.
    Chat(Vec<Message>),
    /// Text tokenized as it is.
    Text(String),
    /// Token ids, this many.
    Tokens(usize),
    /// Embedding inputs, each tokenized on its own.
    Inputs(Vec<String>),
}

impl Prompt {
    /// Messages or inputs in it (one for a text or token ids).
    pub fn pieces(&self) -> usize {
        match self {
            Self::Chat(messages) => messages.len(),
            Self::Inputs(inputs) => inputs.len(),
            Self::Text(_) | Self::Tokens(_) => 1,
        }
    }

    /// Bytes of text in it (token ids count one each).
    pub fn bytes(&self) -> usize {
        match self {
            Self::Chat(messages) => messages.iter().map(|m| m.content.len()).sum(),
            Self::Text(text) => text.len(),
            Self::Tokens(n) => *n,
            Self::Inputs(inputs) => inputs.iter().map(String::len).sum(),
        }
    }
}

/// A request that passed the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    pub model: String,
    pub stream: bool,
    pub prompt: Prompt,
    /// The most tokens it may generate: `max_tokens` (or `max_completion_tokens`) as given, 16
    /// for a completion that gives none (OpenAI's default), 0 for embeddings; `None` for a chat
    /// that gives none (until the context ends).
    pub max_tokens: Option<usize>,
}

fn check_generation(
    max_tokens: Option<usize>,
    params: SamplingParams,
    stop: Option<crate::types::OneOrMany<String>>,
) -> Result<(), ApiError> {
    sampling(params)?;
    stops(stop)?;
    if max_tokens == Some(0) {
        return Err(ApiError::invalid(
            "max_tokens must be at least 1",
            Some("max_tokens"),
        ));
    }
    Ok(())
}

/// Parses and checks `body` as `endpoint` reads it.
pub fn inspect(endpoint: Endpoint, body: &[u8]) -> Result<Inspected, ApiError> {
    match endpoint {
        Endpoint::Chat => {
            let request: ChatCompletionRequest = parse(body)?;
            chat::refuse(&request)?;
            let messages = chat::messages(&request)?;
            let max_tokens = request.max_completion_tokens.or(request.max_tokens);
            check_generation(
                max_tokens,
                sampling_of(
                    request.temperature,
                    request.top_p,
                    request.top_k,
                    request.repetition_penalty,
                    request.presence_penalty,
                    request.frequency_penalty,
                ),
                request.stop,
            )?;
            Ok(Inspected {
                model: request.model,
                stream: request.stream,
                prompt: Prompt::Chat(messages),
                max_tokens,
            })
        }
        Endpoint::Completions => {
            let request: CompletionRequest = parse(body)?;
            completions::refuse(&request)?;
            let prompt = match completions::prompt(&request.prompt)? {
                completions::Prompt::Text(text) => Prompt::Text(text),
                completions::Prompt::Tokens(ids) => Prompt::Tokens(ids.len()),
            };
            let max_tokens = request
                .max_tokens
                .unwrap_or(completions::DEFAULT_MAX_TOKENS);
            check_generation(
                Some(max_tokens),
                sampling_of(
                    request.temperature,
                    request.top_p,
                    request.top_k,
                    request.repetition_penalty,
                    request.presence_penalty,
                    request.frequency_penalty,
                ),
                request.stop,
            )?;
            Ok(Inspected {
                model: request.model,
                stream: request.stream,
                prompt,
                max_tokens: Some(max_tokens),
            })
        }
        Endpoint::Embeddings => {
            let request: EmbeddingRequest = parse(body)?;
            embeddings::base64_format(&request)?;
            let inputs = embeddings::inputs(&request.input)?;
            Ok(Inspected {
                model: request.model,
                stream: false,
                prompt: Prompt::Inputs(inputs),
                max_tokens: Some(0),
            })
        }
    }
}

fn sampling_of(
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    repetition_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
) -> SamplingParams {
    SamplingParams {
        temperature: temperature.unwrap_or(1.0),
        top_p,
        top_k,
        seed: None,
        repetition_penalty: repetition_penalty.unwrap_or(1.0),
        presence_penalty: presence_penalty.unwrap_or(0.0),
        frequency_penalty: frequency_penalty.unwrap_or(0.0),
        logit_bias: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_is_inspected_as_the_handler_reads_it() {
        let body = br#"{"model":"m","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"}],"stream":true}"#;
        let inspected = inspect(Endpoint::Chat, body).unwrap();
        assert_eq!(inspected.model, "m");
        assert!(inspected.stream);
        assert_eq!(inspected.max_tokens, None);
        let Prompt::Chat(messages) = &inspected.prompt else {
            panic!("not a chat: {:?}", inspected.prompt)
        };
        assert_eq!(messages[0].role, "system");
        assert_eq!(inspected.prompt.bytes(), 10);
    }

    #[test]
    fn bad_requests_are_refused_with_the_handlers_errors() {
        let cases: [(Endpoint, &[u8], Option<&str>); 6] = [
            (
                Endpoint::Chat,
                br#"{"model":"m","messages":[]}"#,
                Some("messages"),
            ),
            (
                Endpoint::Chat,
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":9}"#,
                Some("temperature"),
            ),
            (
                Endpoint::Chat,
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"bogus":1}"#,
                Some("bogus"),
            ),
            (
                Endpoint::Chat,
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                Some("max_tokens"),
            ),
            (
                Endpoint::Completions,
                br#"{"model":"m","prompt":["a","b"]}"#,
                Some("prompt"),
            ),
            (
                Endpoint::Embeddings,
                br#"{"model":"m","input":[]}"#,
                Some("input"),
            ),
        ];
        for (endpoint, body, param) in cases {
            let error = inspect(endpoint, body).unwrap_err();
            assert_eq!(error.status, 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(error.param.as_deref(), param, "{}", error.message);
        }
        assert_eq!(inspect(Endpoint::Chat, b"{").unwrap_err().status, 400);
    }

    #[test]
    fn completions_default_to_sixteen_tokens_and_embeddings_to_none() {
        let completion =
            inspect(Endpoint::Completions, br#"{"model":"m","prompt":[1,2,3]}"#).unwrap();
        assert_eq!(completion.max_tokens, Some(16));
        assert_eq!(completion.prompt, Prompt::Tokens(3));
        let embedding =
            inspect(Endpoint::Embeddings, br#"{"model":"e","input":["a","bc"]}"#).unwrap();
        assert_eq!(embedding.max_tokens, Some(0));
        assert_eq!(embedding.prompt.bytes(), 3);
    }
}
