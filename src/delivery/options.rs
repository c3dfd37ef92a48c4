//! The delivery options of one subscription: the typed settings parsed by
//! `config/subscription.rs` (the parser `sidebus validate` and resource
//! loading use too), turned into the delivery layer's retry policy.

use crate::config::metadata::Validation;
use crate::config::model::SubscriptionSpec;
use crate::config::subscription::SubscriptionOptions as Settings;

use super::lanes::Ordering;
use super::retry::RetryPolicy;

/// Subscription metadata the delivery layer refuses (every bad value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subscription metadata is invalid: {}", problems.describe_errors())]
pub struct BadOption {
    /// Every problem found.
    pub problems: Validation,
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

impl SubscriptionOptions {
    /// Reads the options of `spec` with the one subscription-metadata parser.
    pub fn from_spec(spec: &SubscriptionSpec) -> Result<Self, BadOption> {
        let s = Settings::parse(&spec.metadata, spec.dead_letter_topic.is_some())
            .map_err(|problems| BadOption { problems })?;
        Ok(Self {
            ordering: s.ordering,
            max_in_flight: s.max_in_flight,
            raw_payload: s.raw_payload,
            retry: s.retry.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::model::{BulkSubscribe, SubscriptionKind};

    fn spec(pairs: &[(&str, &str)], dlq: Option<&str>) -> SubscriptionSpec {
        SubscriptionSpec {
            name: "s".into(),
            pubsub_name: "p".into(),
            topic: "t".into(),
            rules: Vec::new(),
            dead_letter_topic: dlq.map(str::to_string),
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
    fn settings_become_the_retry_policy() {
        let o = SubscriptionOptions::from_spec(&spec(&[], None)).expect("valid");
        assert_eq!(o.ordering, Ordering::Key);
        assert_eq!(o.max_in_flight, 256);
        assert_eq!(
            o.retry,
            RetryPolicy {
                backoff: crate::backoff::Backoff::DEFAULT,
                max_retries: None,
            }
        );
        let o = SubscriptionOptions::from_spec(&spec(
            &[
                ("ordering", "Partition"),
                ("maxInFlight", "3"),
                ("rawPayload", "true"),
                ("retryInitialInterval", "5ms"),
                ("retryMaxInterval", "1m30s"),
            ],
            Some("dead"),
        ))
        .expect("valid");
        assert_eq!(o.ordering, Ordering::Partition);
        assert_eq!(o.max_in_flight, 3);
        assert!(o.raw_payload);
        assert_eq!(o.retry.backoff.initial, Duration::from_millis(5));
        assert_eq!(o.retry.backoff.max, Duration::from_secs(90));
        assert_eq!(o.retry.max_retries, Some(5));
    }

    #[test]
    fn bad_values_are_errors_with_every_problem() {
        let err = SubscriptionOptions::from_spec(&spec(
            &[("maxInFlight", "80000"), ("rawPayload", "yes")],
            None,
        ))
        .expect_err("invalid");
        assert_eq!(err.problems.errors.len(), 2);
        assert!(err.to_string().contains("maxInFlight=\"80000\""), "{err}");
    }
}
