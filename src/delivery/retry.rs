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
use crate::broker::Metadata;

/// Default first delay.
pub const DEFAULT_INITIAL: Duration = Backoff::DEFAULT.initial;
/// Default longest delay.
pub const DEFAULT_MAX: Duration = Backoff::DEFAULT.max;
/// Default retry budget when the subscription has a dead-letter topic.
pub const DEFAULT_MAX_RETRIES_WITH_DLQ: u32 = 5;

/// How often and how patiently one subscription retries an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Retries after the first attempt; `None` = unlimited.
    pub max_retries: Option<u32>,
}

/// A subscription metadata value that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subscription metadata {key}={value:?} is invalid: {reason}")]
pub struct BadRetrySetting {
    /// The metadata key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl RetryPolicy {
    /// Reads `retryInitialInterval`, `retryMaxInterval` (milliseconds or a
    /// duration like `250ms`, `2s`, `1m`) and `maxRetries` (-1 = unlimited)
    /// from subscription metadata; defaults per the module doc.
    pub fn from_metadata(md: &Metadata, has_dead_letter: bool) -> Result<Self, BadRetrySetting> {
        let mut backoff = Backoff::default();
        if let Some((k, v)) = lookup(md, "retryInitialInterval") {
            backoff.initial = parse_duration(k, v)?;
        }
        if let Some((k, v)) = lookup(md, "retryMaxInterval") {
            backoff.max = parse_duration(k, v)?;
        }
        if backoff.max < backoff.initial {
            backoff.max = backoff.initial;
        }
        let default_max = has_dead_letter.then_some(DEFAULT_MAX_RETRIES_WITH_DLQ);
        let max_retries = match lookup(md, "maxRetries") {
            None => default_max,
            Some((k, v)) => match v.trim().parse::<i64>() {
                Ok(n) if n < 0 => None,
                Ok(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                Err(_) => return Err(bad(k, v, "not an integer")),
            },
        };
        Ok(Self {
            backoff,
            max_retries,
        })
    }

    /// May retry number `retry` (0 = first retry) still happen?
    pub fn allows(&self, retry: u32) -> bool {
        self.max_retries.is_none_or(|max| retry < max)
    }
}

fn lookup<'a>(md: &'a Metadata, key: &str) -> Option<(&'a str, &'a str)> {
    md.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

fn bad(key: &str, value: &str, reason: &'static str) -> BadRetrySetting {
    BadRetrySetting {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// Parses `250`, `250ms`, `2s`, `1m` into a duration.
fn parse_duration(key: &str, raw: &str) -> Result<Duration, BadRetrySetting> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad(key, raw, "not a duration"))?;
    let d = match unit {
        "" | "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad(key, raw, "unknown unit (use ms, s or m)")),
    };
    if d.is_zero() {
        return Err(bad(key, raw, "must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
        let mut p = RetryPolicy::from_metadata(
            &md(&[
                ("maxRetries", "6"),
                ("retryInitialInterval", "100ms"),
                ("retryMaxInterval", "1s"),
            ]),
            false,
        )
        .unwrap();
        p.backoff.jitter = 0.0;
        let ms = Duration::from_millis;
        assert_eq!(
            retry_times(&p).await,
            [100, 300, 700, 1500, 2500, 3500].map(ms)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_retries_stay_within_twenty_percent_and_the_cap() {
        let p = RetryPolicy::from_metadata(
            &md(&[("maxRetries", "12"), ("retryMaxInterval", "2s")]),
            false,
        )
        .unwrap();
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
        let p = RetryPolicy::from_metadata(&Metadata::new(), true).unwrap();
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
        let mut p = RetryPolicy::from_metadata(
            &md(&[
                ("maxRetries", "3"),
                ("retryInitialInterval", "2s"),
                ("retryMaxInterval", "1s"),
            ]),
            false,
        )
        .unwrap();
        p.backoff.jitter = 0.0;
        assert_eq!(retry_times(&p).await, [2, 4, 6].map(Duration::from_secs));
    }

    #[test]
    fn budget_defaults_depend_on_dead_letter_topic() {
        let p = RetryPolicy::from_metadata(&Metadata::new(), false).unwrap();
        assert_eq!(p.max_retries, None);
        assert!(p.allows(1_000_000));
        let p = RetryPolicy::from_metadata(&Metadata::new(), true).unwrap();
        assert_eq!(p.max_retries, Some(5));
        assert!(p.allows(4) && !p.allows(5));
    }

    #[test]
    fn metadata_overrides_and_rejects_garbage() {
        let p = RetryPolicy::from_metadata(
            &md(&[
                ("maxRetries", "2"),
                ("retryInitialInterval", "5ms"),
                ("retryMaxInterval", "1s"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(p.max_retries, Some(2));
        assert_eq!(p.backoff.initial, Duration::from_millis(5));
        assert_eq!(p.backoff.max, Duration::from_secs(1));
        let p = RetryPolicy::from_metadata(&md(&[("maxRetries", "-1")]), true).unwrap();
        assert_eq!(p.max_retries, None);
        assert!(RetryPolicy::from_metadata(&md(&[("maxRetries", "x")]), false).is_err());
        assert!(RetryPolicy::from_metadata(&md(&[("retryMaxInterval", "2h")]), false).is_err());
    }
}
