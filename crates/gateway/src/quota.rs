//! Each account's quotas at this gateway: requests per minute (a `governor` limiter per
//! account, at its tier's rate) and tokens per UTC day. A request reserves its most possible
//! cost (prompt plus the most it may generate) before it is forwarded, and settles to what it
//! actually used when it ends, so concurrent requests can never spend past the day's budget.

use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use alloy_primitives::Address;
use governor::{
    DefaultDirectRateLimiter, Quota,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
};
use parking_lot::Mutex;

const DAY_SECONDS: u64 = 86_400;

type Limiter = DefaultDirectRateLimiter<StateInformationMiddleware>;

/// Why a request is not let through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error(
        "rate limit reached: {limit} requests per minute on this tier; retry in {} s",
        retry_after.as_secs().max(1)
    )]
    RateLimited { limit: u64, retry_after: Duration },
    #[error(
        "the day's token budget cannot cover this request: it may use {asked} tokens and \
         {left} of {limit} are left until the budget resets (UTC midnight); lower max_tokens, \
         or buy a higher tier"
    )]
    Budget { limit: u64, left: u64, asked: u64 },
}

/// The request-rate headers' figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub limit: u64,
    pub remaining: u64,
}

/// An account's token budget today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub limit: u64,
    pub used: u64,
    pub reserved: u64,
    /// When it resets (Unix seconds).
    pub resets_at: u64,
}

impl Budget {
    pub fn left(&self) -> u64 {
        self.limit.saturating_sub(self.used + self.reserved)
    }
}

struct Account {
    rpm: u64,
    limiter: Arc<Limiter>,
    day: u64,
    used: u64,
    reserved: u64,
}

impl Account {
    fn new(rpm: u64) -> Self {
        let per_minute =
            NonZeroU32::new(rpm.clamp(1, u32::MAX as u64) as u32).unwrap_or(NonZeroU32::MIN);
        Self {
            rpm,
            limiter: Arc::new(
                DefaultDirectRateLimiter::direct(Quota::per_minute(per_minute))
                    .with_middleware::<StateInformationMiddleware>(),
            ),
            day: 0,
            used: 0,
            reserved: 0,
        }
    }

    /// Starts a new day's budget when `now` is in a later day.
    fn roll(&mut self, now: u64) {
        let day = now / DAY_SECONDS;
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
    }
}

/// Every account's quotas.
#[derive(Default)]
pub struct Quotas {
    accounts: Mutex<HashMap<Address, Account>>,
    clock: DefaultClock,
}

