//! The chain's model registry, kept by the compute registry: the models providers may
//! register, each with its compute units, package, weights hash, context length, memory and
//! category. Genesis lists the spec's models; governance adds and removes them ([`add`],
//! [`remove`]), never the last text model (the one the probes measure providers with).

use aicoin_primitives::registry::{
    ListedModel, ModelCategory, ModelField, model_slot, model_units_slot, model_words, models_slot,
    selected_model_slot,
};
use alloy_primitives::{B256, U256};

use super::IComputeRegistry;
use crate::{
    call::{CallResult, Exit, ModuleCall},
    store::{MAX_STRING, Packed, Slots, load_string, load_strings, store_string, store_strings},
};

/// Model `id`'s record (its units zero when it is not listed).
pub fn load(slots: &mut impl Slots, id: &str) -> CallResult<ListedModel> {
    let units = slots.load(model_units_slot(id))?.saturating_to();
    let package = load_string(slots, model_slot(id, ModelField::Package))?;
    let sha256 = B256::from(slots.load(model_slot(id, ModelField::Sha256))?);
    let limits = Packed(slots.load(model_slot(id, ModelField::Limits))?);
    Ok(ListedModel {
        id: id.to_string(),
        units,
        package,
        sha256,
        context_length: limits.get(0, 64),
        min_memory_mb: limits.get(64, 64),
        category: ModelCategory::from_u8(limits.get(128, 8) as u8).unwrap_or_default(),
    })
}

pub fn record(model: &ListedModel) -> IComputeRegistry::ModelRecord {
    IComputeRegistry::ModelRecord {
        id: model.id.clone(),
        units: model.units,
        package: model.package.clone(),
        sha256: model.sha256,
        contextLength: model.context_length,
        minMemoryMb: model.min_memory_mb,
        category: model.category as u8,
    }
}

/// Reverts unless `model` can be listed now: a new id of 1–128 bytes, at least one unit, a
/// package and weights hash, a context length.
pub fn check_add(slots: &mut impl Slots, model: &ListedModel) -> CallResult<()> {
    let problem = if model.id.is_empty() || model.id.len() > 128 {
        Some("the id must be 1 to 128 bytes".to_string())
    } else if model.units == 0 {
        Some("units must be at least 1".into())
    } else if model.package.is_empty() || model.package.len() > MAX_STRING {
        Some(format!(
            "the package must be 1 to {MAX_STRING} bytes (name==version)"
        ))
    } else if model.sha256 == B256::ZERO {
        Some("the weights' sha256 is missing".into())
    } else if model.context_length == 0 {
        Some("the context length must be at least 1".into())
    } else if !slots.load(model_units_slot(&model.id))?.is_zero() {
        Some(format!("{} is already listed", model.id))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Exit::revert(format!("IGovernance: model {problem}"))),
        None => Ok(()),
    }
}

/// The network's default model: the one governance selected, else the first listed.
pub fn selected(slots: &mut impl Slots) -> CallResult<String> {
    let chosen = load_string(slots, selected_model_slot())?;
    if !chosen.is_empty() {
        return Ok(chosen);
    }
    Ok(load_strings(slots, models_slot())?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// Reverts unless `id` is listed.
pub fn check_listed(slots: &mut impl Slots, id: &str) -> CallResult<()> {
    if slots.load(model_units_slot(id))?.is_zero() {
        return Err(Exit::revert(format!(
            "IGovernance: model {id:?} is not listed"
        )));
    }
    Ok(())
}

/// Makes the listed `id` the network's default model.
pub fn select(call: &mut ModuleCall<'_>, id: &str) -> CallResult<()> {
    store_string(&mut Registry(call), selected_model_slot(), id)?;
    call.emit_from(
        aicoin_primitives::modules::REGISTRY_ADDRESS,
        &IComputeRegistry::ModelSelected { id: id.to_string() },
    )
}

/// Reverts unless `id` is listed, not the last listed text model, and not the selected one.
pub fn check_remove(slots: &mut impl Slots, id: &str) -> CallResult<()> {
    check_listed(slots, id)?;
    if load_string(slots, selected_model_slot())? == id {
        return Err(Exit::revert(format!(
            "IGovernance: {id} is the network's selected model; select another first"
        )));
    }
    let removed = load(slots, id)?;
    if removed.category == ModelCategory::Text {
        let mut others = 0;
        for other in load_strings(slots, models_slot())? {
            if other != id && load(slots, &other)?.category == ModelCategory::Text {
                others += 1;
            }
        }
        if others == 0 {
            return Err(Exit::revert(format!(
                "IGovernance: {id} is the last listed text model, which cannot be removed"
            )));
        }
    }
    Ok(())
}

/// Lists `model` (after [`check_add`]), with a `ModelAdded` event from the registry.
pub fn add(call: &mut ModuleCall<'_>, model: &ListedModel) -> CallResult<()> {
    let registry = aicoin_primitives::modules::REGISTRY_ADDRESS;
    let mut slots = Registry(call);
    let mut ids = load_strings(&mut slots, models_slot())?;
    ids.push(model.id.clone());
    store_strings(&mut slots, models_slot(), &ids)?;
    for (slot, value) in model_words(model) {
        slots.store(slot, value)?;
    }
    call.emit_from(
        registry,
        &IComputeRegistry::ModelAdded {
            id: model.id.clone(),
            units: model.units,
            package: model.package.clone(),
        },
    )
}

/// Delists `id` (after [`check_remove`]): registrations naming it are refused from now on.
pub fn remove(call: &mut ModuleCall<'_>, id: &str) -> CallResult<()> {
    let registry = aicoin_primitives::modules::REGISTRY_ADDRESS;
    let mut slots = Registry(call);
    let ids: Vec<String> = load_strings(&mut slots, models_slot())?
        .into_iter()
        .filter(|listed| listed != id)
        .collect();
    store_strings(&mut slots, models_slot(), &ids)?;
    slots.store(model_units_slot(id), U256::ZERO)?;
    store_string(&mut slots, model_slot(id, ModelField::Package), "")?;
    slots.store(model_slot(id, ModelField::Sha256), U256::ZERO)?;
    slots.store(model_slot(id, ModelField::Limits), U256::ZERO)?;
    call.emit_from(
        registry,
        &IComputeRegistry::ModelRemoved { id: id.to_string() },
    )
}

/// The registry's storage, written from another module's call (governance executing a model
/// proposal).
pub struct Registry<'c, 'a>(pub &'c mut ModuleCall<'a>);

impl Slots for Registry<'_, '_> {
    fn load(&mut self, slot: B256) -> CallResult<U256> {
        self.0
            .read_from(aicoin_primitives::modules::REGISTRY_ADDRESS, slot)
    }

    fn store(&mut self, slot: B256, value: U256) -> CallResult<()> {
        self.0
            .write_to(aicoin_primitives::modules::REGISTRY_ADDRESS, slot, value)
    }
}
