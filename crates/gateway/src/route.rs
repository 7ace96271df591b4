//! Choosing the provider for a request: among the providers of the requested model (never
//! another model), the cheapest by measured time to first token times the requests in flight,
//! skipping those whose circuit breaker is open. A breaker opens after [`FAILURES_TO_OPEN`]
//! failures in a row, stays open [`OPEN_FOR`], then lets one trial request through (half-open):
//! its success closes the breaker, its failure opens it again.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::Address;
use parking_lot::Mutex;

use crate::chain::Upstream;

pub const FAILURES_TO_OPEN: u32 = 3;
pub const OPEN_FOR: Duration = Duration::from_secs(30);
/// Weight of the newest time-to-first-token sample in the moving average.
const EWMA_WEIGHT: f64 = 0.3;

#[derive(Debug, Default)]
struct Health {
    /// Moving average of the time to first token, ms (`None` before the first answer).
    ttft_ms: Option<f64>,
    in_flight: u32,
    failures: u32,
    open_until: Option<Instant>,
    /// A half-open trial is in flight.
    trial: bool,
}

impl Health {
    /// Whether a request may go to it at `now`, and whether it would be the half-open trial.
    fn available(&self, now: Instant) -> Option<bool> {
        match self.open_until {
            None => Some(false),
            Some(until) if now < until => None,
            Some(_) if self.trial => None,
            Some(_) => Some(true),
        }
    }

    fn cost(&self) -> f64 {
        // Unmeasured providers look fast, so each gets tried and measured.
        self.ttft_ms.unwrap_or(1.0).max(1.0) * f64::from(self.in_flight + 1)
    }
}

/// Every provider's health, as this gateway saw it.
#[derive(Default)]
pub struct Routes {
    health: Mutex<HashMap<Address, Health>>,
}

/// A request in flight at a provider: counted in its load until dropped.
pub struct InFlight {
    routes: Arc<Routes>,
    pub upstream: Upstream,
    trial: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut health = self.routes.health.lock();
        if let Some(h) = health.get_mut(&self.upstream.address) {
            h.in_flight = h.in_flight.saturating_sub(1);
            if self.trial {
                h.trial = false;
            }
        }
    }
}

impl Routes {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The best provider to try from `upstreams` minus those in `tried`, counted in flight
    /// there until the returned guard drops.
    pub fn pick(self: &Arc<Self>, upstreams: &[Upstream], tried: &[Address]) -> Option<InFlight> {
        let now = Instant::now();
        let mut health = self.health.lock();
        let (upstream, trial) = upstreams
            .iter()
            .filter(|u| !tried.contains(&u.address))
            .filter_map(|u| {
                let h = health.entry(u.address).or_default();
                h.available(now).map(|trial| (u, trial, h.cost()))
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(u, trial, _)| (u.clone(), trial))?;
        let h = health.entry(upstream.address).or_default();
        h.in_flight += 1;
        h.trial |= trial;
        Some(InFlight {
            routes: self.clone(),
            upstream,
            trial,
        })
    }

    /// The provider answered, its first token after `ttft`.
    pub fn succeeded(&self, provider: Address, ttft: Duration) {
        let mut health = self.health.lock();
        let h = health.entry(provider).or_default();
        let sample = ttft.as_secs_f64() * 1000.0;
        h.ttft_ms = Some(match h.ttft_ms {
            Some(average) => average + EWMA_WEIGHT * (sample - average),
            None => sample,
        });
        h.failures = 0;
        h.open_until = None;
    }

    /// The provider answered a request whole (no time to first token to learn from).
    pub fn answered(&self, provider: Address) {
        let mut health = self.health.lock();
        let h = health.entry(provider).or_default();
        h.failures = 0;
        h.open_until = None;
    }

    /// The provider failed a request (no answer, a server error, a broken stream).
    pub fn failed(&self, provider: Address) {
        let mut health = self.health.lock();
        let h = health.entry(provider).or_default();
        h.failures += 1;
        let half_open = h.open_until.is_some();
        if half_open || h.failures >= FAILURES_TO_OPEN {
            h.open_until = Some(Instant::now() + OPEN_FOR);
            tracing::warn!(%provider, failures = h.failures, "circuit breaker open for 30 s");
        }
    }

    /// Whether `provider`'s breaker is open now.
    pub fn is_open(&self, provider: Address) -> bool {
        let health = self.health.lock();
        health
            .get(&provider)
            .is_some_and(|h| h.available(Instant::now()).is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(byte: u8) -> Upstream {
        Upstream {
            address: Address::repeat_byte(byte),
            api_url: format!("http://127.0.0.1:{byte}"),
            pipeline: false,
        }
    }

    #[test]
    fn load_spreads_over_providers_and_the_faster_one_wins_when_idle() {
        let routes = Routes::new();
        let (a, b) = (upstream(1), upstream(2));
        let both = [a.clone(), b.clone()];
        routes.succeeded(a.address, Duration::from_millis(100));
        routes.succeeded(b.address, Duration::from_millis(150));
        assert_eq!(routes.pick(&both, &[]).unwrap().upstream, a);
        // One request in flight at A doubles its cost: the next goes to B.
        let first = routes.pick(&both, &[]).unwrap();
        assert_eq!(first.upstream, a);
        let second = routes.pick(&both, &[]).unwrap();
        assert_eq!(second.upstream, b);
        // A request never goes back to a provider it already tried.
        assert_eq!(routes.pick(&both, &[a.address]).unwrap().upstream, b);
        assert!(routes.pick(&both, &[a.address, b.address]).is_none());
    }

    #[test]
    fn three_failures_open_the_breaker_then_one_trial_may_close_it() {
        let routes = Routes::new();
        let a = upstream(1);
        let only = [a.clone()];
        for _ in 0..FAILURES_TO_OPEN - 1 {
            routes.failed(a.address);
        }
        assert!(!routes.is_open(a.address));
        routes.failed(a.address);
        assert!(routes.is_open(a.address));
        assert!(routes.pick(&only, &[]).is_none());

        // Thirty seconds later (moved back in time here): one trial, and only one.
        routes.health.lock().get_mut(&a.address).unwrap().open_until =
            Some(Instant::now() - Duration::from_millis(1));
        let trial = routes.pick(&only, &[]).unwrap();
        assert!(routes.pick(&only, &[]).is_none());
        routes.failed(a.address);
        drop(trial);
        assert!(
            routes.is_open(a.address),
            "a failed trial reopens the breaker"
        );

        routes.health.lock().get_mut(&a.address).unwrap().open_until =
            Some(Instant::now() - Duration::from_millis(1));
        let trial = routes.pick(&only, &[]).unwrap();
        routes.succeeded(a.address, Duration::from_millis(5));
        drop(trial);
        assert!(!routes.is_open(a.address));
        assert!(routes.pick(&only, &[]).is_some());
    }
}
