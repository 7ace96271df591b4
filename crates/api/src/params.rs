//! Arguments chat and completions share: sampling ranges, stop sequences, and the OpenAI
//! features this server refuses rather than ignores.

use aicoin_inference::{SamplingParams, TextModel};
use serde_json::Value;

use crate::{error::ApiError, types::OneOrMany};

/// OpenAI's limit on stop sequences.
const MAX_STOPS: usize = 4;

/// Longest stop sequence, in bytes: each is searched for in the text after every token.
const MAX_STOP_BYTES: usize = 256;

/// Most `logit_bias` entries.
const MAX_LOGIT_BIAS: usize = 1024;

/// More bytes per token than any real text takes: a prompt longer than this many bytes per
/// token of context cannot fit, and is refused before it costs a tokenizer pass.
const MAX_BYTES_PER_TOKEN: usize = 32;

/// Refuses a prompt of `bytes` bytes that cannot fit `model`'s context, before tokenizing it.
pub fn check_prompt_size(model: &TextModel, bytes: usize, param: &str) -> Result<(), ApiError> {
    if bytes > model.context_length.saturating_mul(MAX_BYTES_PER_TOKEN) {
        return Err(too_long(model, format!("{bytes} bytes"), param));
    }
    Ok(())
}

/// Refuses a prompt of at least `tokens` tokens that cannot fit `model`'s context: token ids
/// before they are decoded, a conversation of more messages than tokens fit (every message
/// takes at least one) before it is rendered.
pub fn check_prompt_tokens(
    model: &TextModel,
    tokens: usize,
    what: &str,
    param: &str,
) -> Result<(), ApiError> {
    if tokens > model.context_length {
        return Err(too_long(model, format!("{tokens} {what}"), param));
    }
    Ok(())
}

fn too_long(model: &TextModel, size: String, param: &str) -> ApiError {
    ApiError::invalid(
        format!(
            "the prompt is {size}, more than fits in this model's context of {} tokens",
            model.context_length
        ),
        Some(param),
    )
    .with_code("context_length_exceeded")
}

/// OpenAI's `logit_bias`: `{"token id": bias}`, each id in `model`'s vocabulary.
pub fn logit_bias(value: Option<&Value>, model: &TextModel) -> Result<Vec<(u32, f32)>, ApiError> {
    let bad = |message: String| ApiError::invalid(message, Some("logit_bias"));
    let entries = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(entries)) => entries,
        Some(_) => return Err(bad("`logit_bias` must map token ids to numbers".into())),
    };
    if entries.len() > MAX_LOGIT_BIAS {
        return Err(bad(format!("at most {MAX_LOGIT_BIAS} logit_bias entries")));
    }
    let vocabulary = model.tokenizer().get_vocab_size(true);
    entries
        .iter()
        .map(|(token, bias)| {
            let id = token
                .parse::<u32>()
                .ok()
                .filter(|&id| (id as usize) < vocabulary)
                .ok_or_else(|| {
                    bad(format!(
                        "logit_bias key {token:?} is not a token id of this model (0..{vocabulary})"
                    ))
                })?;
            let bias = bias
                .as_f64()
                .ok_or_else(|| bad(format!("logit_bias for token {token} is not a number")))?;
            Ok((id, bias as f32))
        })
        .collect()
}

/// Refuses each named argument whose condition holds.
pub fn refuse_unsupported(checks: &[(&str, bool)]) -> Result<(), ApiError> {
    match checks.iter().find(|(_, used)| *used) {
        Some((name, _)) => Err(ApiError::invalid(
            format!("`{name}` is not supported by this server"),
            Some(name),
        )),
        None => Ok(()),
    }
}

/// Checks the ranges, naming the argument that is out of range.
pub fn sampling(params: SamplingParams) -> Result<SamplingParams, ApiError> {
    params.validate().map_err(|e| {
        let message = e.to_string();
        let param = message
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        ApiError::invalid(message, Some(&param))
    })?;
    Ok(params)
}

pub fn stops(stop: Option<OneOrMany<String>>) -> Result<Vec<String>, ApiError> {
    let stops = stop.map(OneOrMany::into_vec).unwrap_or_default();
    if stops.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            format!("at most {MAX_STOPS} stop sequences, got {}", stops.len()),
            Some("stop"),
        ));
    }
    if let Some(long) = stops.iter().find(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(
            format!(
                "stop sequences are at most {MAX_STOP_BYTES} bytes; one is {}",
                long.len()
            ),
            Some("stop"),
        ));
    }
    Ok(stops)
}
