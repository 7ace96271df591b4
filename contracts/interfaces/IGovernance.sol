// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title AICoin governance
/// @notice A native chain module at 0x0000000000000000000000000000000000a1c004. Holders of at
/// least `minProposerBalance` propose; every holder votes with the balance it held at the
/// proposal's snapshot (the block before the proposal), read from the chain's history, so coins
/// moved after the snapshot vote nowhere else. A proposal passes when its votes (For, Against
/// and Abstain) reach `quorumBps` of the supply issued at the snapshot and For holds at least
/// `approvalBps` of For + Against. Anyone may then `execute` it, within
/// `executionWindowBlocks` of the vote's end; it takes effect in the block that executes it.
///
/// Proposal kinds and their payloads (ABI-encoded):
///   0 parameter change: (bytes32 key, uint256 value), a key of IParams
///   1 treasury spend:   (address to, uint256 amount), paid from the treasury
///   2 model add:        (string id, string package, bytes32 sha256, uint64 contextLength,
///                        uint64 minMemoryMb, uint8 category, uint64 units), listed in the
///                        compute registry's model registry (IComputeRegistry.model)
///   3 model remove:     (string id); the last listed model cannot be removed
///   4 protocol upgrade: (string version, uint64 activationBlock): a semantic version above the
///                        one scheduled before, from a future block; nodes older than it warn
///   5 emergency:        (uint8 action, address provider), voted on for emergencyVotingBlocks
///                        (24 h): 0 pause API-tier purchases, 1 resume them, 2 suspend a
///                        provider (no longer measured or paid, stake unbonding, never again)
///   6 model select:     (string id), a listed model, the network's default from then on
///                        (IComputeRegistry.selectedModel); it cannot be removed while selected
///
/// Events, vote support values and states follow OpenZeppelin's Governor, so tools that read
/// Governor read these.
interface IGovernance {
    /// A proposal as stored.
    struct Proposal {
        uint256 id;
        address proposer;
        uint8 kind;
        bytes payload;
        /// keccak256 of the description (the text itself is in ProposalCreated).
        bytes32 descriptionHash;
        /// Votes weigh balances at the end of this block; the quorum is taken from its supply.
        uint64 snapshot;
        /// The last block in which votes are taken.
        uint64 voteEnd;
        /// The last block in which a passed proposal can be executed.
        uint64 executeBy;
        uint256 quorum;
        uint256 againstVotes;
        uint256 forVotes;
        uint256 abstainVotes;
        bool executed;
    }

    /// OpenZeppelin's Governor event. `targets[0]` is the module or account the proposal acts
    /// on, `values[0]` the AIC it moves, `calldatas[0]` the payload.
    event ProposalCreated(
        uint256 proposalId,
        address proposer,
        address[] targets,
        uint256[] values,
        string[] signatures,
        bytes[] calldatas,
        uint256 voteStart,
        uint256 voteEnd,
        string description
    );
    /// `support`: 0 Against, 1 For, 2 Abstain. `weight` is the voter's balance at the snapshot.
    event VoteCast(address indexed voter, uint256 proposalId, uint8 support, uint256 weight, string reason);
    event ProposalExecuted(uint256 proposalId);
    /// A treasury spend was paid.
    event TreasurySpent(uint256 indexed proposalId, address indexed to, uint256 amount);
    /// An emergency proposal paused (or resumed) API-tier purchases.
    event PurchasesPaused(bool paused);
    /// Protocol `version` is the chain's from `activationBlock` on: nodes older than it say so.
    event UpgradeScheduled(uint256 indexed proposalId, string version, uint64 activationBlock);

    /// Creates a proposal; returns its id (1, 2, …). Reverts when the sender held less than
    /// `minProposerBalance` at the snapshot, or when the payload does not hold for its kind: an
    /// unknown parameter, a value out of its bounds, an issuance change that would pass the 21M
    /// cap, a spend larger than the treasury, a model already listed, or the last model's removal.
    function propose(uint8 kind, bytes calldata payload, string calldata description)
        external
        returns (uint256 proposalId);

    /// Votes on an active proposal with the sender's balance at its snapshot; returns that
    /// weight. `support`: 0 Against, 1 For, 2 Abstain. A second vote from one address reverts.
    function vote(uint256 proposalId, uint8 support) external returns (uint256 weight);

    /// Carries out a passed proposal. Reverts, with the reason, while the vote is open, when the
    /// proposal was rejected, executed or expired, or when its payload no longer holds.
    function execute(uint256 proposalId) external;

    /// Numbered as OpenZeppelin's ProposalState: 1 Active, 3 Rejected (Defeated), 4 Passed
    /// (Succeeded), 6 Expired, 7 Executed.
    function state(uint256 proposalId) external view returns (uint8);
    function proposal(uint256 proposalId) external view returns (Proposal memory);
    /// How many proposals there are; ids run from 1 to this.
    function proposalCount() external view returns (uint256);
    function proposalSnapshot(uint256 proposalId) external view returns (uint256);
    function proposalDeadline(uint256 proposalId) external view returns (uint256);
    function proposalVotes(uint256 proposalId)
        external
        view
        returns (uint256 againstVotes, uint256 forVotes, uint256 abstainVotes);
    function hasVoted(uint256 proposalId, address account) external view returns (bool);
    /// `account`'s voting weight at the end of block `blockNumber`: its balance there. Only
    /// blocks before the current one can be asked.
    function getVotes(address account, uint256 blockNumber) external view returns (uint256);
    /// The supply issued at the end of block `blockNumber` (before the current one).
    function supplyAt(uint256 blockNumber) external view returns (uint256);
    /// Whether an emergency proposal paused API-tier purchases.
    function purchasesPaused() external view returns (bool);
    /// The last protocol upgrade governance scheduled ("" and 0 when none).
    function upgrade() external view returns (string memory version, uint64 activationBlock);
}
