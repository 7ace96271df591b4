//! Where the governance module (`IGovernance`, at [`GOVERNANCE_ADDRESS`]) keeps its state: the
//! slot of every value, shared by the module, the genesis that seeds it (the treasury it spends
//! from, the supply issued at genesis) and the readers that show proposals (the CLI, the RPC).
//! Slots are tagged keccak hashes, as in [`crate::registry`].
//!
//! [`GOVERNANCE_ADDRESS`]: crate::modules::GOVERNANCE_ADDRESS

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};

use crate::registry::address_word;

fn hash(tag: &str, parts: &[&[u8]]) -> B256 {
    crate::registry::tagged_slot("governance", tag, parts)
}

/// The supply issued so far (genesis plus every block's reward), written by the end-of-block
/// system step, so the supply at any past block is in the state's history.
pub fn supply_slot() -> B256 {
    hash("supply", &[])
}

/// The issuance cap (the chain spec's `max_supply`), which parameter changes may not lift
/// issuance past.
pub fn max_supply_slot() -> B256 {
    hash("max_supply", &[])
}

/// The account treasury spends are paid from (the chain spec's treasury).
pub fn treasury_slot() -> B256 {
    hash("treasury", &[])
}

/// The protocol upgrade governance scheduled last: its version (a string) and, at the next
/// slot, its activation block.
pub fn upgrade_slot() -> B256 {
    hash("upgrade", &[])
}

pub fn upgrade_height_slot() -> B256 {
    hash("upgrade.height", &[])
}

/// Nonzero while an emergency proposal has paused API-tier purchases.
pub fn purchases_paused_slot() -> B256 {
    hash("purchases.paused", &[])
}

/// How many proposals exist (ids run from 1).
pub fn count_slot() -> B256 {
    hash("count", &[])
}

/// The fields of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalField {
    Proposer = 0,
    /// `kind | executed << 8 | snapshot << 64 | vote_end << 128 | execute_by << 192`.
    State = 1,
    /// The payload, as Solidity stores `bytes`.
    Payload = 2,
    DescriptionHash = 3,
    Quorum = 4,
    Against = 5,
    For = 6,
    Abstain = 7,
    /// The share of For + Against that For needs, bps (the rule when it was proposed).
    ApprovalBps = 8,
}

pub fn proposal_slot(id: u64, field: ProposalField) -> B256 {
    let base = U256::from_be_bytes(hash("proposal", &[&id.to_be_bytes()]).0);
    (base + U256::from(field as u64)).into()
}

/// Nonzero once `voter` voted on proposal `id`.
pub fn voted_slot(id: u64, voter: Address) -> B256 {
    hash("voted", &[&id.to_be_bytes(), voter.as_slice()])
}

/// The module's genesis storage: the treasury, the cap, and the supply issued at genesis.
pub fn genesis_storage(
    treasury: Address,
    max_supply: U256,
    genesis_supply: U256,
) -> BTreeMap<B256, B256> {
    [
        (treasury_slot(), address_word(treasury)),
        (max_supply_slot(), max_supply),
        (supply_slot(), genesis_supply),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_zero())
    .map(|(k, v)| (k, B256::from(v)))
    .collect()
}
