//! The governance module (`contracts/interfaces/IGovernance.sol`): proposals by holders of at
//! least `minProposerBalance`, votes weighed by each voter's balance at the proposal's snapshot
//! (read from the chain's history), a quorum of the supply issued at the snapshot, and the
//! execution of passed proposals ([`action`]). Its end-of-block system step records the supply
//! issued so far, so the supply at every past block is in the state's history.

pub mod action;
pub mod state;
#[cfg(test)]
mod tests;
pub mod upgrade;

use aicoin_primitives::governance::{count_slot, purchases_paused_slot, supply_slot, voted_slot};
use alloy_primitives::{Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolInterface};

use crate::{
    call::{CallResult, Exit, ModuleCall},
    store::Slots,
};
use action::Action;
use state::{Proposal, State, Support};

// Governor's `ProposalCreated` has nine fields; the generated constructor takes each.
#[allow(clippy::too_many_arguments)]
mod interface {
    alloy_sol_types::sol!("../../contracts/interfaces/IGovernance.sol");
}
pub use interface::IGovernance;

use IGovernance::IGovernanceCalls as Call;

/// The system step's call: the supply issued once this block's reward is paid.
pub fn end_block_call(supply: U256) -> Vec<u8> {
    supply.to_be_bytes::<32>().to_vec()
}

/// Answers one call to `IGovernance`.
pub fn call(call: &mut ModuleCall<'_>) -> CallResult<Bytes> {
    if call.is_system() {
        return end_block(call);
    }
    call.charge_input()?;
    if !call.input.value.is_zero() {
        return Err(Exit::revert("IGovernance: does not accept AIC"));
    }
    // Validating: a `uint8` of 257 or an address with high bits set is refused, not truncated,
    // and a description must be UTF-8 (its hash is of the bytes sent).
    let decoded = Call::abi_decode_validate(call.input.data).map_err(|_| {
        Exit::revert(match call.input.data.get(..4) {
            Some(selector) => format!(
                "IGovernance: no function with selector 0x{}, or malformed call data",
                alloy_primitives::hex::encode(selector)
            ),
            None => "IGovernance: call data shorter than a function selector".to_string(),
        })
    })?;
    Ok(match decoded {
        Call::propose(c) => {
            let id = propose(call, c.kind, &c.payload, &c.description)?;
            IGovernance::proposeCall::abi_encode_returns(&U256::from(id)).into()
        }
        Call::vote(c) => {
            let weight = vote(call, id(c.proposalId)?, c.support)?;
            IGovernance::voteCall::abi_encode_returns(&weight).into()
        }
        Call::execute(c) => {
            execute(call, id(c.proposalId)?)?;
            Bytes::new()
        }
        Call::state(c) => {
            let now = call.block_number();
            let state = existing(call, c.proposalId)?.state(now) as u8;
            IGovernance::stateCall::abi_encode_returns(&state).into()
        }
        Call::proposal(c) => {
            IGovernance::proposalCall::abi_encode_returns(&existing(call, c.proposalId)?.info())
                .into()
        }
        Call::proposalCount(_) => {
            IGovernance::proposalCountCall::abi_encode_returns(&call.load(count_slot())?).into()
        }
        Call::proposalSnapshot(c) => IGovernance::proposalSnapshotCall::abi_encode_returns(
            &U256::from(existing(call, c.proposalId)?.snapshot),
        )
        .into(),
        Call::proposalDeadline(c) => IGovernance::proposalDeadlineCall::abi_encode_returns(
            &U256::from(existing(call, c.proposalId)?.vote_end),
        )
        .into(),
        Call::proposalVotes(c) => {
            let p = existing(call, c.proposalId)?;
            IGovernance::proposalVotesCall::abi_encode_returns(&IGovernance::proposalVotesReturn {
                againstVotes: p.against,
                forVotes: p.for_votes,
                abstainVotes: p.abstain,
            })
            .into()
        }
        Call::hasVoted(c) => {
            let voted = !call
                .load(voted_slot(id(c.proposalId)?, c.account))?
                .is_zero();
            IGovernance::hasVotedCall::abi_encode_returns(&voted).into()
        }
        Call::getVotes(c) => {
            let weight = call.balance_at(c.account, block(c.blockNumber)?)?;
            IGovernance::getVotesCall::abi_encode_returns(&weight).into()
        }
        Call::purchasesPaused(_) => {
            let paused = !call.load(purchases_paused_slot())?.is_zero();
            IGovernance::purchasesPausedCall::abi_encode_returns(&paused).into()
        }
        Call::upgrade(_) => {
            let (version, activation) = match upgrade::scheduled(call)? {
                Some(u) => (u.version.to_string(), u.activation),
                None => (String::new(), 0),
            };
            IGovernance::upgradeCall::abi_encode_returns(&IGovernance::upgradeReturn {
                version,
                activationBlock: activation,
            })
            .into()
        }
        Call::supplyAt(c) => {
            let supply = call.read_at(supply_slot(), block(c.blockNumber)?)?;
            IGovernance::supplyAtCall::abi_encode_returns(&supply).into()
        }
    })
}

fn id(value: U256) -> CallResult<u64> {
    u64::try_from(value).map_err(|_| Exit::revert(format!("IGovernance: no proposal {value}")))
}

fn block(value: U256) -> CallResult<u64> {
    u64::try_from(value).map_err(|_| Exit::revert(format!("IGovernance: no block {value}")))
}

fn existing(call: &mut ModuleCall<'_>, id: U256) -> CallResult<Proposal> {
    let proposal = Proposal::load(call, self::id(id)?)?;
    if !proposal.exists() {
        return Err(Exit::revert(format!("IGovernance: no proposal {id}")));
    }
    Ok(proposal)
}

