//! The compute registry (`contracts/interfaces/IComputeRegistry.sol`): providers register with
//! a stake and leave through an unbonding period; validators report what they measured of each
//! provider every epoch; the end-of-block system step accrues the node share and settles each
//! epoch ([`settle`]).

pub mod models;
mod report;
pub mod score;
mod settle;
pub mod state;
pub mod view;

use aicoin_primitives::{
    modules::SYSTEM_ADDRESS,
    registry::{
        active_count_slot, authorities_slot, model_units_slot, models_slot, pot_slot,
        providers_slot, reporters_slot, suspended_slot,
    },
};
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolInterface, sol};

use crate::{
    call::{CallResult, Exit, ModuleCall},
    store::{MAX_STRING, Slots, load_addresses, load_strings, push_address},
};
use state::{Epoch, Provider, Status};

sol!("../../contracts/interfaces/IComputeRegistry.sol");

use IComputeRegistry::IComputeRegistryCalls as Call;

/// Most models one provider may serve.
pub const MAX_MODELS: usize = 16;

/// Answers one call to `IComputeRegistry`.
pub fn call(call: &mut ModuleCall<'_>) -> CallResult<Bytes> {
    call.charge_input()?;
    let decoded = Call::abi_decode(call.input.data)
        .map_err(|e| Exit::revert(bad_call(call.input.data, &e)))?;
    if !call.input.value.is_zero() && !matches!(decoded, Call::register(_)) {
        return Err(Exit::revert(
            "IComputeRegistry: only register accepts AIC (the stake)",
        ));
    }
    Ok(match decoded {
        Call::register(c) => {
            register(call, c)?;
            Bytes::new()
        }
        Call::update(c) => {
            update(call, c)?;
            Bytes::new()
        }
        Call::setShard(c) => {
            set_shard(call, c)?;
            Bytes::new()
        }
        Call::leave(_) => {
            leave(call)?;
            Bytes::new()
        }
        Call::withdraw(_) => {
            withdraw(call)?;
            Bytes::new()
        }
        Call::submitReport(c) => {
            report::submit(call, c.epoch, &c.measurements)?;
            Bytes::new()
        }
        Call::endBlock(c) => {
            if call.caller() != SYSTEM_ADDRESS {
                return Err(Exit::revert(
                    "IComputeRegistry: endBlock is the chain's own system step",
                ));
            }
            settle::end_block(call, c.nodeShare, c.miner, c.treasury)?;
            Bytes::new()
        }
        Call::currentEpoch(_) => {
            let epoch = Epoch::load(call)?;
            IComputeRegistry::currentEpochCall::abi_encode_returns(
                &IComputeRegistry::currentEpochReturn {
                    epoch: epoch.number,
                    lastBlock: epoch.last_block,
                },
            )
            .into()
        }
        Call::providers(_) => IComputeRegistry::providersCall::abi_encode_returns(&load_addresses(
            call,
            providers_slot(),
        )?)
        .into(),
        Call::provider(c) => {
            let provider = Provider::load(call, c.account)?;
            IComputeRegistry::providerCall::abi_encode_returns(&provider.info()).into()
        }
        Call::shardOf(c) => {
            let layers = state::load_shard(call, c.account, &c.model)?.unwrap_or(0..0);
            IComputeRegistry::shardOfCall::abi_encode_returns(&IComputeRegistry::shardOfReturn {
                start: layers.start,
                end: layers.end,
            })
            .into()
        }
        Call::epochRecord(c) => IComputeRegistry::epochRecordCall::abi_encode_returns(
            &state::load_record(call, c.account, c.epoch)?,
        )
        .into(),
        Call::report(c) => IComputeRegistry::reportCall::abi_encode_returns(&state::load_report(
            call,
            c.epoch,
            c.validator,
            c.account,
        )?)
        .into(),
        Call::reporters(c) => IComputeRegistry::reportersCall::abi_encode_returns(&load_addresses(
            call,
            reporters_slot(c.epoch),
        )?)
        .into(),
        Call::epochPot(c) => {
            IComputeRegistry::epochPotCall::abi_encode_returns(&call.load(pot_slot(c.epoch))?)
                .into()
        }
        Call::models(_) => {
            let ids = load_strings(call, models_slot())?;
            let units = ids
                .iter()
                .map(|id| Ok(call.load(model_units_slot(id))?.saturating_to()))
                .collect::<CallResult<Vec<u64>>>()?;
            IComputeRegistry::modelsCall::abi_encode_returns(&IComputeRegistry::modelsReturn {
                ids,
                units,
            })
            .into()
        }
        Call::model(c) => {
            let model = models::load(call, &c.id)?;
            if model.units == 0 {
                return Err(Exit::revert(format!(
                    "IComputeRegistry: model {:?} is not listed",
                    c.id
                )));
            }
            IComputeRegistry::modelCall::abi_encode_returns(&models::record(&model)).into()
        }
        Call::selectedModel(_) => {
            IComputeRegistry::selectedModelCall::abi_encode_returns(&models::selected(call)?).into()
        }
        Call::authorities(_) => IComputeRegistry::authoritiesCall::abi_encode_returns(
            &load_addresses(call, authorities_slot())?,
        )
        .into(),
    })
}

