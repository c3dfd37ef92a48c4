//! Capped exponential backoff with jitter, and the retry budget of one
//! subscription.
//!
//! The default policy (used when no Resiliency policy applies): the first
//! retry waits 100 ms, each later one twice as long, each delay jittered by
//! ±20% so many failing events do not retry in lock step, and no delay is
//! longer than 10 s. `maxRetries` defaults to unlimited without a dead-letter
//! topic (the event is never given up) and to 5 with one (so poison events
//! reach the dead-letter topic in well under a minute).

use std::time::Duration;

use rand::Rng;

/// Default first delay.
pub const DEFAULT_INITIAL: Duration = crate::config::subscription::DEFAULT_RETRY_INITIAL;
/// Default longest delay.
pub const DEFAULT_MAX: Duration = crate::config::subscription::DEFAULT_RETRY_MAX;
/// Default retry budget when the subscription has a dead-letter topic.
pub const DEFAULT_MAX_RETRIES_WITH_DLQ: u32 =
    crate::config::subscription::DEFAULT_MAX_RETRIES_WITH_DLQ;

/// Capped exponential backoff: `initial × multiplier^n`, jittered, ≤ `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Longest delay, jitter included.
    pub max: Duration,
    /// Growth factor per retry.
    pub multiplier: f64,
    /// Relative jitter: 0.2 spreads each delay over ±20%.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: DEFAULT_INITIAL,
            max: DEFAULT_MAX,
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0 = first retry), without jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        // Exponent clamped so the float cannot overflow; the cap wins long
        // before 2^32 anyway.
        let factor = self.multiplier.max(1.0).powi(retry.min(64) as i32);
        let secs = (self.initial.as_secs_f64() * factor).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    /// The delay before retry number `retry`, jittered and capped at `max`.
    pub fn delay(&self, retry: u32) -> Duration {
        let base = self.base_delay(retry).as_secs_f64();
        let j = self.jitter.clamp(0.0, 1.0);
        let spread = if j > 0.0 {
            rand::rng().random_range(1.0 - j..=1.0 + j)
        } else {
            1.0
        };
        Duration::from_secs_f64((base * spread).min(self.max.as_secs_f64()))
    }
}

/// How often and how patiently one subscription retries an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Retries after the first attempt; `None` = unlimited.
    pub max_retries: Option<u32>,
}

impl RetryPolicy {
    /// May retry number `retry` (0 = first retry) still happen?
    pub fn allows(&self, retry: u32) -> bool {
        self.max_retries.is_none_or(|max| retry < max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_initial_and_caps() {
        let b = Backoff::default();
        assert_eq!(b.base_delay(0), Duration::from_millis(100));
        assert_eq!(b.base_delay(1), Duration::from_millis(200));
        assert_eq!(b.base_delay(3), Duration::from_millis(800));
        assert_eq!(b.base_delay(20), Duration::from_secs(10));
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_the_cap() {
        let b = Backoff::default();
        for retry in 0..40 {
            let base = b.base_delay(retry).as_secs_f64();
            let d = b.delay(retry).as_secs_f64();
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{retry}: {d}"
            );
            assert!(d <= 10.0 + 1e-9);
        }
    }

    #[test]
    fn budget_allows_retries_below_the_limit() {
        let limited = RetryPolicy {
            backoff: Backoff::default(),
            max_retries: Some(5),
        };
        assert!(limited.allows(4) && !limited.allows(5));
        let unlimited = RetryPolicy {
            max_retries: None,
            ..limited
        };
        assert!(unlimited.allows(1_000_000));
    }
}
