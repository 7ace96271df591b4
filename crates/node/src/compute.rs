//! Proof-of-compute in a node: a validator's prober (probes, audits, reports), a provider's
//! access policy (signed requests from the chain's validators and registered gateways) and
//! self-registration, and the paid gateway in front of the providers.

use std::{collections::HashMap, sync::Arc};

use aicoin_api::{Access, ApiServer, signed::SignedAccess};
use aicoin_compute::{
    prober::{self, ProberConfig},
    provider::{self, Registration},
    tx::TxSender,
    view::RegistryView,
};
use aicoin_inference::{ModelKind, TextModel};
use aicoin_storage::Store;

use crate::{NodeConfig, roles::Core, services::Services};

/// A provider's API admits requests signed by an authority or a registered gateway of the
/// chain at its head.
pub(crate) fn provider_access(store: Store, me: alloy_primitives::Address) -> Arc<dyn Access> {
    Arc::new(SignedAccess::new(me, move |signer| {
        let Ok(reader) = store.reader() else {
            return false;
        };
        let Ok(view) = RegistryView::new(&reader) else {
            return false;
        };
        view.authorities().is_ok_and(|a| a.contains(signer))
            || view.is_gateway(*signer).unwrap_or(false)
    }))
}

/// Starts the paid gateway, signing with the node's key.
pub(crate) async fn start_gateway(
    gateway: &aicoin_gateway::GatewayConfig,
    config: &NodeConfig,
    core: &Core,
    services: &Services,
) -> Result<aicoin_gateway::GatewayServer, aicoin_gateway::GatewayError> {
    let link = aicoin_gateway::NodeLink {
        store: core.chain.store().clone(),
        chain_id: core.chain.spec().chain_id,
        block_interval: config.block_interval,
        key: core.sealer.key.clone(),
        rpc_url: format!("http://{}", core.rpc_addr),
        blocks: core.chain.subscribe(),
        shutdown: services.shutdown(),
    };
    aicoin_gateway::start(gateway.clone(), link).await
}

/// Starts the validator's prober, which loads its audit models first (off the async workers).
pub(crate) fn start_prober(config: &NodeConfig, core: &Core, services: &mut Services) {
    let probe = config.probe.clone();
    let key = core.sealer.key.clone();
    let rpc_url = format!("http://{}", core.rpc_addr);
    let chain_id = core.chain.spec().chain_id;
    let block_interval = config.block_interval;
    let store = core.chain.store().clone();
    let blocks = core.chain.subscribe();
    let shutdown = services.shutdown();
    services.spawn(async move {
        let models = tokio::task::spawn_blocking(move || {
            let mut models = HashMap::new();
            for local in probe.audit_models.iter().filter(|m| m.kind == ModelKind::Text) {
                match TextModel::load(&local.path, &local.id, &candle_core::Device::Cpu, probe.weights) {
                    Ok(model) => {
                        models.insert(local.id.clone(), Arc::new(model));
                    }
                    Err(e) => tracing::warn!(model = %local.id, error = %e, "cannot load a model to audit with"),
                }
            }
            models
        })
        .await
        .unwrap_or_default();
        tracing::info!(audit_models = ?models.keys().collect::<Vec<_>>(), "probing compute providers");
        let config = ProberConfig {
            key,
            rpc_url,
            chain_id,
            block_interval,
            models,
        };
        prober::run(config, store, blocks, shutdown).await;
    });
}

/// Keeps this node registered as a provider of the listed models its API serves.
pub(crate) fn start_provider(
    config: &NodeConfig,
    core: &Core,
    api: &ApiServer,
    services: &mut Services,
) {
    let Some(provide) = &config.provide else {
        return;
    };
    let store = core.chain.store().clone();
    let listed: Vec<String> = store
        .reader()
        .ok()
        .and_then(|reader| RegistryView::new(&reader).ok()?.models().ok())
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.id)
        .collect();
    let models: Vec<String> = api
        .models()
        .cards()
        .into_iter()
        .map(|card| card.id)
        .chain(provide.shards.iter().map(|s| s.model.clone()))
        .filter(|id| listed.contains(id))
        .collect();
    if models.is_empty() {
        tracing::error!(
            served = ?api.models().cards().iter().map(|c| &c.id).collect::<Vec<_>>(),
            ?listed,
            "none of the served models is on the chain's model list: not registering as a provider"
        );
        return;
    }
    let key = core.sealer.key.clone();
    let wanted = Registration {
        payout: provide.payout.unwrap_or(key.address()),
        api_url: provide.api_url.clone().unwrap_or_else(|| api.url()),
        models,
        hardware: provide.gpu.into(),
        stake: provide.stake,
        shards: provide
            .shards
            .iter()
            .map(|s| (s.model.clone(), s.layers.start as u32..s.layers.end as u32))
            .collect(),
    };
    let sender = match TxSender::new(
        &format!("http://{}", core.rpc_addr),
        key,
        core.chain.spec().chain_id,
    ) {
        Ok(sender) => sender,
        Err(e) => {
            tracing::error!(error = %e, "cannot send the provider's registration");
            return;
        }
    };
    services.spawn(provider::run(
        wanted,
        sender,
        store,
        core.chain.subscribe(),
        services.shutdown(),
    ));
}
