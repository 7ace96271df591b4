//! Request bodies as OpenAI's API reads them: malformed JSON, a wrong type or an unknown
//! argument is a 400 naming the field (`param`), never a bare framework error.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body deserialized into `T`, with OpenAI-shaped errors.
pub struct OpenAiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OpenAiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError {
                // 413 for a body over the limit.
                status: e.status(),
                ..ApiError::invalid(format!("The request body could not be read: {e}"), None)
            })?;
        parse(&bytes).map(OpenAiJson)
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(
                format!("We could not parse the JSON body of your request: {inner}"),
                None,
            );
        }
        let message = inner.to_string();
        // serde's "unknown field `x`, expected one of …": OpenAI's wording, naming the field.
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            return ApiError::invalid(
                format!("Unrecognized request argument supplied: {field}"),
                Some(field),
            );
        }
        let param = (path != ".").then_some(path.as_str());
        ApiError::invalid(format!("Invalid value for `{path}`: {message}"), param)
    })
}