/// The end-of-block system step: records the supply issued once this block's reward is paid.
/// (Only block execution calls as the system address: no transaction can be sent from it, and
/// the RPC refuses calls from it.)
fn end_block(call: &mut ModuleCall<'_>) -> CallResult<Bytes> {
    let supply = <[u8; 32]>::try_from(call.input.data)
        .map(U256::from_be_bytes)
        .map_err(|_| {
            Exit::Fatal("the governance system step takes the supply (32 bytes)".into())
        })?;
    call.store(supply_slot(), supply)?;
    Ok(Bytes::new())
}

fn propose(
    call: &mut ModuleCall<'_>,
    kind: u8,
    payload: &[u8],
    description: &str,
) -> CallResult<u64> {
    let now = call.block_number();
    let snapshot = now
        .checked_sub(1)
        .ok_or_else(|| Exit::revert("IGovernance: no proposals at genesis"))?;
    let proposer = call.caller();
    let held = call.balance_at(proposer, snapshot)?;
    let needed = call.param("minProposerBalance")?;
    if held < needed {
        return Err(Exit::revert(format!(
            "IGovernance: proposing needs a balance of {needed} wei at the snapshot (block \
             {snapshot}); {proposer} held {held} wei"
        )));
    }
    let action = Action::decode(kind, payload)?;
    action.check(call)?;
    let supply = call.read_at(supply_slot(), snapshot)?;
    let quorum = supply.saturating_mul(call.param("quorumBps")?) / U256::from(10_000u64);
    // Governor's deadline: votes are taken in the `votingBlocks` blocks after the snapshot
    // (`emergencyVotingBlocks` for an emergency).
    let period = match action.is_emergency() {
        true => call.param_u64("emergencyVotingBlocks")?,
        false => call.param_u64("votingBlocks")?,
    };
    let vote_end = snapshot.saturating_add(period);
    let id = call.load(count_slot())?.saturating_to::<u64>() + 1;
    let proposal = Proposal {
        id,
        proposer,
        kind,
        payload: payload.to_vec(),
        description_hash: keccak256(description.as_bytes()),
        snapshot,
        vote_end,
        execute_by: vote_end.saturating_add(call.param_u64("executionWindowBlocks")?),
        quorum,
        approval_bps: call.param_u64("approvalBps")?,
        ..Proposal::default()
    };
    proposal.store(call)?;
    call.store(count_slot(), U256::from(id))?;
    let (target, value) = action.target(call)?;
    call.emit(&IGovernance::ProposalCreated {
        proposalId: U256::from(id),
        proposer,
        targets: vec![target],
        values: vec![value],
        signatures: vec![String::new()],
        calldatas: vec![Bytes::from(payload.to_vec())],
        // Governor's `voteStart` is the snapshot: tools ask `getVotes(voter, voteStart)`.
        voteStart: U256::from(snapshot),
        voteEnd: U256::from(vote_end),
        description: description.to_string(),
    })?;
    Ok(id)
}

fn vote(call: &mut ModuleCall<'_>, id: u64, support: u8) -> CallResult<U256> {
    let mut proposal = existing(call, U256::from(id))?;
    let now = call.block_number();
    if proposal.state(now) != State::Active {
        return Err(Exit::revert(format!(
            "IGovernance: voting on proposal {id} ended at block {}",
            proposal.vote_end
        )));
    }
    let support_value = Support::from_u8(support).ok_or_else(|| {
        Exit::revert(format!(
            "IGovernance: support {support} is none of 0 Against, 1 For, 2 Abstain"
        ))
    })?;
    let voter = call.caller();
    if !call.load(voted_slot(id, voter))?.is_zero() {
        return Err(Exit::revert(format!(
            "IGovernance: {voter} already voted on proposal {id}"
        )));
    }
    let weight = call.balance_at(voter, proposal.snapshot)?;
    if weight.is_zero() {
        return Err(Exit::revert(format!(
            "IGovernance: {voter} held no AIC at proposal {id}'s snapshot (block {}), so it \
             has no vote",
            proposal.snapshot
        )));
    }
    call.store(voted_slot(id, voter), U256::from(support) + U256::ONE)?;
    proposal.add_vote(call, support_value, weight)?;
    call.emit(&IGovernance::VoteCast {
        voter,
        proposalId: U256::from(id),
        support,
        weight,
        reason: String::new(),
    })?;
    Ok(weight)
}

fn execute(call: &mut ModuleCall<'_>, id: u64) -> CallResult<()> {
    let mut proposal = existing(call, U256::from(id))?;
    let now = call.block_number();
    let refusal = match proposal.state(now) {
        State::Passed => None,
        State::Active => Some(format!(
            "is still being voted on, until block {}",
            proposal.vote_end
        )),
        State::Rejected => Some(format!(
            "was rejected: {}",
            proposal.failure().unwrap_or_default()
        )),
        State::Executed => Some("was already executed".to_string()),
        State::Expired => Some(format!(
            "expired unexecuted after block {}",
            proposal.execute_by
        )),
    };
    if let Some(why) = refusal {
        return Err(Exit::revert(format!("IGovernance: proposal {id} {why}")));
    }
    let action = Action::decode(proposal.kind, &proposal.payload)?;
    action.check(call)?;
    proposal.executed = true;
    proposal.store_state(call)?;
    action.apply(call, id)?;
    call.emit(&IGovernance::ProposalExecuted {
        proposalId: U256::from(id),
    })
}
