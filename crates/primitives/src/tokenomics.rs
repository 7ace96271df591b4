//! Issuance: the block reward schedule and the hard supply cap.
//!
//! The published numbers (21M cap, 10.5M genesis, 50 AIC halving every 210,000 blocks, 20% treasury)
//! cannot all hold at once: the nominal schedule sums to 21M on its own, twice the 10.5M mining
//! reserve. We keep every number and make the cap the rule that wins: the reward of block `h` is
//! `min(schedule(h), reserve_left)`, so `genesis + Σ rewards ≤ max_supply` holds by construction,
//! and [`Tokenomics::block_reward`] refuses to pay past it.

use alloy_primitives::U256;
use serde::{Deserialize, Serialize};

/// One AIC in wei (18 decimals).
pub const AIC: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// Basis points in one whole (100%).
pub const BPS_DENOMINATOR: u64 = 10_000;

/// Chain-spec issuance parameters (all amounts in wei).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokenomics {
    /// Hard cap on everything ever issued: genesis allocations plus all block rewards.
    pub max_supply: U256,
    /// Allocation to the genesis address (part of the genesis alloc).
    pub genesis_allocation: U256,
    /// Nominal reward of blocks `1..=halving_interval`.
    pub initial_reward: U256,
    /// Blocks per halving era.
    pub halving_interval: u64,
    /// Share of each reward paid to the treasury, in basis points.
    pub treasury_share_bps: u64,
}

/// How one block's reward is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockReward {
    /// Paid to the block's beneficiary (the producer's `--miner-address`).
    pub miner: U256,
    /// Paid to the chain spec's treasury address.
    pub treasury: U256,
}

impl BlockReward {
    /// Total newly issued by this block.
    pub fn total(&self) -> U256 {
        self.miner + self.treasury
    }
}

/// Parameters that cannot describe a valid issuance schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenomicsError {
    #[error("halving_interval must be at least 1 block")]
    ZeroHalvingInterval,
    #[error("treasury_share_bps is {0}, above {BPS_DENOMINATOR} (100%)")]
    TreasuryShareTooLarge(u64),
    #[error("max_supply {0} wei is above 2^128 wei")]
    MaxSupplyTooLarge(U256),
    #[error("genesis allocations total {genesis} wei, above max_supply {max_supply} wei")]
    GenesisAboveCap { genesis: U256, max_supply: U256 },
    #[error(
        "issuance cap broken at block {height}: {issued} wei already issued plus a reward of \
         {reward} wei exceeds max_supply {max_supply} wei"
    )]
    CapExceeded {
        height: u64,
        issued: U256,
        reward: U256,
        max_supply: U256,
    },
}

impl Default for Tokenomics {
    /// The published AICoin numbers.
    fn default() -> Self {
        Self {
            max_supply: AIC * U256::from(21_000_000u64),
            genesis_allocation: AIC * U256::from(10_500_000u64),
            initial_reward: AIC * U256::from(50u64),
            halving_interval: 210_000,
            treasury_share_bps: 2_000,
        }
    }
}

impl Tokenomics {
    /// Checks the parameters against the total actually allocated at genesis.
    pub fn validate(&self, genesis_total: U256) -> Result<(), TokenomicsError> {
        if self.halving_interval == 0 {
            return Err(TokenomicsError::ZeroHalvingInterval);
        }
        if self.treasury_share_bps > BPS_DENOMINATOR {
            return Err(TokenomicsError::TreasuryShareTooLarge(
                self.treasury_share_bps,
            ));
        }
        // Rewards are paid as u128 increments, and `reward * treasury_share_bps` must not wrap.
        if self.max_supply > U256::from(u128::MAX) {
            return Err(TokenomicsError::MaxSupplyTooLarge(self.max_supply));
        }
        if genesis_total > self.max_supply {
            return Err(TokenomicsError::GenesisAboveCap {
                genesis: genesis_total,
                max_supply: self.max_supply,
            });
        }
        Ok(())
    }

