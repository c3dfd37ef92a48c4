//! Subscription metadata the delivery layer understands, parsed once when a
//! subscription starts. The same metadata is also passed to the component.

use crate::broker::Metadata;
use crate::config::model::SubscriptionSpec;

use super::lanes::Ordering;
use super::retry::{BadRetrySetting, RetryPolicy};

/// Default `maxInFlight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Largest accepted `maxInFlight`, so one subscription cannot hold unbounded
/// memory.
pub const MAX_MAX_IN_FLIGHT: usize = 65_536;

/// A subscription metadata value the delivery layer refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOption {
    /// A retry setting is invalid.
    #[error(transparent)]
    Retry(#[from] BadRetrySetting),
    /// Any other key.
    #[error("subscription metadata {key}={value:?} is invalid: {reason}")]
    Invalid {
        /// The metadata key.
        key: String,
        /// Its value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// How one subscription is delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionOptions {
    /// `ordering`: key (default), partition or none.
    pub ordering: Ordering,
    /// `maxInFlight`: events accepted and not yet finished (default 256).
    pub max_in_flight: usize,
    /// `rawPayload`: broker bytes are not a CloudEvent; wrap them.
    pub raw_payload: bool,
    /// Retry budget and backoff.
    pub retry: RetryPolicy,
}

fn lookup<'a>(md: &'a Metadata, key: &str) -> Option<(&'a str, &'a str)> {
    md.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

fn invalid(key: &str, value: &str, reason: &'static str) -> BadOption {
    BadOption::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// Go's `strconv.ParseBool`, which daprd uses for `rawPayload`.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl SubscriptionOptions {
    /// Reads the options of `spec`.
    pub fn from_spec(spec: &SubscriptionSpec) -> Result<Self, BadOption> {
        let md = &spec.metadata;
        let ordering = match lookup(md, "ordering") {
            None => Ordering::default(),
            Some((k, v)) => {
                Ordering::parse(v).ok_or_else(|| invalid(k, v, "use key, partition or none"))?
            }
        };
        let max_in_flight = match lookup(md, "maxInFlight") {
            None => DEFAULT_MAX_IN_FLIGHT,
            Some((k, v)) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_MAX_IN_FLIGHT).contains(&n) => n,
                _ => return Err(invalid(k, v, "must be an integer from 1 to 65536")),
            },
        };
        let raw_payload = match lookup(md, "rawPayload") {
            None => false,
            Some((k, v)) => parse_bool(v).ok_or_else(|| invalid(k, v, "not a boolean"))?,
        };
        let retry = RetryPolicy::from_metadata(md, spec.dead_letter_topic.is_some())?;
        Ok(Self {
            ordering,
            max_in_flight,
            raw_payload,
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BulkSubscribe, SubscriptionKind};

    fn spec(pairs: &[(&str, &str)]) -> SubscriptionSpec {
        SubscriptionSpec {
            name: "s".into(),
            pubsub_name: "p".into(),
            topic: "t".into(),
            rules: Vec::new(),
            dead_letter_topic: None,
            metadata: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            bulk: BulkSubscribe::default(),
            scopes: Vec::new(),
            kind: SubscriptionKind::Declarative,
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let o = SubscriptionOptions::from_spec(&spec(&[])).unwrap();
        assert_eq!(o.ordering, Ordering::Key);
        assert_eq!(o.max_in_flight, 256);
        assert!(!o.raw_payload);
        let o = SubscriptionOptions::from_spec(&spec(&[
            ("ordering", "Partition"),
            ("maxInFlight", "3"),
            ("rawPayload", "true"),
        ]))
        .unwrap();
        assert_eq!(o.ordering, Ordering::Partition);
        assert_eq!(o.max_in_flight, 3);
        assert!(o.raw_payload);
    }

    #[test]
    fn bad_values_are_errors() {
        for (k, v) in [
            ("ordering", "fifo"),
            ("maxInFlight", "0"),
            ("rawPayload", "yes"),
            ("maxRetries", "many"),
        ] {
            assert!(
                SubscriptionOptions::from_spec(&spec(&[(k, v)])).is_err(),
                "{k}={v}"
            );
        }
    }
}
