//! Which providers a pipeline runs through: the fastest chain of shards that covers a range of
//! layers, by each provider's measured step time, leaving out providers banned after a failure.
//! A ban lasts 15 s and doubles with each failure in a row (as Petals bans a failed server);
//! a success ends the streak. A provider that is up but full (its KV budget) is only passed
//! over for a second.

use std::{
    collections::HashMap,
    ops::Range,
    time::{Duration, Instant},
};

use alloy_primitives::Address;
use parking_lot::Mutex;

/// One provider's layer range of a model, as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub provider: Address,
    pub api_url: String,
    pub layers: Range<usize>,
}

/// The step time assumed for a provider not yet measured.
const UNMEASURED: Duration = Duration::from_millis(50);
/// What one more hop costs in a plan, so fewer hops win among equals.
const HOP: Duration = Duration::from_millis(1);
/// The longest ban.
const MAX_BAN: Duration = Duration::from_secs(480);
/// How long a full provider is passed over.
const BUSY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Health {
    /// Moving average of a one-token step.
    step: Option<Duration>,
    failures: u32,
    banned_until: Option<Instant>,
}

/// What the coordinator knows of each provider.
#[derive(Debug)]
pub struct Routes {
    first_ban: Duration,
    health: Mutex<HashMap<Address, Health>>,
}

impl Routes {
    /// Bans start at `first_ban` (15 s in the network; tests shorten it).
    pub fn new(first_ban: Duration) -> Self {
        Self {
            first_ban,
            health: Mutex::new(HashMap::new()),
        }
    }

    /// The fastest chain of `shards` that covers exactly `layers`, one after another, with no
    /// provider banned at `now`; `None` when no chain does.
    pub fn plan(&self, shards: &[Shard], layers: Range<usize>, now: Instant) -> Option<Vec<Shard>> {
        let health = self.health.lock();
        let usable = |shard: &&Shard| {
            layers.start <= shard.layers.start
                && shard.layers.start < shard.layers.end
                && shard.layers.end <= layers.end
                && health
                    .get(&shard.provider)
                    .and_then(|h| h.banned_until)
                    .is_none_or(|until| until <= now)
        };
        let cost = |shard: &Shard| {
            health
                .get(&shard.provider)
                .and_then(|h| h.step)
                .unwrap_or(UNMEASURED)
                + HOP
        };
        // Layer boundaries in order: the best way to reach each, and the shard that did.
        let width = layers.len();
        let mut best: Vec<Option<(Duration, usize)>> = vec![None; width + 1];
        best[0] = Some((Duration::ZERO, usize::MAX));
        let candidates: Vec<&Shard> = shards.iter().filter(usable).collect();
        for at in 0..width {
            let Some((so_far, _)) = best[at] else {
                continue;
            };
            for (i, shard) in candidates.iter().enumerate() {
                if shard.layers.start != layers.start + at {
                    continue;
                }
                let end = shard.layers.end - layers.start;
                let total = so_far + cost(shard);
                if best[end].is_none_or(|(known, _)| total < known) {
                    best[end] = Some((total, i));
                }
            }
        }
        let mut chain = Vec::new();
        let mut at = width;
        while at > 0 {
            let (_, i) = best[at]?;
            let shard = candidates[i];
            chain.push(shard.clone());
            at = shard.layers.start - layers.start;
        }
        chain.reverse();
        Some(chain)
    }

    /// A step of `tokens` tokens took `elapsed` at `provider`.
    pub fn succeeded(&self, provider: Address, elapsed: Duration, tokens: usize) {
        let mut health = self.health.lock();
        let h = health.entry(provider).or_default();
        h.failures = 0;
        if tokens == 1 {
            h.step = Some(match h.step {
                Some(average) => average.mul_f64(0.8) + elapsed.mul_f64(0.2),
                None => elapsed,
            });
        }
    }

    /// `provider` was full at `now`: it is passed over for a second, with no ban and no
    /// failure counted.
    pub fn busy(&self, provider: Address, now: Instant) {
        let mut health = self.health.lock();
        let h = health.entry(provider).or_default();
        h.banned_until = Some(
            h.banned_until
                .map_or(now + BUSY, |until| until.max(now + BUSY)),
        );
    }

