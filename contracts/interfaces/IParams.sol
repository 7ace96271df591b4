// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title AICoin chain parameters
/// @notice A native chain module at 0x0000000000000000000000000000000000a1c001. Every value the
/// chain's rules read that may change after genesis: the issuance schedule (always capped at
/// 21M AIC), proof-of-compute epochs, stake and slashing, and the API tiers. Keys are the
/// parameters' names left-aligned in a bytes32 (ethers: encodeBytes32String("epochLength")).
/// Values are read at any block with an ordinary eth_call; only governance can change them.
interface IParams {
    /// A parameter took a new value, effective from the block that emitted this event.
    event ParamChanged(bytes32 indexed key, uint256 previous, uint256 value);

    /// The value of parameter `key`. Reverts for an unknown key.
    function get(bytes32 key) external view returns (uint256);

    /// Every parameter's key and value, in a fixed order.
    function all() external view returns (bytes32[] memory keys, uint256[] memory values);

    /// Nominal reward of the first halving era, in wei.
    function initialReward() external view returns (uint256);
    /// Blocks per halving era.
    function halvingInterval() external view returns (uint256);
    /// Share of each block reward paid to the treasury, in basis points.
    function treasuryShareBps() external view returns (uint256);
    /// Blocks per proof-of-compute epoch.
    function epochLength() external view returns (uint256);
    /// Least stake a compute provider locks to register, in wei.
    function minStake() external view returns (uint256);
    /// Share of a provider's stake slashed for a failed audit, in basis points.
    function slashBps() external view returns (uint256);
    /// Blocks an API-tier subscription lasts.
    function subscriptionBlocks() external view returns (uint256);
    /// An API tier (1 Basic, 2 Standard, 3 Premium): its price in wei and its quotas.
    function tier(uint8 id)
        external
        view
        returns (uint256 price, uint256 requestsPerMinute, uint256 tokensPerDay);

    /// Always reverts: parameters change only when a governance proposal (IGovernance at
    /// 0x…a1c004, kind 0) passes and is executed, which emits ParamChanged from this address.
    function set(bytes32 key, uint256 value) external;
}
