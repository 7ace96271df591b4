//! What a proposal does when executed, one variant per kind: decoded from its payload, checked
//! when proposed and again when executed (the chain may have moved on), then applied.

use aicoin_primitives::{
    Tokenomics,
    governance::{max_supply_slot, purchases_paused_slot, supply_slot, treasury_slot},
    modules::{GOVERNANCE_ADDRESS, MODULES, PARAMS_ADDRESS, REGISTRY_ADDRESS, SYSTEM_ADDRESS},
    registry::{ListedModel, ModelCategory, word_address},
};
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::{SolType, SolValue, sol_data};

use super::{IGovernance, upgrade};
use crate::{
    call::{CallResult, Exit, ModuleCall},
    params,
    registry::models::{self, Registry},
    store::Slots,
};

/// A model-add payload: `abi.encode(string id, string package, bytes32 sha256, uint64
/// contextLength, uint64 minMemoryMb, uint8 category, uint64 units)`.
pub type ModelAddPayload = (
    sol_data::String,
    sol_data::String,
    sol_data::FixedBytes<32>,
    sol_data::Uint<64>,
    sol_data::Uint<64>,
    sol_data::Uint<8>,
    sol_data::Uint<64>,
);

/// The parameters that set the issuance schedule.
const ISSUANCE: [&str; 3] = ["initialReward", "halvingInterval", "treasuryShareBps"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Kind 0: set parameter `key` of IParams to `value`.
    ParamChange { key: B256, value: U256 },
    /// Kind 1: pay `amount` from the treasury to `to`.
    TreasurySpend { to: Address, amount: U256 },
    /// Kind 2: list a model providers may register.
    ModelAdd(ListedModel),
    /// Kind 3: delist a model (never the last one).
    ModelRemove(String),
    /// Kind 4: protocol `version` from block `activation` on.
    Upgrade { version: String, activation: u64 },
    /// Kind 5, voted on for `emergencyVotingBlocks`.
    Emergency(Emergency),
    /// Kind 6: make a listed model the network's default.
    ModelSelect(String),
}

/// What an emergency proposal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emergency {
    /// Action 0: no API tier can be bought until resumed.
    PausePurchases,
    /// Action 1.
    ResumePurchases,
    /// Action 2: the provider is no longer measured or paid, its stake unbonds, and it cannot
    /// register again.
    SuspendProvider(Address),
}

impl Action {
    /// Whether it is voted on for `emergencyVotingBlocks` rather than `votingBlocks`.
    pub fn is_emergency(&self) -> bool {
        matches!(self, Self::Emergency(_))
    }
}