/// Checks a provider's settings: a payout address, an http(s) URL, 1–16 distinct listed models
/// and a known hardware class.
fn check_settings(
    call: &mut ModuleCall<'_>,
    payout: Address,
    api_url: &str,
    models: &[String],
    hardware: u8,
) -> CallResult<()> {
    if payout.is_zero() {
        return Err(Exit::revert("IComputeRegistry: the payout address is zero"));
    }
    if api_url.len() > MAX_STRING
        || !(api_url.starts_with("http://") || api_url.starts_with("https://"))
    {
        return Err(Exit::revert(format!(
            "IComputeRegistry: apiUrl must be an http:// or https:// URL of at most {MAX_STRING} bytes"
        )));
    }
    if models.is_empty() || models.len() > MAX_MODELS {
        return Err(Exit::revert(format!(
            "IComputeRegistry: register 1 to {MAX_MODELS} models, not {}",
            models.len()
        )));
    }
    for (i, model) in models.iter().enumerate() {
        if models[..i].contains(model) {
            return Err(Exit::revert(format!(
                "IComputeRegistry: model {model:?} is named twice"
            )));
        }
        if model.len() > MAX_STRING || call.load(model_units_slot(model))?.is_zero() {
            return Err(Exit::revert(format!(
                "IComputeRegistry: model {model:?} is not on the chain's model list"
            )));
        }
    }
    if hardware > state::GPU {
        return Err(Exit::revert(format!(
            "IComputeRegistry: hardware class {hardware} is unknown (0 CPU, 1 GPU)"
        )));
    }
    Ok(())
}

fn register(call: &mut ModuleCall<'_>, c: IComputeRegistry::registerCall) -> CallResult<()> {
    let sender = call.caller();
    if is_suspended(call, sender)? {
        return Err(Exit::revert(format!(
            "IComputeRegistry: governance suspended {sender}; it cannot register again"
        )));
    }
    let status = Provider::status(call, sender)?;
    if matches!(status, Status::Active | Status::Leaving) {
        return Err(Exit::revert(format!(
            "IComputeRegistry: {sender} is already registered"
        )));
    }
    let stake = call.input.value;
    let min_stake = call.param("minStake")?;
    if stake < min_stake {
        return Err(Exit::revert(format!(
            "IComputeRegistry: a stake of {stake} wei is below minStake ({min_stake} wei)"
        )));
    }
    check_settings(call, c.payout, &c.apiUrl, &c.models, c.hardware)?;
    if status == Status::None {
        push_address(call, providers_slot(), sender)?;
    }
    // A registration serves its models whole until `setShard` says otherwise, whatever a past
    // registration of the same key recorded.
    for model in &c.models {
        state::store_shard(call, sender, model, None)?;
    }
    let provider = Provider {
        address: sender,
        payout: c.payout,
        api_url: c.apiUrl,
        models: c.models.clone(),
        hardware: c.hardware,
        status: Status::Active,
        stake,
        registered_at: call.block_number(),
        unbonding_epoch: 0,
        up_since: 0,
        last_epoch: 0,
        last_score: 0,
        last_reward: U256::ZERO,
        audit_failures: 0,
    };
    provider.store(call)?;
    add_active(call, 1)?;
    call.emit(&IComputeRegistry::Registered {
        provider: sender,
        payout: c.payout,
        stake,
        models: c.models,
    })
}

fn update(call: &mut ModuleCall<'_>, c: IComputeRegistry::updateCall) -> CallResult<()> {
    let mut provider = active(call)?;
    check_settings(call, c.payout, &c.apiUrl, &c.models, c.hardware)?;
    for dropped in provider.models.iter().filter(|m| !c.models.contains(m)) {
        state::store_shard(call, provider.address, dropped, None)?;
    }
    provider.payout = c.payout;
    provider.api_url = c.apiUrl.clone();
    provider.models = c.models.clone();
    provider.hardware = c.hardware;
    provider.store(call)?;
    call.emit(&IComputeRegistry::Updated {
        provider: provider.address,
        payout: c.payout,
        apiUrl: c.apiUrl,
        models: c.models,
    })
}

/// The most layers a shard's range may name (more than any model has).
const MAX_LAYER: u32 = 4096;

