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

use crate::broker::Metadata;

/// Default first delay.
pub const DEFAULT_INITIAL: Duration = Duration::from_millis(100);
/// Default longest delay.
pub const DEFAULT_MAX: Duration = Duration::from_secs(10);
/// Default retry budget when the subscription has a dead-letter topic.
pub const DEFAULT_MAX_RETRIES_WITH_DLQ: u32 = 5;

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