impl Action {
    pub fn decode(kind: u8, payload: &[u8]) -> CallResult<Self> {
        let malformed = |what: &str| {
            Exit::revert(format!(
                "IGovernance: a kind {kind} payload is abi.encode({what}); got {} bytes that do \
                 not decode",
                payload.len()
            ))
        };
        match kind {
            0 => {
                let (key, value) = <(B256, U256)>::abi_decode_validate(payload)
                    .ok()
                    .filter(|_| payload.len() == 64)
                    .ok_or_else(|| malformed("bytes32 key, uint256 value"))?;
                Ok(Self::ParamChange { key, value })
            }
            1 => {
                let (to, amount) = <(Address, U256)>::abi_decode_validate(payload)
                    .ok()
                    .filter(|_| payload.len() == 64)
                    .ok_or_else(|| malformed("address to, uint256 amount"))?;
                Ok(Self::TreasurySpend { to, amount })
            }
            2 => {
                let (id, package, sha256, context_length, min_memory_mb, category, units) =
                    ModelAddPayload::abi_decode_params_validate(payload).map_err(|_| {
                        malformed(
                            "string id, string package, bytes32 sha256, uint64 contextLength, \
                             uint64 minMemoryMb, uint8 category, uint64 units",
                        )
                    })?;
                let category = ModelCategory::from_u8(category).ok_or_else(|| {
                    Exit::revert(format!(
                        "IGovernance: model category {category} is none of 0 text, 1 embedding"
                    ))
                })?;
                Ok(Self::ModelAdd(ListedModel {
                    id,
                    units,
                    package,
                    sha256,
                    context_length,
                    min_memory_mb,
                    category,
                }))
            }
            3 => {
                let id =
                    String::abi_decode_validate(payload).map_err(|_| malformed("string id"))?;
                Ok(Self::ModelRemove(id))
            }
            4 => {
                let (version, activation) = <(String, u64)>::abi_decode_params_validate(payload)
                    .map_err(|_| malformed("string version, uint64 activationBlock"))?;
                Ok(Self::Upgrade {
                    version,
                    activation,
                })
            }
            5 => {
                let (action, provider) =
                    <(sol_data::Uint<8>, sol_data::Address)>::abi_decode_params_validate(payload)
                        .map_err(|_| malformed("uint8 action, address provider"))?;
                Ok(Self::Emergency(match (action, provider) {
                    (0, _) => Emergency::PausePurchases,
                    (1, _) => Emergency::ResumePurchases,
                    (2, provider) => Emergency::SuspendProvider(provider),
                    (other, _) => {
                        return Err(Exit::revert(format!(
                            "IGovernance: emergency action {other} is none of 0 pause tier \
                             purchases, 1 resume them, 2 suspend a provider"
                        )));
                    }
                }))
            }
            6 => {
                let id =
                    String::abi_decode_validate(payload).map_err(|_| malformed("string id"))?;
                Ok(Self::ModelSelect(id))
            }
            other => Err(Exit::revert(format!(
                "IGovernance: no proposal kind {other} (0 parameter change, 1 treasury spend, \
                 2 model add, 3 model remove, 4 protocol upgrade, 5 emergency, 6 model select)"
            ))),
        }
    }

    /// The account the proposal acts on and the AIC it moves, as Governor's `targets` and
    /// `values` show them.
    pub fn target(&self, call: &mut ModuleCall<'_>) -> CallResult<(Address, U256)> {
        Ok(match self {
            Self::ParamChange { .. } => (PARAMS_ADDRESS, U256::ZERO),
            Self::TreasurySpend { amount, .. } => (treasury(call)?, *amount),
            Self::ModelAdd(_) | Self::ModelRemove(_) | Self::ModelSelect(_) => {
                (REGISTRY_ADDRESS, U256::ZERO)
            }
            Self::Upgrade { .. }
            | Self::Emergency(Emergency::PausePurchases)
            | Self::Emergency(Emergency::ResumePurchases) => (GOVERNANCE_ADDRESS, U256::ZERO),
            Self::Emergency(Emergency::SuspendProvider(provider)) => (*provider, U256::ZERO),
        })
    }

    /// Reverts with the reason when the action cannot be carried out at this block.
    pub fn check(&self, call: &mut ModuleCall<'_>) -> CallResult<()> {
        match self {
            Self::ParamChange { key, value } => {
                let def = params::known(key)?;
                def.check(*value)
                    .map_err(|e| Exit::revert(format!("IGovernance: {e}")))?;
                if ISSUANCE.contains(&def.name) {
                    check_cap(call, def.name, *value)?;
                }
                Ok(())
            }
            Self::TreasurySpend { to, amount } => {
                if amount.is_zero() || *to == Address::ZERO {
                    return Err(Exit::revert(
                        "IGovernance: a treasury spend pays a nonzero amount to a nonzero address",
                    ));
                }
                if MODULES.iter().any(|(_, module)| module == to) || *to == SYSTEM_ADDRESS {
                    return Err(Exit::revert(format!(
                        "IGovernance: {to} is a chain module's address; coins paid there are lost"
                    )));
                }
                let treasury = treasury(call)?;
                let held = call.balance(treasury)?;
                if held < *amount {
                    return Err(Exit::revert(format!(
                        "IGovernance: the treasury holds {held} wei, less than the {amount} wei \
                         to spend"
                    )));
                }
                Ok(())
            }
            Self::ModelAdd(model) => models::check_add(&mut Registry(call), model),
            Self::ModelRemove(id) => models::check_remove(&mut Registry(call), id),
            Self::Upgrade {
                version,
                activation,
            } => upgrade::check(call, version, *activation),
            Self::Emergency(Emergency::SuspendProvider(provider)) => {
                let mut registry = Registry(call);
                let status = crate::registry::state::Provider::status(&mut registry, *provider)?;
                if status == crate::registry::state::Status::None {
                    return Err(Exit::revert(format!(
                        "IGovernance: {provider} never registered as a provider"
                    )));
                }
                if crate::registry::is_suspended(&mut registry, *provider)? {
                    return Err(Exit::revert(format!(
                        "IGovernance: {provider} is suspended already"
                    )));
                }
                Ok(())
            }
            Self::Emergency(_) => Ok(()),
            Self::ModelSelect(id) => models::check_listed(&mut Registry(call), id),
        }
    }

