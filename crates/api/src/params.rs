//! Arguments chat and completions share: sampling ranges, stop sequences, and the OpenAI
//! features this server refuses rather than ignores.

use aicoin_inference::SamplingParams;

use crate::{error::ApiError, types::OneOrMany};

/// OpenAI's limit on stop sequences.
const MAX_STOPS: usize = 4;

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
    Ok(stops)
}
