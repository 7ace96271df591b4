//! `POST /v1/embeddings`: one unit vector per input string, as floats or base64 (little-endian
//! f32, what the `openai` SDKs ask for by default).

use std::sync::Arc;

use axum::{Json, extract::State};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use crate::{Models, error::ApiError, json::OpenAiJson, types::EmbeddingRequest};

/// OpenAI's limit on inputs per request.
const MAX_INPUTS: usize = 2048;

pub(crate) fn inputs(value: &Value) -> Result<Vec<String>, ApiError> {
    let bad = |message: &str| ApiError::invalid(message, Some("input"));
    let list = match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        Value::Array(items) if items.iter().all(|v| v.is_number() || v.is_array()) => {
            return Err(bad(
                "token-id inputs are not supported (they depend on OpenAI's tokenizer); send text",
            ));
        }
        _ => return Err(bad("`input` must be a string or a list of strings")),
    };
    if list.is_empty() {
        return Err(bad("`input` must not be empty"));
    }
    if list.len() > MAX_INPUTS {
        return Err(bad(&format!("at most {MAX_INPUTS} inputs per request")));
    }
    if let Some(i) = list.iter().position(String::is_empty) {
        return Err(ApiError::invalid(
            format!("input {i} is an empty string"),
            Some("input"),
        ));
    }
    Ok(list)
}

/// Whether the vectors are asked for as base64 (`encoding_format`).
pub(crate) fn base64_format(request: &EmbeddingRequest) -> Result<bool, ApiError> {
    match request.encoding_format.as_deref() {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            format!("encoding_format `{other}` is not one of float, base64"),
            Some("encoding_format"),
        )),
    }
}

pub async fn embeddings(
    State(models): State<Arc<Models>>,
    OpenAiJson(request): OpenAiJson<EmbeddingRequest>,
) -> Result<Json<Value>, ApiError> {
    let service = models.embedding(&request.model)?;
    let base64 = base64_format(&request)?;
    let dimensions = service.model().dimensions;
    if let Some(asked) = request.dimensions
        && asked != dimensions
    {
        return Err(ApiError::invalid(
            format!("this model's embeddings have {dimensions} dimensions, not {asked}"),
            Some("dimensions"),
        ));
    }
    let inputs = inputs(&request.input)?;
    let (vectors, tokens) = service.embed(inputs).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match base64 {
                true => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::String(STANDARD.encode(bytes))
                }
                false => json!(vector),
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}
