// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title AICoin compute registry (proof-of-compute)
/// @notice A native chain module at 0x0000000000000000000000000000000000a1c002. Compute providers
/// register here with a stake; the validators measure and audit them every epoch and report
/// what they saw; at each epoch's settlement the module scores every provider from the median
/// of those reports (no figure a provider reports about itself is used) and pays the epoch's
/// node share of the block rewards pro rata to score. A failed audit zeroes the epoch's score
/// and slashes part of the stake to the treasury.
///
/// Epoch `e`'s reports are accepted during epoch `e + 1`, and epoch `e` is settled at the end
/// of epoch `e + 1`'s last block.
interface IComputeRegistry {
    /// A model of the chain's model registry.
    struct ModelRecord {
        string id;
        uint64 units;
        string package;
        bytes32 sha256;
        uint64 contextLength;
        uint64 minMemoryMb;
        uint8 category;
    }

    struct ProviderInfo {
        address provider;
        address payout;
        string apiUrl;
        string[] models;
        /// 0 CPU only, 1 GPU. A GPU claim earns the full factor only when the measured
        /// throughput backs it (at least `gpuMinRate`); otherwise the provider is scored as CPU.
        uint8 hardware;
        /// 0 none, 1 active (measured and paid), 2 leaving (stake unbonding), 3 left.
        uint8 status;
        uint256 stake;
        uint64 registeredAt;
        /// First epoch at which a leaving provider may withdraw.
        uint64 unbondingEpoch;
        /// Block since which the provider has been up without a break (0: not up).
        uint64 upSince;
        /// The last settled epoch's score (0-10,000), reward, and the provider's failed audits.
        uint64 lastEpoch;
        uint64 lastScore;
        uint256 lastReward;
        uint64 auditFailures;
    }

    /// What one validator measured of one provider during an epoch.
    struct Measurement {
        address provider;
        /// Challenge jobs sent, answered correctly formed, audited, and failing their audit.
        uint32 jobs;
        uint32 answered;
        uint32 audited;
        uint32 auditFailed;
        /// Median time to first token, in milliseconds.
        uint32 ttftMs;
        /// Tokens generated in the answered jobs.
        uint64 tokens;
        /// Model-adjusted throughput: generated tokens per second times the model's compute
        /// units (from the model list), times 1,000.
        uint64 rate;
    }

    /// A provider's settled epoch: the medians it was scored on, its score parts (basis points)
    /// and its reward.
    struct EpochRecord {
        bool settled;
        uint32 reporters;
        Measurement median;
        bool auditFailed;
        uint64 utilization;
        uint64 throughput;
        uint64 uptime;
        uint64 completion;
        uint64 score;
        uint256 reward;
        uint256 slashed;
    }

    event Registered(address indexed provider, address payout, uint256 stake, string[] models);
    event Updated(address indexed provider, address payout, string apiUrl, string[] models);
    event Leaving(address indexed provider, uint64 unbondingEpoch);
    event Withdrawn(address indexed provider, uint256 amount);
    event ReportSubmitted(uint64 indexed epoch, address indexed validator, uint256 providers);
    event Scored(uint64 indexed epoch, address indexed provider, uint256 score);
    event Reward(uint64 indexed epoch, address indexed provider, address indexed payout, uint256 amount);
    event Slashed(uint64 indexed epoch, address indexed provider, uint256 amount, string reason);
    /// An epoch with no scored provider: its node share went to the settling block's miner.
    /// Governance listed a model (providers may register it from this block on) or delisted one.
    event ModelAdded(string id, uint64 units, string package);
    event ModelRemoved(string id);
    /// Governance made a listed model the network's default.
    event ModelSelected(string id);
    /// Governance suspended a provider in an emergency: it is no longer measured or paid, its
    /// stake unbonds, and it cannot register again.
    event Suspended(address indexed provider);
    event Unclaimed(uint64 indexed epoch, address indexed miner, uint256 amount);
    /// A provider now serves layers [start, end) of `model` as a pipeline shard, or the whole
    /// model again (0, 0).
    event ShardSet(address indexed provider, string model, uint32 start, uint32 end);

    /// Registers the sender as a provider of `models` (each on the model list), reachable at
    /// `apiUrl`, paid to `payout`. The value sent is the stake: at least `minStake`.
    function register(address payout, string calldata apiUrl, string[] calldata models, uint8 hardware)
        external
        payable;
    /// Changes a registered provider's payout address, URL, models and hardware class.
    function update(address payout, string calldata apiUrl, string[] calldata models, uint8 hardware)
        external;
    /// Serves only layers [start, end) of `model`, one of the sender's registered models, as a
    /// pipeline shard that gateways chain with others; (0, 0) serves the whole model again.
    /// Active providers only. `update` dropping the model drops its shard too.
    function setShard(string calldata model, uint32 start, uint32 end) external;
    /// Stops being measured and paid; the stake unbonds for `unbondingEpochs` epochs.
    function leave() external;
    /// Returns the stake of a provider whose unbonding has ended.
    function withdraw() external;
    /// A validator's measurements of epoch `epoch` (the previous one). Authorities only, once
    /// per epoch each.
    function submitReport(uint64 epoch, Measurement[] calldata measurements) external;

    /// The epoch the current block is in, and its last block.
    function currentEpoch() external view returns (uint64 epoch, uint64 lastBlock);
    /// Every provider ever registered (whatever its status), in registration order.
    function providers() external view returns (address[] memory);
    function provider(address account) external view returns (ProviderInfo memory);
    /// The layers [start, end) of `model` that `account` serves as a shard; (0, 0) when it
    /// serves the whole model (or not at all).
    function shardOf(address account, string calldata model) external view returns (uint32 start, uint32 end);
    function epochRecord(address account, uint64 epoch) external view returns (EpochRecord memory);
    /// What `validator` reported of `account` for `epoch` (all zero if nothing).
    function report(uint64 epoch, address validator, address account) external view returns (Measurement memory);
    /// The validators that reported for `epoch`.
    function reporters(uint64 epoch) external view returns (address[] memory);
    /// The node share accrued for `epoch`, paid at its settlement.
    function epochPot(uint64 epoch) external view returns (uint256);
    /// The models providers may register, with each one's compute units per token.
    function models() external view returns (string[] memory ids, uint64[] memory units);

    /// A listed model's record: where its weights come from and what serving it takes
    /// (`category` 0 text, 1 embedding). Reverts when `id` is not listed.
    function model(string calldata id) external view returns (ModelRecord memory);

    /// The network's default model (what a gateway serves a request that names none): the one
    /// governance selected, else the first listed.
    function selectedModel() external view returns (string memory);
    /// The validators whose reports count.
    function authorities() external view returns (address[] memory);

    /// The end-of-block system step: the chain calls it (from the system address) after every
    /// block's transactions, with the node share it just minted to the module, the block's miner
    /// and the treasury (where slashed stake goes). Anyone else's call reverts.
    function endBlock(uint256 nodeShare, address miner, address treasury) external;
}
