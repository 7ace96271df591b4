//! The API-access module (`contracts/interfaces/IApiAccess.sol`): API tiers bought in AIC, each
//! account's subscription (extended by buying the same tier, upgraded by buying a higher one),
//! the key generation its API keys are signed with, and each epoch's purchase revenue; the
//! gateways and their usage reports ([`gateways`]); the revenue split at an epoch's settlement
//! ([`revenue`]).

pub mod gateways;
pub mod revenue;

use aicoin_primitives::{
    access::{revenue_slot, served_slot, subscription_slot, usage_reported_slot},
    governance::purchases_paused_slot,
    modules::GOVERNANCE_ADDRESS,
};
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolInterface, sol};

use crate::{
    call::{CallResult, Exit, ModuleCall},
    registry::{models::Registry, state::Epoch},
    store::{Packed, Slots},
};

sol!("../../contracts/interfaces/IApiAccess.sol");

use IApiAccess::IApiAccessCalls as Call;

/// One account's subscription as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subscription {
    /// 0 none, 1 Basic, 2 Standard, 3 Premium.
    pub tier: u8,
    /// The first block it no longer covers.
    pub expires_at: u64,
    pub key_generation: u64,
}

impl Subscription {
    pub fn load(slots: &mut impl Slots, account: Address) -> CallResult<Self> {
        let word = Packed(slots.load(subscription_slot(account))?);
        Ok(Self {
            tier: word.get(0, 8) as u8,
            expires_at: word.get(64, 64),
            key_generation: word.get(128, 64),
        })
    }

    fn store(&self, slots: &mut impl Slots, account: Address) -> CallResult<()> {
        let word = Packed::default()
            .set(0, 8, self.tier.into())
            .set(64, 64, self.expires_at)
            .set(128, 64, self.key_generation);
        slots.store(subscription_slot(account), word.0)
    }

    /// Whether it covers block `number`.
    pub fn active_at(&self, number: u64) -> bool {
        self.tier != 0 && number < self.expires_at
    }
}

/// The parameter-name prefix of `tier`'s price and quotas.
fn tier_name(tier: u8) -> CallResult<&'static str> {
    match tier {
        1 => Ok("basic"),
        2 => Ok("standard"),
        3 => Ok("premium"),
        other => Err(Exit::revert(format!(
            "IApiAccess: no tier {other} (1 Basic, 2 Standard, 3 Premium)"
        ))),
    }
}

