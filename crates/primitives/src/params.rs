//! Chain parameters: every value the chain's rules read that may change after genesis. They
//! live in the parameters module's EVM storage (one slot per parameter, keyed by its name as a
//! left-aligned `bytes32`), so "the parameters at block N" is the state at block N, and only
//! governance will be able to write them. Genesis values come from the chain spec.
//!
//! The issuance cap (`max_supply`) is not a parameter: it is an invariant of the reward code.

use alloy_primitives::{B256, U256};

use crate::tokenomics::{AIC, BPS_DENOMINATOR, Tokenomics};

/// Blocks in a day at the default 3 s interval.
const DAY_BLOCKS: u64 = 28_800;

macro_rules! params {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $name:literal = $default:expr, min $min:expr, max $max:expr;
    )*) => {
        /// Every chain parameter's value (all as `uint256`, the type of a storage slot).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Params {
            $($(#[doc = $doc])* pub $field: U256,)*
        }

        /// Every parameter: its name (the key, left-aligned in a `bytes32`) and bounds.
        pub const PARAMS: &[ParamDef] = &[$(ParamDef {
            name: $name,
            min: $min,
            max: $max,
        },)*];

        impl Default for Params {
            /// The published AICoin values.
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl Params {
            /// The value of the parameter called `name`.
            pub fn get(&self, name: &str) -> Option<U256> {
                match name {
                    $($name => Some(self.$field),)*
                    _ => None,
                }
            }

            fn slot_mut(&mut self, name: &str) -> Option<&mut U256> {
                match name {
                    $($name => Some(&mut self.$field),)*
                    _ => None,
                }
            }
        }
    };
}

params! {
    /// Nominal reward of the first halving era, in wei.
    initial_reward: "initialReward" = AIC * U256::from(50u64), min U256::ZERO, max AIC_MILLION;
    /// Blocks per halving era.
    halving_interval: "halvingInterval" = U256::from(210_000u64), min U256::ONE, max U64_MAX;
    /// Share of each block reward paid to the treasury, in basis points.
    treasury_share_bps: "treasuryShareBps" = U256::from(2_000u64), min U256::ZERO, max BPS;
    /// Blocks per proof-of-compute epoch.
    epoch_length: "epochLength" = U256::from(100u64), min U256::ONE, max U64_MAX;
    /// Least stake a compute provider locks to register, in wei.
    min_stake: "minStake" = AIC * U256::from(100u64), min U256::ZERO, max AIC_MILLION;
    /// Share of a provider's stake slashed for a failed audit, in basis points.
    slash_bps: "slashBps" = U256::from(1_000u64), min U256::ZERO, max BPS;
    /// Epochs a leaving provider's stake stays bonded.
    unbonding_epochs: "unbondingEpochs" = U256::from(2u64), min U256::ZERO, max U64_MAX;
    /// Score factor of CPU-only providers, in basis points.
    cpu_factor_bps: "cpuFactorBps" = U256::from(3_000u64), min U256::ZERO, max BPS;
    /// Weight of utilization (tokens served, relative to the busiest provider) in the score, bps.
    utilization_weight_bps: "utilizationWeightBps" = U256::from(3_000u64), min U256::ZERO, max BPS;
    /// Weight of model-adjusted throughput (relative to the fastest provider), bps.
    throughput_weight_bps: "throughputWeightBps" = U256::from(3_000u64), min U256::ZERO, max BPS;
    /// Weight of uptime (log-scaled up to `uptimeCapBlocks`), bps.
    uptime_weight_bps: "uptimeWeightBps" = U256::from(2_000u64), min U256::ZERO, max BPS;
    /// Weight of the completion rate over `completionWindowBlocks`, bps.
    completion_weight_bps: "completionWeightBps" = U256::from(2_000u64), min U256::ZERO, max BPS;
    /// Uptime at which the uptime part is full (30 days of 3 s blocks).
    uptime_cap_blocks: "uptimeCapBlocks" = U256::from(30 * DAY_BLOCKS), min U256::ONE, max U64_MAX;
    /// Blocks over which the completion rate is counted (24 h of 3 s blocks).
    completion_window_blocks: "completionWindowBlocks" = U256::from(DAY_BLOCKS), min U256::ONE, max U64_MAX;
    /// Least model-adjusted throughput (tokens/s x model units x 1,000) for a GPU claim to count.
    gpu_min_rate: "gpuMinRate" = U256::from(20_000_000u64), min U256::ZERO, max U64_MAX;
    /// Challenge jobs each validator sends each provider per epoch.
    probe_jobs: "probeJobs" = U256::from(3u64), min U256::ONE, max U256::from_limbs([64, 0, 0, 0]);
    /// Most tokens a challenge job asks for.
    probe_max_tokens: "probeMaxTokens" = U256::from(16u64), min U256::ONE, max U256::from_limbs([1024, 0, 0, 0]);
    /// Share of answers a validator audits (at least one per provider per epoch), bps.
    audit_sample_bps: "auditSampleBps" = U256::from(5_000u64), min U256::ZERO, max BPS;
    /// How far (in logits x 1,000) a claimed token may trail the auditor's best and still pass.
    audit_margin_milli: "auditMarginMilli" = U256::from(1_000u64), min U256::ZERO, max U64_MAX;
    /// Blocks an API-tier subscription lasts (30 days of 3 s blocks).
    subscription_blocks: "subscriptionBlocks" = U256::from(30 * DAY_BLOCKS), min U256::ONE, max U64_MAX;
    /// Least balance (at the snapshot) that may make a governance proposal, in wei.
    min_proposer_balance: "minProposerBalance" = AIC * U256::from(1_000u64), min U256::ZERO, max AIC_MILLION;
    /// Votes a proposal needs, as a share of the supply issued at its snapshot, bps.
    /// (At most half: part of the supply, the treasury's and the modules', never votes, and a
    /// quorum out of reach would end governance for good.)
    quorum_bps: "quorumBps" = U256::from(1_000u64), min U256::ZERO, max U256::from_limbs([5_000, 0, 0, 0]);
    /// Share of For + Against that For needs for a proposal to pass, bps (above half: a tie fails).
    approval_bps: "approvalBps" = U256::from(5_100u64), min U256::from_limbs([5_001, 0, 0, 0]), max BPS;
    /// Blocks a proposal is voted on after its snapshot (7 days of 3 s blocks; at most 90 days,
    /// so no change can freeze governance).
    voting_blocks: "votingBlocks" = U256::from(7 * DAY_BLOCKS), min U256::ONE, max U256::from_limbs([90 * DAY_BLOCKS, 0, 0, 0]);
    /// Blocks an emergency proposal is voted on after its snapshot (24 hours; at most 90 days).
    emergency_voting_blocks: "emergencyVotingBlocks" = U256::from(DAY_BLOCKS), min U256::ONE, max U256::from_limbs([90 * DAY_BLOCKS, 0, 0, 0]);
    /// Blocks after the vote in which a passed proposal can be executed (30 days; at most 90).
    execution_window_blocks: "executionWindowBlocks" = U256::from(30 * DAY_BLOCKS), min U256::ONE, max U256::from_limbs([90 * DAY_BLOCKS, 0, 0, 0]);
    /// Price of the Basic tier, in wei.
    basic_price: "basicPrice" = AIC, min U256::ZERO, max AIC_MILLION;
    /// Requests per minute of the Basic tier.
    basic_rpm: "basicRpm" = U256::from(10u64), min U256::ONE, max U64_MAX;
    /// Tokens per day of the Basic tier.
    basic_tokens_per_day: "basicTokensPerDay" = U256::from(10_000u64), min U256::ONE, max U64_MAX;
    /// Price of the Standard tier, in wei.
    standard_price: "standardPrice" = AIC * U256::from(5u64), min U256::ZERO, max AIC_MILLION;
    /// Requests per minute of the Standard tier.
    standard_rpm: "standardRpm" = U256::from(60u64), min U256::ONE, max U64_MAX;
    /// Tokens per day of the Standard tier.
    standard_tokens_per_day: "standardTokensPerDay" = U256::from(100_000u64), min U256::ONE, max U64_MAX;
    /// Price of the Premium tier, in wei.
    premium_price: "premiumPrice" = AIC * U256::from(20u64), min U256::ZERO, max AIC_MILLION;
    /// Requests per minute of the Premium tier.
    premium_rpm: "premiumRpm" = U256::from(120u64), min U256::ONE, max U64_MAX;
    /// Tokens per day of the Premium tier.
    premium_tokens_per_day: "premiumTokensPerDay" = U256::from(1_000_000u64), min U256::ONE, max U64_MAX;
    /// Share of each epoch's API revenue paid to the providers that served it, bps (the rest
    /// goes to the treasury).
    revenue_provider_bps: "revenueProviderBps" = U256::from(8_000u64), min U256::ZERO, max BPS;
}

/// 1,000,000 AIC: the most any amount parameter may be.
const AIC_MILLION: U256 = U256::from_limbs([0x1bce_cced_a100_0000, 0xd3c2, 0, 0]);
/// Counts of blocks, epochs, requests and tokens fit a `u64`.
const U64_MAX: U256 = U256::from_limbs([u64::MAX, 0, 0, 0]);
const BPS: U256 = U256::from_limbs([BPS_DENOMINATOR, 0, 0, 0]);

/// The parameters whose genesis values come from the spec's `tokenomics`.
const ISSUANCE: [&str; 3] = ["initialReward", "halvingInterval", "treasuryShareBps"];

/// A parameter's name and the bounds a change must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDef {
    pub name: &'static str,
    pub min: U256,
    pub max: U256,
}

