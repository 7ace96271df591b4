//! Models no single provider serves, run by this gateway as pipelines of the registry's
//! shards. For each local GGUF model of the llama family the gateway loads its embedding and
//! head only ([`TextModel::load_split`]) and chains the shards for the layers with an
//! [`aicoin_shard::Coordinator`], which replaces a dying shard mid-generation.
//!
//! The split models are served by the OpenAI handlers of [`aicoin_api`] on a loopback port
//! that admits only requests this gateway signed (for [`ADDRESS`]), and that port is one more
//! upstream of the model ([`Pipelines::upstream`], under an address of the model's own, so
//! each model has its own circuit breaker): metering, routing, streaming and usage go the way
//! they go for a provider. What each shard provider earns is its work, layer-tokens
//! (tokens × layers run), in whole tokens of the model: [`Pipelines::record_work`].

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use aicoin_api::signed::SignedAccess;
use aicoin_api::{Models, router};
use aicoin_inference::{
    InferenceMetrics, LocalModel, ModelKind, Scheduler, SchedulerConfig, TextModel, llama,
};
use aicoin_shard::{Coordinator, CoordinatorConfig, Shard};
use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;

use crate::{
    chain::{Snapshot, Upstream},
    usage::Served,
};

/// The address requests to the pipelines are signed for: no provider's.
pub const ADDRESS: Address = Address::ZERO;

/// The address `model`'s pipeline goes by in routing: no key's, and each model's its own.
pub fn address(model: &str) -> Address {
    let hash = alloy_primitives::keccak256(format!("aicoin.gateway.pipeline.{model}"));
    Address::from_slice(&hash[12..])
}

struct Pipeline {
    coordinator: Coordinator,
    layers: u64,
}

/// The gateway's pipelines, one per local model that can run split.
pub struct Pipelines {
    pipelines: HashMap<String, Pipeline>,
    url: String,
    /// Layer-tokens not yet a whole token, by model and provider.
    remainders: Mutex<HashMap<(String, Address), u64>>,
}

impl Pipelines {
    /// Loads the ends of every llama-family GGUF among `models` and serves them on a loopback
    /// port for `key`'s requests alone. Blocking: it reads the models.
    pub fn load(
        models: &[LocalModel],
        key: &PrivateKeySigner,
        config: CoordinatorConfig,
    ) -> std::io::Result<(Self, axum::Router, std::net::TcpListener)> {
        let mut pipelines = HashMap::new();
        let mut served = Models::default();
        for local in models.iter().filter(|m| m.kind == ModelKind::Text) {
            let Ok(llama::Config { layers, hidden, .. }) = llama::Config::read(&local.path) else {
                continue;
            };
            let coordinator = Coordinator::new(&local.id, (layers, hidden), key.clone(), config)?;
            let split = TextModel::load_split(
                &local.path,
                &local.id,
                &candle_core::Device::Cpu,
                Arc::new(coordinator.clone()),
            );
            match split {
                Ok(model) => {
                    let scheduler = Scheduler::start(
                        Arc::new(model),
                        SchedulerConfig::default(),
                        InferenceMetrics::default(),
                    );
                    served.text.insert(local.id.clone(), scheduler);
                    let layers = layers as u64;
                    pipelines.insert(
                        local.id.clone(),
                        Pipeline {
                            coordinator,
                            layers,
                        },
                    );
                }
                Err(e) => {
                    tracing::debug!(model = %local.id, error = %e, "not a model to run split")
                }
            }
        }
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let me = key.address();
        let access = Arc::new(SignedAccess::new(ADDRESS, move |signer| *signer == me));
        let app = router(
            Arc::new(served),
            Arc::new(Registry::default()),
            Some(access),
        );
        let pipelines = Self {
            pipelines,
            url,
            remainders: Mutex::new(HashMap::new()),
        };
        Ok((pipelines, app, listener))
    }

    /// Models this gateway can run split.
    pub fn models(&self) -> Vec<String> {
        self.pipelines.keys().cloned().collect()
    }

    /// Hands each coordinator the shards of its model in `snapshot`.
    pub fn update(&self, snapshot: &Snapshot) {
        for (id, pipeline) in &self.pipelines {
            let shards: Vec<Shard> = snapshot
                .offers
                .get(id)
                .map(|offer| offer.shards.clone())
                .unwrap_or_default();
            pipeline.coordinator.set_shards(shards);
        }
    }

    /// The upstream that runs `model` as a pipeline, when its shards cover every layer now.
    pub fn upstream(&self, model: &str) -> Option<Upstream> {
        let pipeline = self.pipelines.get(model)?;
        pipeline.coordinator.covered().then(|| Upstream {
            address: address(model),
            api_url: self.url.clone(),
            pipeline: true,
        })
    }

    /// Records the shards' work since the last call as tokens served in `epoch`: a provider
    /// that ran `l` of a model's `n` layers for `t` tokens served `t × l / n` of them.
    pub fn record_work(&self, epoch: u64, served: &Served) {
        let mut remainders = self.remainders.lock();
        for (model, pipeline) in &self.pipelines {
            for (provider, layer_tokens) in pipeline.coordinator.take_work() {
                let owed = remainders.entry((model.clone(), provider)).or_default();
                *owed += layer_tokens;
                served.record(epoch, provider, *owed / pipeline.layers);
                *owed %= pipeline.layers;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_models_pipeline_routes_under_an_address_of_its_own() {
        let (a, b) = (address("smollm2-135m-instruct"), address("qwen3-0.6b"));
        assert_ne!(a, b, "one model's failures must not open another's breaker");
        assert_ne!(a, ADDRESS);
        assert_eq!(a, address("smollm2-135m-instruct"));
    }
}
