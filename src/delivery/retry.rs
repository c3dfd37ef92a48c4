//! The retry budget and delay schedule of one subscription.
//!
//! The default policy (used when no Resiliency policy applies): the first
//! retry waits 100 ms, each later one twice as long, each delay jittered by
//! ±20% so many failing events do not retry in lock step, and no delay is
//! longer than 10 s ([`Backoff::DEFAULT`]). `maxRetries` defaults to
//! unlimited without a dead-letter topic (the event is never given up) and
//! to 5 with one (so poison events reach the dead-letter topic in well under
//! a minute).

use std::time::Duration;

use crate::backoff::Backoff;
use crate::config::subscription::RetrySettings;

/// Default first delay.
pub const DEFAULT_INITIAL: Duration = Backoff::DEFAULT.initial;
/// Default longest delay.
pub const DEFAULT_MAX: Duration = Backoff::DEFAULT.max;
/// Default retry budget when the subscription has a dead-letter topic.
pub const DEFAULT_MAX_RETRIES_WITH_DLQ: u32 =
    crate::config::subscription::DEFAULT_MAX_RETRIES_WITH_DLQ;

/// How often and how patiently one subscription retries an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Retries after the first attempt; `None` = unlimited.
    pub max_retries: Option<u32>,
}

/// The subscription's retry settings (parsed once by
/// `config/subscription.rs`) as a policy: the default schedule's shape
/// (doubling, ±20% jitter) with the configured bounds.
impl From<RetrySettings> for RetryPolicy {
    fn from(s: RetrySettings) -> Self {
        Self {
            backoff: Backoff {
                initial: s.initial,
                max: s.max,
                ..Backoff::DEFAULT
            },
            max_retries: s.max_retries,
        }
    }
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
    use crate::config::metadata::test_metadata;
    use crate::config::subscription::SubscriptionOptions;

    /// The policy of a subscription with metadata `pairs`.
    fn policy(pairs: &[(&str, &str)], has_dead_letter: bool) -> RetryPolicy {
        SubscriptionOptions::parse(&test_metadata(pairs), has_dead_letter)
            .unwrap_or_else(|v| panic!("{v:?}"))
            .retry
            .into()
    }

    /// Runs the retry loop of `src/delivery/dispatcher.rs` against an app
    /// that always asks to retry: while the policy allows, wait the delay,
    /// try again. Returns when each retry happened, in paused time.
    async fn retry_times(policy: &RetryPolicy) -> Vec<Duration> {
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        let mut retry = 0;
        while policy.allows(retry) {
            tokio::time::sleep(policy.backoff.delay(retry)).await;
            retry += 1;
            at.push(start.elapsed());
        }
        at
    }

    #[tokio::test(start_paused = true)]
    async fn retries_follow_the_metadata_schedule() {
        let mut p = policy(
            &[
                ("maxRetries", "6"),
                ("retryInitialInterval", "100ms"),
                ("retryMaxInterval", "1s"),
            ],
            false,
        );
        p.backoff.jitter = 0.0;
        let ms = Duration::from_millis;
        assert_eq!(
            retry_times(&p).await,
            [100, 300, 700, 1500, 2500, 3500].map(ms)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_retries_stay_within_twenty_percent_and_the_cap() {
        let p = policy(&[("maxRetries", "12"), ("retryMaxInterval", "2s")], false);
        let at = retry_times(&p).await;
        assert_eq!(at.len(), 12);
        let mut before = Duration::ZERO;
        for (retry, at) in (0..).zip(at) {
            let (gap, base) = (at - before, p.backoff.base_delay(retry));
            // The timer rounds a deadline up to the next millisecond.
            let most = base.mul_f64(1.2).min(Duration::from_secs(2)) + Duration::from_millis(1);
            assert!(
                gap >= base.mul_f64(0.8) && gap <= most,
                "retry {retry}: waited {gap:?} for {base:?}"
            );
            before = at;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn default_budget_with_dead_letter_ends_within_seconds() {
        let p = policy(&[], true);
        let at = retry_times(&p).await;
        assert_eq!(at.len(), 5);
        // 100 + 200 + 400 + 800 + 1600 ms, ±20%.
        let total = at[4];
        assert!(
            total >= Duration::from_millis(2480) && total <= Duration::from_millis(3725),
            "{total:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_interval_below_initial_keeps_the_initial_delay() {
        let mut p = policy(
            &[
                ("maxRetries", "3"),
                ("retryInitialInterval", "2s"),
                ("retryMaxInterval", "1s"),
            ],
            false,
        );
        p.backoff.jitter = 0.0;
        assert_eq!(retry_times(&p).await, [2, 4, 6].map(Duration::from_secs));
    }

    #[test]
    fn budget_defaults_depend_on_dead_letter_topic() {
        let p = policy(&[], false);
        assert_eq!(p.max_retries, None);
        assert!(p.allows(1_000_000));
        let p = policy(&[], true);
        assert_eq!(p.max_retries, Some(5));
        assert!(p.allows(4) && !p.allows(5));
    }

    #[test]
    fn metadata_overrides_the_bounds_and_the_budget() {
        let p = policy(
            &[
                ("maxRetries", "2"),
                ("retryInitialInterval", "5ms"),
                ("retryMaxInterval", "1s"),
            ],
            false,
        );
        assert_eq!(p.max_retries, Some(2));
        assert_eq!(p.backoff.initial, Duration::from_millis(5));
        assert_eq!(p.backoff.max, Duration::from_secs(1));
        assert_eq!(p.backoff.multiplier, Backoff::DEFAULT.multiplier);
        assert_eq!(policy(&[("maxRetries", "-1")], true).max_retries, None);
    }
}
