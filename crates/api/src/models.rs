//! The models a server serves, by id: text models each behind their scheduler, embedding models
//! each behind a small bounded queue of their own.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use aicoin_inference::{EmbeddingModel, InferenceMetrics, ModelKind, Scheduler, TextModel};
use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{ApiConfig, StartError, error::ApiError, generate::unix_now, types::ModelCard};

/// Embedding requests that may wait; more are refused with 429.
const MAX_EMBEDDING_WAITING: usize = 64;

/// Admission to one model: up to [`MAX_EMBEDDING_WAITING`] requests wait while one runs. Both
/// are permits, so a request whose client goes away gives its place back however far it got
/// (a counter decremented after the wait leaked a place per disconnect, and after 64 every
/// request was refused).
#[derive(Debug)]
struct Admission {
    places: Arc<Semaphore>,
    turn: Arc<Semaphore>,
}

/// A request's place and, once it holds it, its turn; dropping it frees both.
#[derive(Debug)]
struct Admitted {
    _place: OwnedSemaphorePermit,
    _turn: OwnedSemaphorePermit,
}

impl Admission {
    fn new(waiting: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(waiting + 1)),
            turn: Arc::new(Semaphore::new(1)),
        }
    }

    /// Waits for this request's turn, or refuses it at once when every place is taken.
    async fn admit(&self) -> Result<Admitted, ApiError> {
        let place = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                code: Some("rate_limit_exceeded"),
                retry_after: Some(Duration::from_secs(1)),
                ..ApiError::invalid("the embedding model is busy; retry shortly", None)
            })?;
        let turn = self
            .turn
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::server("the embedding model is shutting down"))?;
        Ok(Admitted {
            _place: place,
            _turn: turn,
        })
    }
}

/// One embedding model: requests run one at a time (each already uses every core).
#[derive(Debug)]
pub struct EmbeddingService {
    model: Arc<EmbeddingModel>,
    admission: Admission,
}

impl EmbeddingService {
    pub fn new(model: EmbeddingModel) -> Self {
        Self {
            model: Arc::new(model),
            admission: Admission::new(MAX_EMBEDDING_WAITING),
        }
    }

    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    pub async fn embed(&self, inputs: Vec<String>) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
        let admitted = self.admission.admit().await?;
        let model = self.model.clone();
        // The turn ends with the computation, not with the client's interest in it.
        tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            model.embed(&inputs)
        })
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
    /// Loads `config.models` (text models re-quantized as `config.weights` says, their context
    /// capped at `config.max_context`) and starts their schedulers. Models given explicitly
    /// must load; of those found by looking in the models directory, one that does not load is
    /// skipped with a warning.
    pub fn load(config: &ApiConfig, metrics: &InferenceMetrics) -> Result<Self, StartError> {
        let device = aicoin_inference::device(&config.device)?;
        let mut models = Self {
            created: unix_now(),
            ..Default::default()
        };
        for local in &config.models {
            if models.text.contains_key(&local.id) || models.embedding.contains_key(&local.id) {
                return Err(StartError::DuplicateId(local.id.clone()));
            }
            tracing::info!(model = %local.id, path = %local.path.display(), "loading model");
            let loaded = match local.kind {
                ModelKind::Text => TextModel::load(&local.path, &local.id, &device, config.weights)
                    .map(|mut m| {
                        if let Some(cap) = config.max_context {
                            m.context_length = m.context_length.min(cap);
                        }
                        let scheduler =
                            Scheduler::start(Arc::new(m), config.scheduler, metrics.clone());
                        models.text.insert(local.id.clone(), scheduler);
                    }),
                ModelKind::Embedding => EmbeddingModel::load_dir(&local.path, &local.id, &device)
                    .map(|m| {
                        models
                            .embedding
                            .insert(local.id.clone(), Arc::new(EmbeddingService::new(m)));
                    }),
            };
            match loaded {
                Ok(()) => {}
                Err(e) if !config.explicit => {
                    tracing::warn!(model = %local.id, error = %e, "skipping a model that does not load");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(models)
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.embedding.is_empty()
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

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn abandoned_waits_give_their_places_back() {
        let admission = Admission::new(2);
        let running = admission.admit().await.unwrap();
        // Far more clients than there are places give up while waiting for the turn.
        for _ in 0..100 {
            assert!(
                admission.admit().now_or_never().is_none(),
                "the turn is taken"
            );
        }
        // Two may still wait behind the running one; a third is refused at once.
        let mut waiting: Vec<_> = (0..2).map(|_| Box::pin(admission.admit())).collect();
        for wait in &mut waiting {
            assert!(wait.now_or_never().is_none(), "the turn is taken");
        }
        let refused = admission.admit().now_or_never().unwrap().unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        drop(running);
        for wait in waiting {
            drop(wait.await.unwrap());
        }
    }
}