/// Answers one call to `IApiAccess`.
pub fn call(call: &mut ModuleCall<'_>) -> CallResult<Bytes> {
    call.charge_input()?;
    let decoded = Call::abi_decode_validate(call.input.data).map_err(|_| {
        Exit::revert(match call.input.data.get(..4) {
            Some(selector) => format!(
                "IApiAccess: no function with selector 0x{}, or malformed call data",
                alloy_primitives::hex::encode(selector)
            ),
            None => "IApiAccess: call data shorter than a function selector".to_string(),
        })
    })?;
    if !call.input.value.is_zero() && !matches!(decoded, Call::buy(_)) {
        return Err(Exit::revert("IApiAccess: only buy accepts AIC"));
    }
    Ok(match decoded {
        Call::buy(c) => IApiAccess::buyCall::abi_encode_returns(&buy(call, c.tier)?).into(),
        Call::revokeKeys(_) => {
            let account = call.caller();
            let mut subscription = Subscription::load(call, account)?;
            subscription.key_generation = subscription.key_generation.saturating_add(1);
            subscription.store(call, account)?;
            call.emit(&IApiAccess::KeysRevoked {
                account,
                keyGeneration: subscription.key_generation,
            })?;
            IApiAccess::revokeKeysCall::abi_encode_returns(&subscription.key_generation).into()
        }
        Call::subscription(c) => {
            let subscription = Subscription::load(call, c.account)?;
            let active = subscription.active_at(call.block_number());
            let (rpm, tokens) = match active {
                true => {
                    let name = tier_name(subscription.tier)?;
                    (
                        call.param(&format!("{name}Rpm"))?,
                        call.param(&format!("{name}TokensPerDay"))?,
                    )
                }
                false => (U256::ZERO, U256::ZERO),
            };
            IApiAccess::subscriptionCall::abi_encode_returns(&IApiAccess::Subscription {
                tier: subscription.tier,
                expiresAt: subscription.expires_at,
                active,
                keyGeneration: subscription.key_generation,
                requestsPerMinute: rpm,
                tokensPerDay: tokens,
            })
            .into()
        }
        Call::revenue(c) => {
            IApiAccess::revenueCall::abi_encode_returns(&call.load(revenue_slot(c.epoch))?).into()
        }
        Call::addGateway(c) => {
            gateways::add(call, c.gateway, &c.url)?;
            Bytes::new()
        }
        Call::removeGateway(c) => {
            gateways::remove(call, c.gateway)?;
            Bytes::new()
        }
        Call::gateways(_) => {
            IApiAccess::gatewaysCall::abi_encode_returns(&gateways::list(call)?).into()
        }
        Call::isGateway(c) => {
            IApiAccess::isGatewayCall::abi_encode_returns(&gateways::is_gateway(call, c.account)?)
                .into()
        }
        Call::reportUsage(c) => {
            gateways::report(call, c.epoch, &c.usage)?;
            Bytes::new()
        }
        Call::served(c) => IApiAccess::servedCall::abi_encode_returns(
            &call
                .load(served_slot(c.epoch, c.provider))?
                .saturating_to::<u64>(),
        )
        .into(),
        Call::reported(c) => IApiAccess::reportedCall::abi_encode_returns(
            &!call
                .load(usage_reported_slot(c.epoch, c.gateway))?
                .is_zero(),
        )
        .into(),
    })
}

/// `buy(tier)`: the rules of [`IApiAccess`]'s doc comment.
fn buy(call: &mut ModuleCall<'_>, tier: u8) -> CallResult<u64> {
    let name = tier_name(tier)?;
    if !call
        .read_from(GOVERNANCE_ADDRESS, purchases_paused_slot())?
        .is_zero()
    {
        return Err(Exit::revert(
            "IApiAccess: governance paused tier purchases (an emergency proposal)",
        ));
    }
    let price = call.param(&format!("{name}Price"))?;
    let paid = call.input.value;
    if paid != price {
        return Err(Exit::revert(format!(
            "IApiAccess: tier {tier} costs {price} wei; {paid} wei were sent"
        )));
    }
    let account = call.caller();
    let now = call.block_number();
    let period = call.param_u64("subscriptionBlocks")?;
    let mut subscription = Subscription::load(call, account)?;
    subscription.expires_at = if !subscription.active_at(now) {
        now.saturating_add(period)
    } else if tier == subscription.tier {
        subscription.expires_at.saturating_add(period)
    } else if tier > subscription.tier {
        // The unused blocks of the old tier, at its price, buy extra blocks of the new one.
        let old_price = call.param(&format!("{}Price", tier_name(subscription.tier)?))?;
        let left = U256::from(subscription.expires_at - now);
        let credit = old_price.saturating_mul(left) / U256::from(period.max(1));
        let extra: u64 = match price.is_zero() {
            true => 0,
            false => (credit.saturating_mul(U256::from(period)) / price).saturating_to(),
        };
        now.saturating_add(period).saturating_add(extra)
    } else {
        return Err(Exit::revert(format!(
            "IApiAccess: tier {} is active until block {}; a lower tier can be bought once it \
             expires",
            subscription.tier, subscription.expires_at
        )));
    };
    subscription.tier = tier;
    subscription.store(call, account)?;
    let epoch = Epoch::load(&mut Registry(call))?.number;
    let revenue = call.load(revenue_slot(epoch))?;
    call.store(revenue_slot(epoch), revenue.saturating_add(paid))?;
    call.emit(&IApiAccess::Purchased {
        account,
        tier,
        price,
        expiresAt: subscription.expires_at,
    })?;
    Ok(subscription.expires_at)
}

#[cfg(test)]
mod tests;
