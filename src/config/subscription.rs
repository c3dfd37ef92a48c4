//! The subscription metadata sidebus itself reads (`ordering`,
//! `maxInFlight`, `rawPayload`, `maxRetries`, `retryInitialInterval`,
//! `retryMaxInterval`), parsed once into [`SubscriptionOptions`].
//!
//! Every origin of a subscription goes through [`SubscriptionOptions::parse`]:
//! `sidebus validate` and declarative start-up (resource loading),
//! programmatic subscriptions (`GET /dapr/subscribe`) and streaming ones when
//! they start. One parser means one set of limits and one key rule (keys
//! match case-insensitively), so whatever validation accepts, run time runs.
//! Other keys belong to the component and are not reported here.

use std::time::Duration;

use super::metadata::{Metadata, MetadataReader, Parsed, Validation};

/// Default `maxInFlight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Largest accepted `maxInFlight`, so one subscription cannot hold unbounded
/// memory.
pub const MAX_IN_FLIGHT: usize = 65_536;
/// Default delay before the first retry.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Default longest delay between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);
/// Default retry budget when the subscription has a dead-letter topic (so
/// poison events reach it in well under a minute); without one the budget
/// is unlimited and an event is never given up.
pub const DEFAULT_MAX_RETRIES_WITH_DLQ: u32 = 5;

/// How a subscription orders deliveries (subscription metadata `ordering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// Same message key in order; events without a key are unordered.
    #[default]
    Key,
    /// Same broker partition in order.
    Partition,
    /// No ordering: everything in parallel.
    None,
}

impl Ordering {
    /// Parses `key`, `partition` or `none` (case-insensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        ORDERINGS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(raw.trim()))
            .map(|(_, o)| *o)
    }
}

const ORDERINGS: &[(&str, Ordering)] = &[
    ("key", Ordering::Key),
    ("partition", Ordering::Partition),
    ("none", Ordering::None),
];

/// Retry budget and backoff bounds of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// `retryInitialInterval`: delay before the first retry (default 100ms).
    pub initial: Duration,
    /// `retryMaxInterval`: longest delay (default 10s; never below `initial`).
    pub max: Duration,
    /// `maxRetries`: retries after the first attempt; `None` = unlimited
    /// (`-1`, or the default without a dead-letter topic).
    pub max_retries: Option<u32>,
}

/// How one subscription is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// `ordering`: key (default), partition or none.
    pub ordering: Ordering,
    /// `maxInFlight`: events accepted and not yet finished (default 256).
    pub max_in_flight: usize,
    /// `rawPayload`: broker bytes are not a CloudEvent; wrap them.
    pub raw_payload: bool,
    /// Retry budget and backoff.
    pub retry: RetrySettings,
}

impl SubscriptionOptions {
    /// Reads the options from a subscription's metadata; `has_dead_letter`
    /// picks the default retry budget. `Err` lists every bad value.
    pub fn parse(metadata: &Metadata, has_dead_letter: bool) -> Result<Self, Validation> {
        // Keys are read in alphabetical order, so problems are listed in
        // the order the metadata map (and `sidebus validate`) shows them.
        let mut r = MetadataReader::new(metadata);
        let max_in_flight = r
            .int("maxInFlight", 1..=MAX_IN_FLIGHT, "")
            .unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        let max_retries = r
            .int(
                "maxRetries",
                -1..=i64::MAX,
                "must be an integer >= -1 (-1 retries forever)",
            )
            .map(|n| u32::try_from(n).ok().or((n >= 0).then_some(u32::MAX)));
        let ordering = r.choice("ordering", ORDERINGS).unwrap_or_default();
        let raw_payload = r.bool("rawPayload", false);
        let initial = positive(&mut r, "retryInitialInterval").unwrap_or(DEFAULT_RETRY_INITIAL);
        let max = positive(&mut r, "retryMaxInterval").unwrap_or(DEFAULT_RETRY_MAX);
        let retry = RetrySettings {
            initial,
            max: max.max(initial),
            max_retries: max_retries
                .unwrap_or_else(|| has_dead_letter.then_some(DEFAULT_MAX_RETRIES_WITH_DLQ)),
        };
        let options = Self {
            ordering,
            max_in_flight,
            raw_payload,
            retry,
        };
        r.finish_open(options).map(|p: Parsed<Self>| p.config)
    }
}

