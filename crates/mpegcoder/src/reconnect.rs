//! The reconnect policy of a destination (and of a live source): how often, and how long to
//! wait between attempts. Capped exponential backoff with jitter: attempt n waits
//! `min(initial · 2ⁿ⁻¹, max)`, scaled by a random factor in `[1 − jitter, 1]`, so that many
//! publishers that lost the same server do not all come back in the same millisecond.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When and how a lost connection is re-established. Only failures that may heal are retried
/// (see [`crate::transport::heal`]); the others end the destination at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Attempts per outage before giving up; `None`: forever.
    pub max_attempts: Option<u32>,
    /// The wait before the first attempt.
    pub initial_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// How much of each wait is random, 0.0–1.0.
    pub jitter: f64,
}

impl Default for ReconnectPolicy {
    /// Forever, 0.5 s up to 10 s, with 25 % jitter.
    fn default() -> Self {
        ReconnectPolicy {
            max_attempts: None,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            jitter: 0.25,
        }
    }
}

impl ReconnectPolicy {
    /// Reconnect forever with the default backoff.
    pub fn forever() -> ReconnectPolicy {
        ReconnectPolicy::default()
    }

    /// At most `n` attempts per outage, with the default backoff.
    pub fn attempts(n: u32) -> ReconnectPolicy {
        ReconnectPolicy {
            max_attempts: Some(n),
            ..ReconnectPolicy::default()
        }
    }

    /// Sets the first and the longest wait.
    pub fn with_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// Sets the random share of each wait (clamped to 0.0–1.0).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Whether attempt `attempt` (1 for the first of an outage) may be made.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|n| attempt <= n)
    }

    /// The wait before attempt `attempt` (1-based); `random` is uniform in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter)
    }
}

/// A small random number source for the jitter (xorshift64*, seeded from the clock and the
/// address of a local): no cryptographic quality needed, only spread.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let addr = std::ptr::addr_of!(local) as u64;
        Jitter((nanos ^ addr.rotate_left(32)) | 1)
    }

    /// A source seeded with `seed` (from another source's output).
    pub(crate) fn seeded(seed: f64) -> Jitter {
        Jitter(((seed * (1u64 << 53) as f64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let p = ReconnectPolicy::forever().with_jitter(0.0);
        let waits: Vec<u64> = (1..=7)
            .map(|n| p.delay(n, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(p.delay(1000, 0.0), Duration::from_secs(10));
        let j = ReconnectPolicy::forever().with_jitter(0.5);
        assert_eq!(j.delay(2, 0.0), Duration::from_secs(1));
        assert_eq!(j.delay(2, 1.0), Duration::from_millis(500));
        let mut rng = Jitter::new();
        for _ in 0..1000 {
            let r = rng.next();
            assert!((0.0..1.0).contains(&r), "{r}");
            let d = j.delay(3, r);
            assert!(
                d > Duration::from_millis(1000) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }

    #[test]
    fn attempts_are_bounded_only_when_asked() {
        assert!(ReconnectPolicy::forever().allows(u32::MAX));
        let p = ReconnectPolicy::attempts(3);
        assert!(p.allows(3));
        assert!(!p.allows(4));
        let p =
            ReconnectPolicy::forever().with_delays(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(p.max_delay, Duration::from_secs(2));
    }
}
