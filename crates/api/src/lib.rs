//! The OpenAI-compatible HTTP API over the node's models: `/v1/models`,
//! `/v1/chat/completions` (with `stream: true` as server-sent events), `/v1/completions`,
//! `/v1/embeddings`, plus `/health` and Prometheus `/metrics`.
//!
//! [`v1_router`] is the inference surface on its own, so the paid gateway can wrap it in its
//! own tower layers (authentication, metering, routing) without touching the handlers;
//! [`router`] adds the operational endpoints and the HTTP limits.

mod chat;
mod completions;
mod embeddings;
mod error;
mod generate;
mod json;
mod models;
mod params;
mod types;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_http::cors::{Any, CorsLayer};

pub use error::ApiError;
pub use models::{EmbeddingService, Models};

/// Largest request body (a long chat with a big context fits easily).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

async fn list_models(State(models): State<Arc<Models>>) -> Json<Value> {
    Json(json!({ "object": "list", "data": models.cards() }))
}

async fn get_model(
    State(models): State<Arc<Models>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    models
        .cards()
        .into_iter()
        .find(|card| card.id == id)
        .map(|card| Json(json!(card)))
        .ok_or_else(|| ApiError::model_not_found(&id, "served"))
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        ..ApiError::invalid(
            "Unknown path: this server serves /v1/models, /v1/chat/completions, /v1/completions and /v1/embeddings",
            None,
        )
    }
}

/// The inference endpoints under `/v1`.
pub fn v1_router(models: Arc<Models>) -> Router {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .with_state(models)
}

/// The whole API: `/v1`, `/health`, `/metrics` (from `registry`), CORS and body limits.
pub fn router(models: Arc<Models>, registry: Arc<Registry>) -> Router {
    let health = {
        let models = models.clone();
        move || async move {
            Json(
                json!({ "status": "ok", "models": models.cards().iter().map(|c| c.id.clone()).collect::<Vec<_>>() }),
            )
        }
    };
    let metrics = move || async move {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    };
    v1_router(models)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any),
        )
}

/// Serves `router` on `addr` until `shutdown` resolves; returns the bound address at once.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the inference API server failed");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests;
