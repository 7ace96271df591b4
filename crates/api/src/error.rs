//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the HTTP
//! status OpenAI uses for each kind, so the `openai` SDKs raise their usual exceptions.

use std::time::Duration;

use aicoin_inference::{InferenceError, SubmitError};
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// A request the API cannot take (400, `invalid_request_error`).
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn model_not_found(model: &str, kind: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: Some("model_not_found"),
            ..Self::invalid(
                format!(
                    "The model `{model}` does not exist or is not a {kind} model on this node (see GET /v1/models)"
                ),
                Some("model"),
            )
        }
    }

    /// A caller the server does not let in (401, `invalid_api_key`, as OpenAI answers a bad key).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: Some("invalid_api_key"),
            ..Self::invalid(message, None)
        }
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            ..Self::invalid(message, None)
        }
    }

    /// The request's `param` field carries the error, for errors about a specific input.
    pub fn from_inference(error: InferenceError, param: &str) -> Self {
        match error {
            InferenceError::ContextOverflow { .. } => {
                Self::invalid(error.to_string(), Some(param)).with_code("context_length_exceeded")
            }
            e if e.is_client_error() => Self::invalid(e.to_string(), Some(param)),
            e @ InferenceError::Unavailable(_) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: Some("model_unavailable"),
                retry_after: Some(std::time::Duration::from_secs(15)),
                ..Self::server(e.to_string())
            },
            e => {
                tracing::error!(error = %e, "inference failed");
                Self::server(format!("The model failed to run: {e}"))
            }
        }
    }

    pub fn from_submit(error: SubmitError, param: &str) -> Self {
        match error {
            SubmitError::Busy { retry_after, .. } => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                code: Some("rate_limit_exceeded"),
                retry_after: Some(retry_after),
                ..Self::invalid(error.to_string(), None)
            },
            SubmitError::Unavailable => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..Self::server(error.to_string())
            },
            SubmitError::Invalid(e) => Self::from_inference(e, param),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(after) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