    /// `provider` failed at `now`: it is banned, for twice as long as last time in a row. The
    /// ban's length.
    pub fn failed(&self, provider: Address, now: Instant) -> Duration {
        let mut health = self.health.lock();
        let h = health.entry(provider).or_default();
        h.failures = h.failures.saturating_add(1);
        let ban = self
            .first_ban
            .saturating_mul(1 << (h.failures - 1).min(16))
            .min(MAX_BAN);
        h.banned_until = Some(now + ban);
        ban
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(n: u8, layers: Range<usize>) -> Shard {
        Shard {
            provider: Address::repeat_byte(n),
            api_url: format!("http://127.0.0.1:{}", 9000 + n as u16),
            layers,
        }
    }

    fn providers(plan: Option<Vec<Shard>>) -> Option<Vec<u8>> {
        plan.map(|p| p.iter().map(|s| s.provider.0[0]).collect())
    }

    #[test]
    fn a_plan_covers_every_layer_with_the_fastest_shards() {
        let routes = Routes::new(Duration::from_secs(15));
        let shards = [
            shard(1, 0..10),
            shard(2, 10..20),
            shard(3, 20..30),
            shard(4, 10..20),
            shard(5, 0..30),
        ];
        let now = Instant::now();
        routes.succeeded(Address::repeat_byte(5), Duration::from_millis(400), 1);
        routes.succeeded(Address::repeat_byte(2), Duration::from_millis(90), 1);
        routes.succeeded(Address::repeat_byte(4), Duration::from_millis(30), 1);
        assert_eq!(
            providers(routes.plan(&shards, 0..30, now)),
            Some(vec![1, 4, 3])
        );
        // A middle range alone, as a failover asks for it.
        assert_eq!(providers(routes.plan(&shards, 10..20, now)), Some(vec![4]));
        // Ranges that do not meet are no plan.
        let gap = [shard(1, 0..10), shard(3, 20..30)];
        assert_eq!(routes.plan(&gap, 0..30, now), None);
        // A prefill-sized step does not count as a step time.
        routes.succeeded(Address::repeat_byte(4), Duration::from_secs(9), 128);
        assert_eq!(providers(routes.plan(&shards, 10..20, now)), Some(vec![4]));
    }

    #[test]
    fn a_failed_provider_is_banned_for_15_s_doubling_until_it_succeeds() {
        let routes = Routes::new(Duration::from_secs(15));
        let shards = [shard(1, 0..10), shard(2, 10..20), shard(4, 10..20)];
        let (two, now) = (Address::repeat_byte(2), Instant::now());
        routes.succeeded(two, Duration::from_millis(10), 1);
        assert_eq!(
            providers(routes.plan(&shards, 0..20, now)),
            Some(vec![1, 2])
        );
        assert_eq!(routes.failed(two, now), Duration::from_secs(15));
        assert_eq!(
            providers(routes.plan(&shards, 0..20, now)),
            Some(vec![1, 4])
        );
        let later = now + Duration::from_secs(15);
        assert_eq!(
            providers(routes.plan(&shards, 0..20, later)),
            Some(vec![1, 2])
        );
        assert_eq!(routes.failed(two, later), Duration::from_secs(30));
        assert_eq!(routes.failed(two, later), Duration::from_secs(60));
        // The only provider of a range banned: no plan until the ban ends.
        assert_eq!(
            routes.failed(Address::repeat_byte(4), later),
            Duration::from_secs(15)
        );
        assert_eq!(routes.plan(&shards, 0..20, later), None);
        routes.succeeded(two, Duration::from_millis(10), 1);
        assert_eq!(routes.failed(two, later), Duration::from_secs(15));
        assert_eq!(routes.failed(two, later), Duration::from_secs(30));
    }

    #[test]
    fn a_full_provider_is_passed_over_for_a_second_and_not_banned() {
        let routes = Routes::new(Duration::from_secs(15));
        let shards = [shard(1, 0..10), shard(2, 0..10)];
        let (one, now) = (Address::repeat_byte(1), Instant::now());
        routes.busy(one, now);
        assert_eq!(providers(routes.plan(&shards, 0..10, now)), Some(vec![2]));
        let later = now + Duration::from_secs(1);
        assert_eq!(providers(routes.plan(&shards, 0..10, later)), Some(vec![1]));
        // Being full counted no failure: the next failure is a first ban.
        assert_eq!(routes.failed(one, later), Duration::from_secs(15));
    }
}
