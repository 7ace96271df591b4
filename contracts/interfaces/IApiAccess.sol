// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title AICoin API access
/// @notice A native chain module at 0x0000000000000000000000000000000000a1c003. Buying a tier
/// (1 Basic, 2 Standard, 3 Premium; prices, quotas and the period are IParams parameters) gives
/// the sender a subscription to the network's paid inference API for `subscriptionBlocks`:
/// - with no active subscription, it starts now;
/// - the same tier again extends it by a period from its current end;
/// - a higher tier upgrades it now, the unused part of the old tier credited at its price as
///   extra blocks of the new one;
/// - a lower tier is refused while the higher one is active.
/// The payment must be the tier's price exactly. Purchases accrue as the current epoch's revenue.
/// API keys are EIP-712 messages the owner signs with its current key generation; revokeKeys()
/// bumps the generation, so every key signed before is refused.
interface IApiAccess {
    struct Subscription {
        /// 0 none, 1 Basic, 2 Standard, 3 Premium.
        uint8 tier;
        /// The first block it no longer covers.
        uint64 expiresAt;
        bool active;
        uint64 keyGeneration;
        uint256 requestsPerMinute;
        uint256 tokensPerDay;
    }

    event Purchased(address indexed account, uint8 tier, uint256 price, uint64 expiresAt);
    event KeysRevoked(address indexed account, uint64 keyGeneration);

    /// Buys `tier` (payable: exactly its price); returns when the subscription now expires.
    function buy(uint8 tier) external payable returns (uint64 expiresAt);

    /// Revokes every API key the sender signed so far; returns the new key generation.
    function revokeKeys() external returns (uint64 keyGeneration);

    /// `account`'s subscription at this block, with its tier's quotas (zero when inactive).
    function subscription(address account) external view returns (Subscription memory);

    /// The purchases made during proof-of-compute epoch `epoch`, in wei.
    function revenue(uint64 epoch) external view returns (uint256);
}