/// A duration that must be above zero (a zero retry delay would spin).
fn positive(r: &mut MetadataReader<'_>, key: &str) -> Option<Duration> {
    let d = r.duration(key)?;
    if d.is_zero() {
        let (k, v) = r.entry(key)?;
        r.fail(k, v, "must be greater than zero");
        return None;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metadata::test_metadata as md;

    fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
        match SubscriptionOptions::parse(&md(pairs), false) {
            Ok(o) => panic!("accepted {o:?}"),
            Err(v) => v.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let o = SubscriptionOptions::parse(&md(&[]), false).expect("valid");
        assert_eq!(o.ordering, Ordering::Key);
        assert_eq!(o.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert!(!o.raw_payload);
        assert_eq!(o.retry.initial, DEFAULT_RETRY_INITIAL);
        assert_eq!(o.retry.max, DEFAULT_RETRY_MAX);
        assert_eq!(o.retry.max_retries, None);
        let o = SubscriptionOptions::parse(
            &md(&[
                ("Ordering", "Partition"),
                ("maxinflight", "65536"),
                ("rawPayload", "True"),
                ("maxRetries", "2"),
                ("retryInitialInterval", "5ms"),
                ("retryMaxInterval", "1m30s"),
                ("queueName", "for the component"),
            ]),
            false,
        )
        .expect("valid");
        assert_eq!(o.ordering, Ordering::Partition);
        assert_eq!(o.max_in_flight, 65_536);
        assert!(o.raw_payload);
        assert_eq!(o.retry.max_retries, Some(2));
        assert_eq!(o.retry.initial, Duration::from_millis(5));
        assert_eq!(o.retry.max, Duration::from_secs(90));
    }

    #[test]
    fn retry_budget_depends_on_the_dead_letter_topic() {
        let with_dlq = SubscriptionOptions::parse(&md(&[]), true).expect("valid");
        assert_eq!(
            with_dlq.retry.max_retries,
            Some(DEFAULT_MAX_RETRIES_WITH_DLQ)
        );
        let forever = SubscriptionOptions::parse(&md(&[("maxRetries", "-1")]), true);
        assert_eq!(forever.expect("valid").retry.max_retries, None);
        let big = SubscriptionOptions::parse(&md(&[("maxRetries", "99999999999")]), true);
        assert_eq!(big.expect("valid").retry.max_retries, Some(u32::MAX));
    }

    #[test]
    fn bare_numbers_are_seconds_and_max_is_never_below_initial() {
        let o = SubscriptionOptions::parse(&md(&[("retryInitialInterval", "90")]), false);
        let retry = o.expect("valid").retry;
        assert_eq!(retry.initial, Duration::from_secs(90));
        assert_eq!(retry.max, Duration::from_secs(90));
    }

    #[test]
    fn every_bad_value_is_reported_once() {
        assert_eq!(
            errors(&[
                ("ordering", "fifo"),
                ("MaxInFlight", "80000"),
                ("rawPayload", "yes"),
                ("maxRetries", "-2"),
                ("retryInitialInterval", "0s"),
                ("retryMaxInterval", "bad"),
            ]),
            [
                "MaxInFlight=\"80000\": must be an integer from 1 to 65536",
                "maxRetries=\"-2\": must be an integer >= -1 (-1 retries forever)",
                "ordering=\"fifo\": must be one of key, partition, none",
                "rawPayload=\"yes\": must be a boolean (true, false, 1, 0, t, f)",
                "retryInitialInterval=\"0s\": must be greater than zero",
                "retryMaxInterval=\"bad\": must be a duration such as 500ms, 5s or 1m30s, or whole seconds: expected a number before the unit",
            ]
        );
        assert_eq!(errors(&[("maxInFlight", "0")]).len(), 1);
    }
}