    /// The nominal (uncapped) reward of block `height`: `initial_reward` halved once per
    /// `halving_interval` blocks. Block 0 is genesis and earns nothing.
    pub fn schedule(&self, height: u64) -> U256 {
        if height == 0 || self.halving_interval == 0 {
            return U256::ZERO;
        }
        let era = (height - 1) / self.halving_interval;
        if era >= 256 {
            U256::ZERO
        } else {
            self.initial_reward >> (era as usize)
        }
    }

    /// The reward of block `height` given `issued` (genesis + every earlier reward), split between
    /// miner and treasury. It is the schedule capped by what is left under `max_supply`; an
    /// `issued` already above the cap is an error, never a negative reward.
    pub fn block_reward(&self, height: u64, issued: U256) -> Result<BlockReward, TokenomicsError> {
        let Some(reserve_left) = self.max_supply.checked_sub(issued) else {
            return Err(TokenomicsError::CapExceeded {
                height,
                issued,
                reward: U256::ZERO,
                max_supply: self.max_supply,
            });
        };
        let total = self.schedule(height).min(reserve_left);
        let treasury = total * U256::from(self.treasury_share_bps) / U256::from(BPS_DENOMINATOR);
        Ok(BlockReward {
            miner: total - treasury,
            treasury,
        })
    }

    /// What the schedule issues over every block after `height`, uncapped, era by era (at most
    /// 256 eras, as rewards halve to nothing).
    pub fn scheduled_after(&self, height: u64) -> U256 {
        let mut total = U256::ZERO;
        let (Some(mut first), true) = (height.checked_add(1), self.halving_interval > 0) else {
            return total;
        };
        loop {
            let reward = self.schedule(first);
            if reward.is_zero() {
                return total;
            }
            let era = (first - 1) / self.halving_interval;
            let last = (era + 1).saturating_mul(self.halving_interval);
            total = total.saturating_add(reward.saturating_mul(U256::from(last - first + 1)));
            match last.checked_add(1) {
                Some(next) => first = next,
                None => return total,
            }
        }
    }