fn set_shard(call: &mut ModuleCall<'_>, c: IComputeRegistry::setShardCall) -> CallResult<()> {
    let provider = active(call)?;
    if !provider.models.contains(&c.model) {
        return Err(Exit::revert(format!(
            "IComputeRegistry: {} does not serve model {:?} (update its models first)",
            provider.address, c.model
        )));
    }
    let layers = match (c.start, c.end) {
        (0, 0) => None,
        (start, end) if start < end && end <= MAX_LAYER => Some(start..end),
        (start, end) => {
            return Err(Exit::revert(format!(
                "IComputeRegistry: layers [{start}, {end}) are no range: start < end <= {MAX_LAYER}, or (0, 0) for the whole model"
            )));
        }
    };
    state::store_shard(call, provider.address, &c.model, layers)?;
    call.emit(&IComputeRegistry::ShardSet {
        provider: provider.address,
        model: c.model,
        start: c.start,
        end: c.end,
    })
}

fn leave(call: &mut ModuleCall<'_>) -> CallResult<()> {
    let provider = active(call)?;
    let unbonding = call.param_u64("unbondingEpochs")?;
    let address = provider.address;
    let unbonding_epoch = unbond(call, provider, unbonding)?;
    call.emit(&IComputeRegistry::Leaving {
        provider: address,
        unbondingEpoch: unbonding_epoch,
    })
}

/// Takes an active `provider` out of the measured set at once: its stake unbonds after
/// `unbonding_epochs` (at least 1). Returns the epoch it unbonds at.
fn unbond(
    slots: &mut impl Slots,
    mut provider: Provider,
    unbonding_epochs: u64,
) -> CallResult<u64> {
    let epoch = Epoch::load(slots)?.number;
    // The epoch it leaves in is settled at the end of the next one, and may still slash it.
    provider.status = Status::Leaving;
    provider.unbonding_epoch = epoch
        .saturating_add(1)
        .saturating_add(unbonding_epochs.max(1));
    provider.up_since = 0;
    provider.store_state(slots)?;
    add_active(slots, -1)?;
    Ok(provider.unbonding_epoch)
}

fn withdraw(call: &mut ModuleCall<'_>) -> CallResult<()> {
    let sender = call.caller();
    let mut provider = Provider::load(call, sender)?;
    if provider.status != Status::Leaving {
        return Err(Exit::revert(format!(
            "IComputeRegistry: {sender} has no unbonding stake (call leave first)"
        )));
    }
    let epoch = Epoch::load(call)?.number;
    if epoch < provider.unbonding_epoch {
        return Err(Exit::revert(format!(
            "IComputeRegistry: the stake unbonds at epoch {}; this is epoch {epoch}",
            provider.unbonding_epoch
        )));
    }
    let amount = provider.stake;
    provider.stake = U256::ZERO;
    provider.status = Status::Left;
    provider.store_state(call)?;
    call.pay(sender, amount)?;
    call.emit(&IComputeRegistry::Withdrawn {
        provider: sender,
        amount,
    })
}

/// Governance's emergency suspension (the governance module calls this, writing this module's
/// storage): an active provider is no longer probed or paid, its stake unbonds as if it had
/// left, and its address can never register again.
pub fn suspend(call: &mut ModuleCall<'_>, provider: Address) -> CallResult<()> {
    let registry = aicoin_primitives::modules::REGISTRY_ADDRESS;
    let unbonding = call.param_u64("unbondingEpochs")?;
    let record = Provider::load(&mut models::Registry(call), provider)?;
    models::Registry(call).store(suspended_slot(provider), U256::ONE)?;
    if record.status == Status::Active {
        let unbonding_epoch = unbond(&mut models::Registry(call), record, unbonding)?;
        call.emit_from(
            registry,
            &IComputeRegistry::Leaving {
                provider,
                unbondingEpoch: unbonding_epoch,
            },
        )?;
    }
    call.emit_from(registry, &IComputeRegistry::Suspended { provider })
}

/// Whether governance suspended `provider`.
pub fn is_suspended(slots: &mut impl Slots, provider: Address) -> CallResult<bool> {
    Ok(!slots.load(suspended_slot(provider))?.is_zero())
}

/// The caller's record, which must be active.
fn active(call: &mut ModuleCall<'_>) -> CallResult<Provider> {
    let sender = call.caller();
    let provider = Provider::load(call, sender)?;
    if provider.status != Status::Active {
        return Err(Exit::revert(format!(
            "IComputeRegistry: {sender} is not an active provider"
        )));
    }
    Ok(provider)
}

fn add_active(slots: &mut impl Slots, by: i64) -> CallResult<()> {
    let count: u64 = slots.load(active_count_slot())?.saturating_to();
    let count = count.saturating_add_signed(by);
    slots.store(active_count_slot(), U256::from(count))
}

fn bad_call(data: &[u8], error: &alloy_sol_types::Error) -> String {
    match data
        .get(..4)
        .map(|s| <[u8; 4]>::try_from(s).unwrap_or_default())
    {
        Some(selector) if Call::valid_selector(selector) => {
            format!("IComputeRegistry: malformed call data: {error}")
        }
        Some(selector) => format!(
            "IComputeRegistry: no function with selector 0x{}",
            alloy_primitives::hex::encode(selector)
        ),
        None => "IComputeRegistry: call data shorter than a function selector".to_string(),
    }
}

#[cfg(test)]
mod tests;
