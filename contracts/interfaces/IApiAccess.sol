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
///
/// Gateways serve the paid API in front of the compute providers. Validators (the chain's
/// authorities, trusted as they are for blocks) add and remove them; a registered gateway's
/// token counts are taken as reported. During epoch e + 1 each gateway reports, once, the tokens
/// every provider served through it in epoch e. When the registry settles epoch e (the last
/// block of e + 1), epoch e's revenue is split: `revenueProviderBps` (80%) to the payouts of
/// the providers that served tokens and passed their audits, pro rata to those tokens, and the
/// rest to the treasury. With no such provider (or rounding dust), the providers' part carries
/// into epoch e + 1's split. The same token counts add to each provider's utilization score.
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

    struct Gateway {
        address gateway;
        /// Its public OpenAI-compatible base URL.
        string url;
    }

    /// Tokens (prompt and completion) a provider served through a gateway in an epoch.
    struct Usage {
        address provider;
        uint64 tokens;
    }

    event Purchased(address indexed account, uint8 tier, uint256 price, uint64 expiresAt);
    event KeysRevoked(address indexed account, uint64 keyGeneration);
    event GatewayAdded(address indexed gateway, string url, address addedBy);
    event GatewayRemoved(address indexed gateway, address removedBy);
    event UsageReported(uint64 indexed epoch, address indexed gateway, uint256 providers, uint256 tokens);
    /// Epoch `epoch`'s split: `revenue` bought in it, plus `carriedIn` from earlier epochs' provider
    /// parts; `toProviders` paid, `toTreasury` paid, `carriedOut` into the next epoch.
    event RevenueSplit(
        uint64 indexed epoch,
        uint256 revenue,
        uint256 carriedIn,
        uint256 toProviders,
        uint256 toTreasury,
        uint256 carriedOut
    );
    event RevenuePaid(uint64 indexed epoch, address indexed provider, address payout, uint64 tokens, uint256 amount);

    /// Buys `tier` (payable: exactly its price); returns when the subscription now expires.
    function buy(uint8 tier) external payable returns (uint64 expiresAt);

    /// Revokes every API key the sender signed so far; returns the new key generation.
    function revokeKeys() external returns (uint64 keyGeneration);

    /// `account`'s subscription at this block, with its tier's quotas (zero when inactive).
    function subscription(address account) external view returns (Subscription memory);

    /// The purchases made during proof-of-compute epoch `epoch`, in wei.
    function revenue(uint64 epoch) external view returns (uint256);

    /// Adds (or re-addresses) a gateway; only a validator may.
    function addGateway(address gateway, string calldata url) external;

    /// Removes a gateway; only a validator may. Its later reports are refused (one already
    /// taken stays counted), and providers no longer serve it.
    function removeGateway(address gateway) external;

    function gateways() external view returns (Gateway[] memory);

    function isGateway(address account) external view returns (bool);

    /// A gateway's once-per-epoch report of the tokens each provider served through it in the
    /// previous epoch (only registered providers, each once).
    function reportUsage(uint64 epoch, Usage[] calldata usage) external;

    /// The tokens `provider` served through all gateways in `epoch`, as reported so far.
    function served(uint64 epoch, address provider) external view returns (uint64);

    /// Whether `gateway` reported `epoch`.
    function reported(uint64 epoch, address gateway) external view returns (bool);
}
