//! The models a server serves, by id: text models each behind their scheduler, embedding models
//! each behind a small bounded queue of their own.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aicoin_inference::{
    Device, EmbeddingModel, InferenceMetrics, LocalModel, ModelKind, Scheduler, SchedulerConfig,
    TextModel, WeightFormat,
};
use axum::http::StatusCode;
use tokio::sync::Semaphore;

use crate::{error::ApiError, generate::unix_now, types::ModelCard};

/// Embedding requests that may wait; more are refused with 429.
const MAX_EMBEDDING_WAITING: usize = 64;

/// One embedding model: requests run one at a time (each already uses every core).
#[derive(Debug)]
pub struct EmbeddingService {
    model: Arc<EmbeddingModel>,
    turn: Semaphore,
    waiting: AtomicUsize,
}

impl EmbeddingService {
    pub fn new(model: EmbeddingModel) -> Self {
        Self {
            model: Arc::new(model),
            turn: Semaphore::new(1),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    pub async fn embed(&self, inputs: Vec<String>) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_EMBEDDING_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                code: Some("rate_limit_exceeded"),
                retry_after: Some(Duration::from_secs(1)),
                ..ApiError::invalid("the embedding model is busy; retry shortly", None)
            });
        }
        let turn = self.turn.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _turn = turn.map_err(|_| ApiError::server("the embedding model is shutting down"))?;
        let model = self.model.clone();
        tokio::task::spawn_blocking(move || model.embed(&inputs))
            .await
            .map_err(|e| ApiError::server(format!("the embedding task failed: {e}")))?
            .map_err(|e| ApiError::from_inference(e, "input"))
    }
}

/// Everything served, by id.
#[derive(Debug, Default)]
pub struct Models {
    pub text: BTreeMap<String, Scheduler>,
    pub embedding: BTreeMap<String, Arc<EmbeddingService>>,
    created: u64,
}

impl Models {
    /// Loads `found` (text models re-quantized as `weights` says) and starts their schedulers.
    pub fn load(
        found: &[LocalModel],
        device: &Device,
        weights: WeightFormat,
        config: SchedulerConfig,
        metrics: &InferenceMetrics,
    ) -> aicoin_inference::Result<Self> {
        let mut models = Self {
            created: unix_now(),
            ..Default::default()
        };
        for local in found {
            tracing::info!(model = %local.id, path = %local.path.display(), "loading model");
            match local.kind {
                ModelKind::Text => {
                    let model = TextModel::load(&local.path, &local.id, device, weights)?;
                    let scheduler = Scheduler::start(Arc::new(model), config, metrics.clone());
                    models.text.insert(local.id.clone(), scheduler);
                }
                ModelKind::Embedding => {
                    let model = EmbeddingModel::load_dir(&local.path, &local.id, device)?;
                    models
                        .embedding
                        .insert(local.id.clone(), Arc::new(EmbeddingService::new(model)));
                }
            }
        }
        Ok(models)
    }

    pub fn cards(&self) -> Vec<ModelCard> {
        self.text
            .keys()
            .chain(self.embedding.keys())
            .map(|id| ModelCard {
                id: id.clone(),
                object: "model",
                created: self.created,
                owned_by: "aicoin",
            })
            .collect()
    }

    pub fn text(&self, id: &str) -> Result<&Scheduler, ApiError> {
        self.text
            .get(id)
            .ok_or_else(|| ApiError::model_not_found(id, "chat/completion"))
    }

    pub fn embedding(&self, id: &str) -> Result<&Arc<EmbeddingService>, ApiError> {
        self.embedding
            .get(id)
            .ok_or_else(|| ApiError::model_not_found(id, "embedding"))
    }
}
