//! A proposal as the governance module stores it, and the state it is in at a block.

use aicoin_primitives::{
    governance::{ProposalField, proposal_slot},
    registry::{address_word, word_address},
};
use alloy_primitives::{Address, B256, Bytes, U256};

use super::IGovernance;
use crate::{
    call::CallResult,
    store::{Packed, Slots, load_bytes, store_bytes},
};

/// The longest payload a proposal may carry.
pub const MAX_PAYLOAD: usize = 1_024;

/// Where a proposal stands, numbered as OpenZeppelin's `ProposalState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active = 1,
    Rejected = 3,
    Passed = 4,
    Expired = 6,
    Executed = 7,
}

/// How one voter voted: OpenZeppelin's `support` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Against = 0,
    For = 1,
    Abstain = 2,
}

impl Support {
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Against),
            1 => Some(Self::For),
            2 => Some(Self::Abstain),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposal {
    pub id: u64,
    pub proposer: Address,
    pub kind: u8,
    pub payload: Vec<u8>,
    pub description_hash: B256,
    pub snapshot: u64,
    pub vote_end: u64,
    pub execute_by: u64,
    pub quorum: U256,
    /// For needs this share of For + Against, in basis points (the rule when proposed).
    pub approval_bps: u64,
    pub against: U256,
    pub for_votes: U256,
    pub abstain: U256,
    pub executed: bool,
}

impl Proposal {
    /// Proposal `id` (an empty one, `proposer` zero, when there is none).
    pub fn load(slots: &mut impl Slots, id: u64) -> CallResult<Self> {
        let mut field = |f: ProposalField| slots.load(proposal_slot(id, f));
        let proposer = word_address(field(ProposalField::Proposer)?);
        let state = Packed(field(ProposalField::State)?);
        let description_hash = field(ProposalField::DescriptionHash)?.into();
        let quorum = field(ProposalField::Quorum)?;
        let approval_bps = field(ProposalField::ApprovalBps)?.saturating_to();
        let against = field(ProposalField::Against)?;
        let for_votes = field(ProposalField::For)?;
        let abstain = field(ProposalField::Abstain)?;
        Ok(Self {
            id,
            proposer,
            kind: state.get(0, 8) as u8,
            executed: state.get(8, 8) == 1,
            snapshot: state.get(64, 64),
            vote_end: state.get(128, 64),
            execute_by: state.get(192, 64),
            payload: load_bytes(
                slots,
                proposal_slot(id, ProposalField::Payload),
                MAX_PAYLOAD,
            )?,
            description_hash,
            quorum,
            approval_bps,
            against,
            for_votes,
            abstain,
        })
    }

    fn state_word(&self) -> U256 {
        Packed::default()
            .set(0, 8, self.kind.into())
            .set(8, 8, self.executed.into())
            .set(64, 64, self.snapshot)
            .set(128, 64, self.vote_end)
            .set(192, 64, self.execute_by)
            .0
    }

    /// Writes the whole proposal (when it is made).
    pub fn store(&self, slots: &mut impl Slots) -> CallResult<()> {
        let id = self.id;
        let words = [
            (ProposalField::Proposer, address_word(self.proposer)),
            (ProposalField::State, self.state_word()),
            (ProposalField::DescriptionHash, self.description_hash.into()),
            (ProposalField::Quorum, self.quorum),
            (ProposalField::ApprovalBps, U256::from(self.approval_bps)),
            (ProposalField::Against, self.against),
            (ProposalField::For, self.for_votes),
            (ProposalField::Abstain, self.abstain),
        ];
        for (field, value) in words {
            slots.store(proposal_slot(id, field), value)?;
        }
        store_bytes(
            slots,
            proposal_slot(id, ProposalField::Payload),
            &self.payload,
            MAX_PAYLOAD,
        )
    }

    /// Writes the state word alone (when it is executed).
    pub fn store_state(&self, slots: &mut impl Slots) -> CallResult<()> {
        slots.store(
            proposal_slot(self.id, ProposalField::State),
            self.state_word(),
        )
    }

    pub fn exists(&self) -> bool {
        self.proposer != Address::ZERO
    }

    /// Every vote cast, For, Against and Abstain: what the quorum counts.
    pub fn turnout(&self) -> U256 {
        self.for_votes
            .saturating_add(self.against)
            .saturating_add(self.abstain)
    }

    /// Why the vote did not pass, or `None` when it did.
    pub fn failure(&self) -> Option<String> {
        if self.turnout() < self.quorum {
            return Some(format!(
                "its votes ({} wei) did not reach the quorum ({} wei)",
                self.turnout(),
                self.quorum
            ));
        }
        let decided = self.for_votes.saturating_add(self.against);
        if decided.is_zero()
            || self.for_votes.saturating_mul(U256::from(10_000u64))
                < decided.saturating_mul(U256::from(self.approval_bps))
        {
            return Some(format!(
                "For held {} bps of For + Against, under the {} bps it needed",
                share_bps(self.for_votes, decided),
                self.approval_bps
            ));
        }
        None
    }

    /// Its state at block `number`.
    pub fn state(&self, number: u64) -> State {
        if self.executed {
            State::Executed
        } else if number <= self.vote_end {
            State::Active
        } else if self.failure().is_some() {
            State::Rejected
        } else if number > self.execute_by {
            State::Expired
        } else {
            State::Passed
        }
    }

    /// Adds `weight` to the `support` tally and writes that tally alone.
    pub fn add_vote(
        &mut self,
        slots: &mut impl Slots,
        support: Support,
        weight: U256,
    ) -> CallResult<()> {
        let (tally, field) = match support {
            Support::Against => (&mut self.against, ProposalField::Against),
            Support::For => (&mut self.for_votes, ProposalField::For),
            Support::Abstain => (&mut self.abstain, ProposalField::Abstain),
        };
        *tally = tally.saturating_add(weight);
        slots.store(proposal_slot(self.id, field), *tally)
    }

    pub fn info(&self) -> IGovernance::Proposal {
        IGovernance::Proposal {
            id: U256::from(self.id),
            proposer: self.proposer,
            kind: self.kind,
            payload: Bytes::from(self.payload.clone()),
            descriptionHash: self.description_hash,
            snapshot: self.snapshot,
            voteEnd: self.vote_end,
            executeBy: self.execute_by,
            quorum: self.quorum,
            againstVotes: self.against,
            forVotes: self.for_votes,
            abstainVotes: self.abstain,
            executed: self.executed,
        }
    }
}

fn share_bps(part: U256, whole: U256) -> U256 {
    match whole.is_zero() {
        true => U256::ZERO,
        false => part.saturating_mul(U256::from(10_000u64)) / whole,
    }
}