impl ParamDef {
    /// The storage slot (and `IParams.get` key): the name, left-aligned in 32 bytes.
    pub fn key(&self) -> B256 {
        param_key(self.name)
    }

    pub fn check(&self, value: U256) -> Result<(), ParamError> {
        if value < self.min || value > self.max {
            return Err(ParamError::OutOfBounds {
                name: self.name,
                value,
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// A parameter name as its `bytes32` key (what ethers' `encodeBytes32String` gives).
pub fn param_key(name: &str) -> B256 {
    let mut key = B256::ZERO;
    key[..name.len().min(32)].copy_from_slice(&name.as_bytes()[..name.len().min(32)]);
    key
}

/// The parameter whose key is `key`.
pub fn param_by_key(key: &B256) -> Option<&'static ParamDef> {
    PARAMS.iter().find(|p| p.key() == *key)
}

/// A parameter value a spec or a proposal cannot set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown chain parameter {0:?}")]
    Unknown(String),
    #[error("{0} is set in the spec's tokenomics, not in its params")]
    InTokenomics(String),
    #[error("parameter {name} = {value} is outside its bounds {min}..={max}")]
    OutOfBounds {
        name: &'static str,
        value: U256,
        min: U256,
        max: U256,
    },
}

impl Params {
    /// The genesis values: the defaults, the spec's issuance schedule, then the spec's
    /// `params` overrides, each checked against its bounds.
    pub fn genesis(
        tokenomics: &Tokenomics,
        overrides: &std::collections::BTreeMap<String, U256>,
    ) -> Result<Self, ParamError> {
        let mut params = Self {
            initial_reward: tokenomics.initial_reward,
            halving_interval: U256::from(tokenomics.halving_interval),
            treasury_share_bps: U256::from(tokenomics.treasury_share_bps),
            ..Self::default()
        };
        for (name, value) in overrides {
            if ISSUANCE.contains(&name.as_str()) {
                return Err(ParamError::InTokenomics(name.clone()));
            }
            *params
                .slot_mut(name)
                .ok_or_else(|| ParamError::Unknown(name.clone()))? = *value;
        }
        for def in PARAMS {
            def.check(params.get(def.name).unwrap_or_default())?;
        }
        Ok(params)
    }

    /// Reads every parameter with `read(key)` (a storage read of the parameters module).
    pub fn read<E>(mut read: impl FnMut(B256) -> Result<U256, E>) -> Result<Self, E> {
        let mut params = Self::default();
        for def in PARAMS {
            if let Some(slot) = params.slot_mut(def.name) {
                *slot = read(def.key())?;
            }
        }
        Ok(params)
    }

    /// Every parameter as (storage slot, value).
    pub fn entries(&self) -> impl Iterator<Item = (B256, U256)> + '_ {
        PARAMS
            .iter()
            .map(|def| (def.key(), self.get(def.name).unwrap_or_default()))
    }

    /// The issuance rules at these parameters: the schedule from here, the cap from `base`.
    /// Values outside their bounds (which no checked write produces) are clamped to them, so
    /// the reward split can never take more than the whole.
    pub fn tokenomics(&self, base: &Tokenomics) -> Tokenomics {
        let bounded = |name: &str, value: U256| {
            PARAMS
                .iter()
                .find(|def| def.name == name)
                .map_or(value, |def| value.clamp(def.min, def.max))
        };
        Tokenomics {
            initial_reward: bounded("initialReward", self.initial_reward),
            halving_interval: bounded("halvingInterval", self.halving_interval).saturating_to(),
            treasury_share_bps: bounded("treasuryShareBps", self.treasury_share_bps)
                .saturating_to(),
            ..base.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_within_its_bounds_and_keys_are_distinct() {
        let params = Params::default();
        for def in PARAMS {
            def.check(params.get(def.name).unwrap()).unwrap();
            assert!(def.name.len() <= 32);
        }
        let keys: std::collections::HashSet<_> = PARAMS.iter().map(ParamDef::key).collect();
        assert_eq!(keys.len(), PARAMS.len());
        assert_eq!(AIC_MILLION, AIC * U256::from(1_000_000u64));
    }

    #[test]
    fn genesis_takes_the_schedule_and_checked_overrides() {
        let tokenomics = Tokenomics {
            initial_reward: AIC,
            ..Tokenomics::default()
        };
        let overrides = [("epochLength".to_string(), U256::from(5u64))].into();
        let params = Params::genesis(&tokenomics, &overrides).unwrap();
        assert_eq!(params.initial_reward, AIC);
        assert_eq!(params.epoch_length, U256::from(5u64));

        let unknown = [("epochs".to_string(), U256::from(5u64))].into();
        assert_eq!(
            Params::genesis(&tokenomics, &unknown),
            Err(ParamError::Unknown("epochs".into()))
        );
        let twice = [("initialReward".to_string(), AIC)].into();
        assert_eq!(
            Params::genesis(&tokenomics, &twice),
            Err(ParamError::InTokenomics("initialReward".into()))
        );
        let too_big = [("slashBps".to_string(), U256::from(10_001u64))].into();
        assert!(matches!(
            Params::genesis(&tokenomics, &too_big),
            Err(ParamError::OutOfBounds {
                name: "slashBps",
                ..
            })
        ));
    }

    #[test]
    fn params_read_back_from_their_entries() {
        let params = Params {
            min_stake: U256::from(7u64),
            ..Params::default()
        };
        let stored: std::collections::HashMap<_, _> = params.entries().collect();
        let read = Params::read(|key| Ok::<_, ()>(stored[&key])).unwrap();
        assert_eq!(read, params);
        assert_eq!(param_key("minStake")[..8], *b"minStake");
        assert_eq!(
            param_by_key(&param_key("minStake")).unwrap().name,
            "minStake"
        );
    }
}
