//! The gateways the network takes usage reports from: validators add and remove them, and each
//! reports once per epoch the tokens every provider served through it in the epoch before.

use aicoin_primitives::{
    access::{gateway_url_slot, gateways_slot, served_slot, usage_reported_slot},
    registry::{address_word, authorities_slot, element},
};
use alloy_primitives::{Address, U256};

use super::IApiAccess::{self, Usage};
use crate::{
    call::{CallResult, Exit, ModuleCall},
    registry::{
        models::Registry,
        state::{Epoch, Provider, Status},
    },
    store::{MAX_STRING, Slots, load_addresses, load_string, push_address, store_string},
};

fn only_validators(call: &mut ModuleCall<'_>, what: &str) -> CallResult<()> {
    let caller = call.caller();
    if !load_addresses(&mut Registry(call), authorities_slot())?.contains(&caller) {
        return Err(Exit::revert(format!(
            "IApiAccess: only validators {what}; {caller} is not an authority"
        )));
    }
    Ok(())
}

pub fn is_gateway(slots: &mut impl Slots, account: Address) -> CallResult<bool> {
    Ok(!slots.load(gateway_url_slot(account))?.is_zero())
}

/// Every registered gateway with its URL.
pub fn list(slots: &mut impl Slots) -> CallResult<Vec<IApiAccess::Gateway>> {
    load_addresses(slots, gateways_slot())?
        .into_iter()
        .map(|gateway| {
            Ok(IApiAccess::Gateway {
                gateway,
                url: load_string(slots, gateway_url_slot(gateway))?,
            })
        })
        .collect()
}

pub fn add(call: &mut ModuleCall<'_>, gateway: Address, url: &str) -> CallResult<()> {
    only_validators(call, "add gateways")?;
    if gateway.is_zero() {
        return Err(Exit::revert("IApiAccess: the gateway address is zero"));
    }
    if url.len() > MAX_STRING || !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Exit::revert(format!(
            "IApiAccess: the gateway URL must be an http:// or https:// URL of at most {MAX_STRING} bytes"
        )));
    }
    if !is_gateway(call, gateway)? {
        push_address(call, gateways_slot(), gateway)?;
    }
    store_string(call, gateway_url_slot(gateway), url)?;
    let added_by = call.caller();
    call.emit(&IApiAccess::GatewayAdded {
        gateway,
        url: url.to_string(),
        addedBy: added_by,
    })
}

pub fn remove(call: &mut ModuleCall<'_>, gateway: Address) -> CallResult<()> {
    only_validators(call, "remove gateways")?;
    let gateways = load_addresses(call, gateways_slot())?;
    let Some(index) = gateways.iter().position(|g| *g == gateway) else {
        return Err(Exit::revert(format!(
            "IApiAccess: {gateway} is not a registered gateway"
        )));
    };
    // The last element takes the removed one's place.
    let last = gateways.len() as u64 - 1;
    call.store(
        element(gateways_slot(), index as u64),
        address_word(gateways[last as usize]),
    )?;
    call.store(element(gateways_slot(), last), U256::ZERO)?;
    call.store(gateways_slot(), U256::from(last))?;
    store_string(call, gateway_url_slot(gateway), "")?;
    let removed_by = call.caller();
    call.emit(&IApiAccess::GatewayRemoved {
        gateway,
        removedBy: removed_by,
    })
}

/// `reportUsage`: from a registered gateway, for the previous epoch, once; registered providers
/// only, each once, with tokens.
pub fn report(call: &mut ModuleCall<'_>, epoch: u64, usage: &[Usage]) -> CallResult<()> {
    let gateway = call.caller();
    if !is_gateway(call, gateway)? {
        return Err(Exit::revert(format!(
            "IApiAccess: only registered gateways report usage; {gateway} is not one"
        )));
    }
    let current = Epoch::load(&mut Registry(call))?.number;
    if current == 0 || epoch != current - 1 {
        return Err(Exit::revert(format!(
            "IApiAccess: usage of epoch {epoch} is not accepted during epoch {current} (only \
             the previous epoch's is)"
        )));
    }
    if !call.load(usage_reported_slot(epoch, gateway))?.is_zero() {
        return Err(Exit::revert(format!(
            "IApiAccess: {gateway} already reported epoch {epoch}"
        )));
    }
    let mut total = 0u64;
    for (i, entry) in usage.iter().enumerate() {
        let problem = if usage[..i].iter().any(|u| u.provider == entry.provider) {
            Some("names a provider twice")
        } else if entry.tokens == 0 {
            Some("has no tokens (leave out a provider that served none)")
        } else if !matches!(
            Provider::status(&mut Registry(call), entry.provider)?,
            Status::Active | Status::Leaving
        ) {
            Some("names an address that is not a registered provider")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Exit::revert(format!(
                "IApiAccess: usage entry {i} ({}) {problem}",
                entry.provider
            )));
        }
        let slot = served_slot(epoch, entry.provider);
        let served = call.load(slot)?;
        call.store(slot, served.saturating_add(U256::from(entry.tokens)))?;
        total = total.saturating_add(entry.tokens);
    }
    call.store(usage_reported_slot(epoch, gateway), U256::ONE)?;
    call.emit(&IApiAccess::UsageReported {
        epoch,
        gateway,
        providers: U256::from(usage.len()),
        tokens: U256::from(total),
    })
}