    /// Total issued after block `height` when every block took its full capped reward, computed
    /// era by era (O(eras), not O(height)).
    pub fn issued_after(&self, height: u64, genesis_total: U256) -> U256 {
        let mut mined = U256::ZERO;
        let mut first = 1u64;
        while first <= height && self.halving_interval > 0 {
            let last = (first - 1 + self.halving_interval).min(height);
            let reward = self.schedule(first);
            if reward.is_zero() {
                break;
            }
            mined = mined.saturating_add(reward.saturating_mul(U256::from(last - first + 1)));
            first = last + 1;
        }
        let reserve = self.max_supply.saturating_sub(genesis_total);
        genesis_total + mined.min(reserve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn aic(n: u64) -> U256 {
        AIC * U256::from(n)
    }

    #[test]
    fn scheduled_after_sums_the_remaining_eras() {
        let t = Tokenomics {
            initial_reward: aic(8),
            halving_interval: 10,
            ..Tokenomics::default()
        };
        // Blocks 1-10 earn 8, 11-20 earn 4, then 2, 1, 0.5, ... down to one wei.
        let all = t.scheduled_after(0);
        let brute: U256 = (1..=10 * 70).map(|h| t.schedule(h)).sum();
        assert_eq!(all, brute);
        assert_eq!(t.scheduled_after(15), all - aic(8 * 10) - aic(4 * 5));
        assert_eq!(t.scheduled_after(u64::MAX), U256::ZERO);
    }

    #[test]
    fn published_schedule() {
        let t = Tokenomics::default();
        assert_eq!(t.schedule(0), U256::ZERO);
        assert_eq!(t.schedule(1), aic(50));
        assert_eq!(t.schedule(210_000), aic(50));
        assert_eq!(t.schedule(210_001), aic(25));
        assert_eq!(t.schedule(420_001), aic(25) / U256::from(2));
    }

    #[test]
    fn reward_splits_80_20_without_losing_wei() {
        let t = Tokenomics::default();
        let r = t.block_reward(1, t.genesis_allocation).unwrap();
        assert_eq!(r.miner, aic(40));
        assert_eq!(r.treasury, aic(10));
        let odd = Tokenomics {
            initial_reward: U256::from(7u64),
            ..t
        };
        let r = odd.block_reward(1, U256::ZERO).unwrap();
        assert_eq!(r.total(), U256::from(7u64));
        assert_eq!(r.treasury, U256::from(1u64));
    }

    /// Drives the default schedule block by block over five million heights (24 halvings past the
    /// reserve's exhaustion) and checks the cap after every block.
    #[test]
    fn default_schedule_never_exceeds_cap_over_millions_of_blocks() {
        let t = Tokenomics::default();
        let mut issued = t.genesis_allocation;
        let mut last_paying_block = 0;
        for h in 1..=5_000_000u64 {
            let r = t.block_reward(h, issued).unwrap();
            if !r.total().is_zero() {
                last_paying_block = h;
            }
            issued += r.total();
            assert!(issued <= t.max_supply, "cap exceeded at {h}");
        }
        // The 10.5M reserve is exactly 210,000 blocks of 50 AIC.
        assert_eq!(issued, t.max_supply);
        assert_eq!(last_paying_block, 210_000);
        assert_eq!(t.issued_after(5_000_000, t.genesis_allocation), issued);
    }

    #[test]
    fn issued_above_cap_is_an_error() {
        let t = Tokenomics::default();
        let err = t
            .block_reward(9, t.max_supply + U256::from(1u64))
            .unwrap_err();
        assert!(matches!(
            err,
            TokenomicsError::CapExceeded { height: 9, .. }
        ));
    }

    #[test]
    fn validation_rejects_impossible_parameters() {
        let t = Tokenomics::default();
        assert!(t.validate(t.genesis_allocation).is_ok());
        assert!(matches!(
            t.validate(t.max_supply + U256::from(1u64)),
            Err(TokenomicsError::GenesisAboveCap { .. })
        ));
        let bad = Tokenomics {
            halving_interval: 0,
            ..t.clone()
        };
        assert_eq!(
            bad.validate(U256::ZERO),
            Err(TokenomicsError::ZeroHalvingInterval)
        );
        let bad = Tokenomics {
            max_supply: U256::MAX,
            ..t.clone()
        };
        assert!(matches!(
            bad.validate(U256::ZERO),
            Err(TokenomicsError::MaxSupplyTooLarge(_))
        ));
        let bad = Tokenomics {
            treasury_share_bps: 10_001,
            ..t
        };
        assert_eq!(
            bad.validate(U256::ZERO),
            Err(TokenomicsError::TreasuryShareTooLarge(10_001))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// For arbitrary parameters, paying block after block never passes the cap, and the total
        /// matches the era-wise closed form.
        #[test]
        fn any_schedule_respects_the_cap(
            max_supply in 1u64..1_000_000_000,
            genesis_pct in 0u64..=100,
            initial_reward in 1u64..10_000_000,
            halving_interval in 1u64..5_000,
            treasury_share_bps in 0u64..=10_000,
            heights in 1u64..40_000,
        ) {
            let t = Tokenomics {
                max_supply: U256::from(max_supply),
                genesis_allocation: U256::from(max_supply * genesis_pct / 100),
                initial_reward: U256::from(initial_reward),
                halving_interval,
                treasury_share_bps,
            };
            let mut issued = t.genesis_allocation;
            for h in 1..=heights {
                let r = t.block_reward(h, issued).unwrap();
                prop_assert!(r.total() <= t.schedule(h));
                issued += r.total();
                prop_assert!(issued <= t.max_supply);
            }
            prop_assert_eq!(issued, t.issued_after(heights, t.genesis_allocation));
        }
    }
}
