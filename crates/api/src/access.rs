//! Who may run inference: an [`Access`] policy checks every `POST` (each inference request),
//! its headers and its exact body, before a handler sees it. A compute provider uses one that
//! admits only requests signed by the network's validators and gateways; a node serving its
//! own models has none.

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{Method, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{ApiError, MAX_BODY_BYTES};

/// A policy over inference requests.
pub trait Access: Send + Sync + 'static {
    /// Lets the request through, or answers it with the error (401 for a caller not let in).
    fn check(&self, request: &Parts, body: &[u8]) -> Result<(), ApiError>;
}

/// The middleware: reads the body (within the API's body limit), asks `access`, then hands the
/// request on unchanged.
pub(crate) async fn guard(
    State(access): State<Arc<dyn Access>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return ApiError::invalid(format!("cannot read the request body: {e}"), None)
                .into_response();
        }
    };
    if let Err(e) = access.check(&parts, &bytes) {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
