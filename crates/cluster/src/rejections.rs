//! Warnings about refused node-to-node messages, rate-limited: anyone can send forged messages
//! to the sync port, and one warning each would let a flood fill the disk and keep the node
//! busy writing them. At most [`PER_SECOND`] a second are logged; the rest are counted, and the
//! next warning says how many were left out.

use std::{
    fmt::Display,
    net::SocketAddr,
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::{InMemoryState, NotKeyed},
};

/// Warnings logged per second at most (and in a burst).
const PER_SECOND: NonZeroU32 = NonZeroU32::new(10).unwrap();

/// The rate limit on warnings about refused messages, and what it left out.
#[derive(Debug)]
pub struct Rejections<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    suppressed: AtomicU64,
}

impl Default for Rejections {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock> Rejections<C> {
    fn with_clock(clock: C) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(Quota::per_second(PER_SECOND), clock),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log this refusal: `Some(n)` with the number left out since the last one
    /// logged, `None` if this one is left out.
    fn admit(&self) -> Option<u64> {
        match self.limiter.check() {
            Ok(()) => Some(self.suppressed.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Logs a refused message from `remote` to `endpoint`, unless the limit leaves it out.
    pub fn warn(&self, remote: SocketAddr, endpoint: &str, error: &dyn Display) {
        if let Some(left_out) = self.admit() {
            tracing::warn!(%remote, %endpoint, %error, left_out, "rejected a node-to-node message");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn a_flood_is_logged_ten_a_second_and_counted() {
        let clock = FakeRelativeClock::default();
        let rejections = Rejections::with_clock(clock.clone());
        let logged = (0..100_000).filter_map(|_| rejections.admit()).count();
        assert_eq!(logged, 10);
        // A second later the next warning reports everything left out meanwhile.
        clock.advance(Duration::from_secs(1));
        assert_eq!(rejections.admit(), Some(99_990));
        assert_eq!(rejections.admit(), Some(0));
    }
}