    /// Carries the action out (after [`Action::check`]).
    pub fn apply(&self, call: &mut ModuleCall<'_>, proposal: u64) -> CallResult<()> {
        match self {
            Self::ParamChange { key, value } => params::change(call, *key, *value),
            Self::TreasurySpend { to, amount } => {
                let treasury = treasury(call)?;
                call.transfer(treasury, *to, *amount)?;
                call.emit(&IGovernance::TreasurySpent {
                    proposalId: U256::from(proposal),
                    to: *to,
                    amount: *amount,
                })
            }
            Self::ModelAdd(model) => models::add(call, model),
            Self::ModelRemove(id) => models::remove(call, id),
            Self::Upgrade {
                version,
                activation,
            } => upgrade::schedule(call, proposal, version, *activation),
            Self::Emergency(Emergency::PausePurchases) => {
                call.store(purchases_paused_slot(), U256::ONE)?;
                call.emit(&IGovernance::PurchasesPaused { paused: true })
            }
            Self::Emergency(Emergency::ResumePurchases) => {
                call.store(purchases_paused_slot(), U256::ZERO)?;
                call.emit(&IGovernance::PurchasesPaused { paused: false })
            }
            Self::Emergency(Emergency::SuspendProvider(provider)) => {
                crate::registry::suspend(call, *provider)
            }
            Self::ModelSelect(id) => models::select(call, id),
        }
    }
}

fn treasury(call: &mut ModuleCall<'_>) -> CallResult<Address> {
    Ok(word_address(call.read(treasury_slot())?))
}

/// Refuses an issuance change whose schedule would issue more than is left under the cap (and
/// more than the schedule it replaces: the cap already trims the last blocks of a schedule that
/// overshoots it, which a change that lowers issuance leaves as it is).
fn check_cap(call: &mut ModuleCall<'_>, name: &str, value: U256) -> CallResult<()> {
    let max_supply = call.read(max_supply_slot())?;
    let issued = call.read(supply_slot())?;
    let current = Tokenomics {
        initial_reward: call.param("initialReward")?,
        halving_interval: call.param_u64("halvingInterval")?,
        treasury_share_bps: call.param_u64("treasuryShareBps")?,
        max_supply,
        ..Tokenomics::default()
    };
    let mut proposed = current.clone();
    match name {
        "initialReward" => proposed.initial_reward = value,
        "halvingInterval" => proposed.halving_interval = value.saturating_to(),
        _ => proposed.treasury_share_bps = value.saturating_to(),
    }
    // This block pays its reward under the new schedule too (a change executes mid-block), and
    // `issued` counts up to the block before it.
    let from = call.block_number().saturating_sub(1);
    let (before, after) = (
        current.scheduled_after(from),
        proposed.scheduled_after(from),
    );
    let left = max_supply.saturating_sub(issued);
    if after > left && after > before {
        return Err(Exit::revert(format!(
            "IGovernance: with {name} = {value} the schedule would issue {after} wei more, past \
             the {left} wei left under the {max_supply} wei cap"
        )));
    }
    Ok(())
}