impl Quotas {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Counts one request against `account`'s rate of `rpm` a minute.
    pub fn admit(&self, account: Address, rpm: u64) -> Result<RateState, QuotaError> {
        let limiter = {
            let mut accounts = self.accounts.lock();
            let entry = accounts.entry(account).or_insert_with(|| Account::new(rpm));
            if entry.rpm != rpm {
                // A new tier: a fresh limiter at its rate (the token budget carries over).
                let fresh = Account::new(rpm);
                entry.rpm = rpm;
                entry.limiter = fresh.limiter;
            }
            entry.limiter.clone()
        };
        match limiter.check() {
            Ok(state) => Ok(RateState {
                limit: rpm,
                remaining: state.remaining_burst_capacity().into(),
            }),
            Err(not_until) => Err(QuotaError::RateLimited {
                limit: rpm,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
        }
    }

    /// `account`'s budget today (`limit` tokens a day), at `now` (Unix seconds).
    pub fn budget(&self, account: Address, limit: u64, now: u64) -> Budget {
        let mut accounts = self.accounts.lock();
        let (used, reserved) = match accounts.get_mut(&account) {
            Some(entry) => {
                entry.roll(now);
                (entry.used, entry.reserved)
            }
            None => (0, 0),
        };
        Budget {
            limit,
            used,
            reserved,
            resets_at: (now / DAY_SECONDS + 1) * DAY_SECONDS,
        }
    }

    /// Reserves `tokens` of `account`'s `limit` a day, or says how many are left.
    pub fn reserve(
        self: &Arc<Self>,
        account: Address,
        limit: u64,
        tokens: u64,
        now: u64,
    ) -> Result<Reservation, QuotaError> {
        let mut accounts = self.accounts.lock();
        let entry = accounts.entry(account).or_insert_with(|| Account::new(1));
        entry.roll(now);
        let left = limit.saturating_sub(entry.used + entry.reserved);
        if tokens > left {
            return Err(QuotaError::Budget {
                limit,
                left,
                asked: tokens,
            });
        }
        entry.reserved += tokens;
        Ok(Reservation {
            quotas: self.clone(),
            account,
            day: entry.day,
            tokens,
            settled: false,
        })
    }

    fn release(&self, account: Address, day: u64, reserved: u64, used: u64) {
        let mut accounts = self.accounts.lock();
        if let Some(entry) = accounts.get_mut(&account) {
            entry.reserved = entry.reserved.saturating_sub(reserved);
            // A request that began yesterday counts to the day it began in, which is over.
            if entry.day == day {
                entry.used = entry.used.saturating_add(used);
            }
        }
    }
}

/// Tokens held for one request until it settles; dropped unsettled (the request failed before
/// it used anything), it frees them all.
pub struct Reservation {
    quotas: Arc<Quotas>,
    account: Address,
    day: u64,
    tokens: u64,
    settled: bool,
}

impl Reservation {
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Frees the reservation, counting `used` tokens, never more than were reserved (the
    /// gateway capped the request to fit); returns what it counted.
    pub fn settle(mut self, used: u64) -> u64 {
        self.settled = true;
        let used = used.min(self.tokens);
        self.quotas
            .release(self.account, self.day, self.tokens, used);
        used
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.quotas.release(self.account, self.day, self.tokens, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Address = Address::repeat_byte(0xa1);
    const NOW: u64 = 1_700_000_000;

    #[test]
    fn concurrent_reservations_never_pass_the_budget() {
        let quotas = Quotas::new();
        let held: Vec<Reservation> = (0..50)
            .filter_map(|_| quotas.reserve(ALICE, 1_000, 100, NOW).ok())
            .collect();
        assert_eq!(held.len(), 10);
        assert_eq!(
            quotas.reserve(ALICE, 1_000, 1, NOW).err(),
            Some(QuotaError::Budget {
                limit: 1_000,
                left: 0,
                asked: 1
            })
        );
        // Settling to less than reserved gives the rest back.
        for reservation in held {
            reservation.settle(40);
        }
        let budget = quotas.budget(ALICE, 1_000, NOW);
        assert_eq!((budget.used, budget.reserved, budget.left()), (400, 0, 600));
    }

    #[test]
    fn a_failed_request_frees_its_reservation_and_a_new_day_resets_the_budget() {
        let quotas = Quotas::new();
        drop(quotas.reserve(ALICE, 1_000, 600, NOW).unwrap());
        quotas
            .reserve(ALICE, 1_000, 1_000, NOW)
            .unwrap()
            .settle(1_000);
        assert_eq!(quotas.budget(ALICE, 1_000, NOW).left(), 0);
        let tomorrow = NOW + DAY_SECONDS;
        assert_eq!(quotas.budget(ALICE, 1_000, tomorrow).left(), 1_000);
        assert_eq!(quotas.budget(ALICE, 1_000, NOW).resets_at % DAY_SECONDS, 0);
    }

    #[test]
    fn requests_past_the_rate_wait_for_the_next_slot() {
        let quotas = Quotas::new();
        for remaining in (0..3).rev() {
            assert_eq!(
                quotas.admit(ALICE, 3),
                Ok(RateState {
                    limit: 3,
                    remaining
                })
            );
        }
        let Err(QuotaError::RateLimited { limit, retry_after }) = quotas.admit(ALICE, 3) else {
            panic!("the fourth request in a minute passed a 3-a-minute limit");
        };
        assert_eq!(limit, 3);
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20));
    }
}
