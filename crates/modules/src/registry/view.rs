//! The registry read back outside a block: what `aic_providers`, a validator's prober, a
//! provider's self-registration and `aicoin provider status` show, over any [`Slots`] (a stored
//! block's state, through [`ReadOnly`](crate::store::ReadOnly)).

use aicoin_primitives::registry::{ListedModel, authorities_slot, models_slot, providers_slot};
use alloy_primitives::Address;

use super::state::Provider;
use crate::{
    call::CallResult,
    store::{Slots, load_addresses, load_strings},
};

pub use super::state::{Epoch, Status, load_record as record, load_shard as shard};

/// The models `provider` serves as shards, with their layer ranges, in its models' order.
pub fn shards(
    slots: &mut impl Slots,
    provider: &Provider,
) -> CallResult<Vec<(String, std::ops::Range<u32>)>> {
    let mut shards = Vec::new();
    for model in &provider.models {
        if let Some(layers) = shard(slots, provider.address, model)? {
            shards.push((model.clone(), layers));
        }
    }
    Ok(shards)
}

/// Every provider ever registered, in registration order.
pub fn providers(slots: &mut impl Slots) -> CallResult<Vec<Provider>> {
    load_addresses(slots, providers_slot())?
        .into_iter()
        .map(|address| Provider::load(slots, address))
        .collect()
}

pub fn provider(slots: &mut impl Slots, address: Address) -> CallResult<Provider> {
    Provider::load(slots, address)
}

/// The validators whose reports count.
pub fn authorities(slots: &mut impl Slots) -> CallResult<Vec<Address>> {
    load_addresses(slots, authorities_slot())
}

/// The models providers may register.
pub fn models(slots: &mut impl Slots) -> CallResult<Vec<ListedModel>> {
    load_strings(slots, models_slot())?
        .into_iter()
        .map(|id| super::models::load(slots, &id))
        .collect()
}

pub fn epoch(slots: &mut impl Slots) -> CallResult<Epoch> {
    Epoch::load(slots)
}
