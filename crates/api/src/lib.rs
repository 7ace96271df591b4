//! The OpenAI-compatible HTTP API over the node's models: `/v1/models`,
//! `/v1/chat/completions` (with `stream: true` as server-sent events), `/v1/completions`,
//! `/v1/embeddings`, plus `/health` and Prometheus `/metrics`.
//!
//! [`v1_router`] is the inference surface on its own, so the paid gateway can wrap it in its
//! own tower layers (authentication, metering, routing) without touching the handlers;
//! [`router`] adds the operational endpoints and the HTTP limits.
//!
//! [`signed`] is the access policy a provider serves behind: requests signed by a node key, let in
//! unpaid only for the network's validators and gateways.

mod access;
mod chat;
mod completions;
mod embeddings;
mod error;
mod generate;
pub mod inspect;
mod json;
mod models;
mod params;
pub mod signed;
mod types;

use std::{net::SocketAddr, sync::Arc};

use aicoin_inference::{
    InferenceError, InferenceMetrics, LocalModel, SchedulerConfig, WeightFormat,
};

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

pub use access::Access;
pub use error::ApiError;
pub use models::{EmbeddingService, Models};

/// Largest request body (a long chat with a big context fits easily).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long shutdown waits for open requests.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        ..ApiError::invalid("This path does not take this HTTP method", None)
    }
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

/// The whole API: `/v1`, `/health`, `/metrics` (from `registry`), CORS and body limits; with
/// `access`, every `POST` (every inference request) must pass it first.
pub fn router(
    models: Arc<Models>,
    registry: Arc<Registry>,
    access: Option<Arc<dyn Access>>,
) -> Router {
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
    let mut v1 = v1_router(models);
    if let Some(access) = access {
        v1 = v1.layer(axum::middleware::from_fn_with_state(access, access::guard));
    }
    v1.route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any),
        )
}

/// What an API server serves, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Port 0 picks a free one.
    pub addr: SocketAddr,
    pub models: Vec<LocalModel>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    pub weights: WeightFormat,
    pub scheduler: SchedulerConfig,
    /// Longest context served (prompt and answer), below a model's own where it is larger:
    /// each active sequence's KV cache grows to it.
    pub max_context: Option<usize>,
    /// The models were named by the operator (each must load), rather than found in the models
    /// directory (one that does not load is skipped).
    pub explicit: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot serve the inference API on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] InferenceError),
    #[error("loading the models crashed: {0}")]
    Crashed(String),
    #[error("two models are named {0:?}; serve them from paths with different names")]
    DuplicateId(String),
    #[error("none of the models loaded")]
    NothingLoaded,
}

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    models: Arc<Models>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`, the base URL clients add `/v1` to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn models(&self) -> &Arc<Models> {
        &self.models
    }

    /// Waits until the server has stopped (after the shutdown future given to [`start`]),
    /// giving open requests a few seconds to finish; streams still open then are cut (which
    /// cancels their generation).
    pub async fn stopped(mut self) {
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Binds `config.addr` (so a taken port fails before minutes of loading), loads the models,
/// and serves [`router`] (behind `access`, when given) and `beside` (routes of their own, such
/// as a provider's pipeline shards; with them, no model need load) until `shutdown` resolves.
/// `metrics` must be registered in `registry`, which `/metrics` renders.
pub async fn start(
    config: ApiConfig,
    metrics: InferenceMetrics,
    registry: Arc<Registry>,
    access: Option<Arc<dyn Access>>,
    beside: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ApiServer, StartError> {
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.addr,
        source,
    })?;
    let models = tokio::task::spawn_blocking(move || Models::load(&config, &metrics))
        .await
        .map_err(|e| StartError::Crashed(e.to_string()))??;
    if models.is_empty() && beside.is_none() {
        return Err(StartError::NothingLoaded);
    }
    let models = Arc::new(models);
    let mut app = router(models.clone(), registry, access);
    if let Some(beside) = beside {
        app = app.merge(beside);
    }
    let task = aicoin_http::serve("inference API", listener, app, shutdown);
    tracing::info!(%addr, models = ?models.cards().iter().map(|c| &c.id).collect::<Vec<_>>(), "inference API serving");
    Ok(ApiServer { addr, models, task })
}

#[cfg(test)]
mod tests;
