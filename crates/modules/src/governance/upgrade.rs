//! Protocol upgrade signals: a passed proposal records a version and the block it is the
//! chain's from. Nothing changes on chain at that block; nodes older than the version say so
//! (logs, `aic_upgrade`, the MetaMask page), so operators upgrade before it.

use aicoin_primitives::governance::{upgrade_height_slot, upgrade_slot};
use alloy_primitives::U256;

use super::IGovernance;
use crate::{
    call::{CallResult, Exit, ModuleCall},
    store::{Slots, load_string, store_string},
};

/// The longest version string accepted.
const MAX_VERSION: usize = 64;

/// An upgrade governance scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub version: semver::Version,
    pub activation: u64,
}

impl Upgrade {
    /// Whether this upgrade's version is above `version` (a node's `CARGO_PKG_VERSION`; one that
    /// does not parse counts as older).
    pub fn is_newer_than(&self, version: &str) -> bool {
        semver::Version::parse(version).map_or(true, |v| self.version > v)
    }
}

/// The last upgrade scheduled, if any.
pub fn scheduled(slots: &mut impl Slots) -> CallResult<Option<Upgrade>> {
    let text = load_string(slots, upgrade_slot())?;
    if text.is_empty() {
        return Ok(None);
    }
    let version = semver::Version::parse(&text)
        .map_err(|_| Exit::Fatal(format!("corrupt governance state: version {text:?}")))?;
    let activation = slots.load(upgrade_height_slot())?.saturating_to();
    Ok(Some(Upgrade {
        version,
        activation,
    }))
}

/// Reverts unless `version` is a semantic version above the one scheduled before and
/// `activation` a block after this one.
pub fn check(call: &mut ModuleCall<'_>, version: &str, activation: u64) -> CallResult<()> {
    let parsed = semver::Version::parse(version)
        .ok()
        .filter(|_| version.len() <= MAX_VERSION)
        .ok_or_else(|| {
            Exit::revert(format!(
                "IGovernance: {version:?} is not a semantic version such as 0.8.0"
            ))
        })?;
    let now = call.block_number();
    if activation <= now {
        return Err(Exit::revert(format!(
            "IGovernance: the activation block {activation} is not after this block {now}"
        )));
    }
    if let Some(before) = scheduled(call)?
        && parsed <= before.version
    {
        return Err(Exit::revert(format!(
            "IGovernance: version {version} is not above the {} already scheduled",
            before.version
        )));
    }
    Ok(())
}

/// Records the upgrade (after [`check`]).
pub fn schedule(
    call: &mut ModuleCall<'_>,
    proposal: u64,
    version: &str,
    activation: u64,
) -> CallResult<()> {
    store_string(call, upgrade_slot(), version)?;
    call.store(upgrade_height_slot(), U256::from(activation))?;
    call.emit(&IGovernance::UpgradeScheduled {
        proposalId: U256::from(proposal),
        version: version.to_string(),
        activationBlock: activation,
    })
}
