//! Splitting an epoch's API revenue when the registry settles the epoch: `revenueProviderBps`
//! of it, plus what earlier epochs carried in, to the payouts of the providers that served
//! tokens through gateways and passed their audits, pro rata to those tokens; the rest of the
//! revenue to the treasury. What no provider could take (no traffic, rounding dust) carries
//! into the next epoch's providers' part. Runs inside the registry's settlement, so its reads,
//! writes, payments and logs are the API-access module's by address.

use aicoin_primitives::{
    access::{carried_slot, revenue_slot, served_slot},
    modules::API_ACCESS_ADDRESS,
};
use alloy_primitives::{Address, U256};

use super::IApiAccess;
use crate::{
    call::{CallResult, ModuleCall},
    store::Slots,
};

/// The API-access module's storage, from another module's call.
struct AccessSlots<'c, 'a>(&'c mut ModuleCall<'a>);

impl Slots for AccessSlots<'_, '_> {
    fn load(&mut self, slot: alloy_primitives::B256) -> CallResult<U256> {
        self.0.read_from(API_ACCESS_ADDRESS, slot)
    }

    fn store(&mut self, slot: alloy_primitives::B256, value: U256) -> CallResult<()> {
        self.0.write_to(API_ACCESS_ADDRESS, slot, value)
    }
}

/// The tokens `provider` served through the gateways in `epoch`, as they reported them.
pub fn served(call: &mut ModuleCall<'_>, epoch: u64, provider: Address) -> CallResult<u64> {
    Ok(AccessSlots(call)
        .load(served_slot(epoch, provider))?
        .saturating_to())
}

/// A provider the split may pay: it served `tokens` in the epoch and passed its audits.
#[derive(Debug, Clone, Copy)]
pub struct Earner {
    pub provider: Address,
    pub payout: Address,
    pub tokens: u64,
}

/// Splits `epoch`'s revenue among `earners` and the treasury.
pub fn split(
    call: &mut ModuleCall<'_>,
    epoch: u64,
    treasury: Address,
    earners: &[Earner],
) -> CallResult<()> {
    let provider_bps = call.param("revenueProviderBps")?;
    let mut access = AccessSlots(call);
    let revenue = access.load(revenue_slot(epoch))?;
    let carried_in = access.load(carried_slot(epoch))?;
    if revenue.is_zero() && carried_in.is_zero() {
        return Ok(());
    }
    let providers_part = revenue * provider_bps / U256::from(10_000u64);
    let to_treasury = revenue - providers_part;
    let pool = providers_part + carried_in;
    let total: U256 = earners.iter().map(|e| U256::from(e.tokens)).sum();
    let mut paid = U256::ZERO;
    if !total.is_zero() {
        for earner in earners.iter().filter(|e| e.tokens > 0) {
            let amount = pool * U256::from(earner.tokens) / total;
            paid += amount;
            call.transfer(API_ACCESS_ADDRESS, earner.payout, amount)?;
            call.emit_from(
                API_ACCESS_ADDRESS,
                &IApiAccess::RevenuePaid {
                    epoch,
                    provider: earner.provider,
                    payout: earner.payout,
                    tokens: earner.tokens,
                    amount,
                },
            )?;
        }
    }
    if !to_treasury.is_zero() {
        call.transfer(API_ACCESS_ADDRESS, treasury, to_treasury)?;
    }
    let carried_out = pool - paid;
    if !carried_out.is_zero() {
        let mut access = AccessSlots(call);
        let next = carried_slot(epoch + 1);
        let already = access.load(next)?;
        access.store(next, already + carried_out)?;
    }
    call.emit_from(
        API_ACCESS_ADDRESS,
        &IApiAccess::RevenueSplit {
            epoch,
            revenue,
            carriedIn: carried_in,
            toProviders: paid,
            toTreasury: to_treasury,
            carriedOut: carried_out,
        },
    )
}
