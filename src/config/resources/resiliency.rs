//! `kind: Resiliency`: the typed policies (`ResiliencyPolicies`) the policy
//! layer applies, parsed from the raw `spec` kept in [`ResiliencySpec`](crate::config::model::ResiliencySpec).
//! One parser (`resiliency_parse.rs`, which also holds the parsing
//! constructors of [`ResiliencyPolicies`]) serves validation at load time
//! and the policy layer later, so the two cannot disagree. This file is the
//! model only and imports nothing of the parser.

use std::collections::BTreeMap;
use std::time::Duration;

/// One problem in a Resiliency spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}={value:?}: {reason}")]
pub struct PolicyProblem {
    /// Dotted field path from the resource root, e.g. `spec.policies.retries.r.maxRetries`.
    pub field: String,
    /// The offending value.
    pub value: String,
    /// Why it is wrong.
    pub reason: String,
}

impl PolicyProblem {
    /// Convenience constructor.
    pub fn new(field: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Backoff shape of a retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same `duration` between attempts.
    Constant,
    /// Growing from `initial_interval` by ≈1.5× (randomised ±50%), capped at
    /// `max_interval`, as dapr/kit does.
    Exponential,
}

/// Status codes a retry applies to (`matching`); other codes are permanent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusMatching {
    /// `httpStatusCodes` as inclusive ranges (100–599).
    pub http: Vec<(u16, u16)>,
    /// `gRPCStatusCodes` as inclusive ranges (0–16).
    pub grpc: Vec<(u16, u16)>,
}

impl StatusMatching {
    /// Whether an HTTP status should be retried. With no HTTP list, every
    /// code is retried (daprd's behaviour when `matching` omits the kind).
    pub fn retries_http(&self, code: u16) -> bool {
        self.http.is_empty() || self.http.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }

    /// Whether a gRPC status code should be retried (same rule).
    pub fn retries_grpc(&self, code: u16) -> bool {
        self.grpc.is_empty() || self.grpc.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }
}

/// One named retry policy (`spec.policies.retries.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `policy`: constant (default) or exponential.
    pub backoff: Backoff,
    /// `duration`: the constant interval (default 5s).
    pub duration: Duration,
    /// `initialInterval`: first exponential interval (default 500ms).
    pub initial_interval: Duration,
    /// `maxInterval`: exponential cap (default 60s).
    pub max_interval: Duration,
    /// `maxRetries`: -1 (default) retries forever.
    pub max_retries: i64,
    /// `matching`: codes to retry; `None` retries every failure.
    pub matching: Option<StatusMatching>,
}

/// One named circuit breaker (`spec.policies.circuitBreakers.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreakerPolicy {
    /// `maxRequests` allowed while half-open (default 1).
    pub max_requests: u32,
    /// `interval` after which closed-state counts reset; zero = never.
    pub interval: Duration,
    /// `timeout`: how long the breaker stays open (default 60s).
    pub timeout: Duration,
    /// `trip`: CEL over `requests`, `totalSuccesses`, `totalFailures`,
    /// `consecutiveSuccesses`, `consecutiveFailures` (default
    /// `consecutiveFailures > 5`).
    pub trip: String,
}

/// Policy names bound to one direction of one component target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicies {
    /// Name of a timeout policy.
    pub timeout: Option<String>,
    /// Name of a retry policy.
    pub retry: Option<String>,
    /// Name of a circuit breaker policy.
    pub circuit_breaker: Option<String>,
}

/// `spec.targets.components.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentTargets {
    /// Delivery (sidecar → app).
    pub inbound: TargetPolicies,
    /// Publish (sidecar → broker).
    pub outbound: TargetPolicies,
}

/// Which way a call goes through a pub/sub component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Delivering an event to the app.
    Inbound,
    /// Publishing to the broker.
    Outbound,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        }
    }
}

/// The policies that apply to one component in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedPolicies<'a> {
    /// Timeout per attempt.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: Option<&'a RetryPolicy>,
    /// Circuit breaker.
    pub circuit_breaker: Option<&'a CircuitBreakerPolicy>,
}

/// Every policy and component target of the loaded Resiliency resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResiliencyPolicies {
    /// Named timeouts.
    pub timeouts: BTreeMap<String, Duration>,
    /// Named retry policies.
    pub retries: BTreeMap<String, RetryPolicy>,
    /// Named circuit breakers.
    pub circuit_breakers: BTreeMap<String, CircuitBreakerPolicy>,
    /// Component targets by component name.
    pub components: BTreeMap<String, ComponentTargets>,
}

impl ResiliencyPolicies {
    /// The policies for a component and direction: the named target first,
    /// then daprd's default policy names from the narrowest
    /// (`DefaultPubsubComponentInboundRetryPolicy`) to the global one
    /// (`DefaultRetryPolicy`).
    pub fn policies_for(&self, component: &str, direction: Direction) -> AppliedPolicies<'_> {
        let target = self.components.get(component).map(|t| match direction {
            Direction::Inbound => &t.inbound,
            Direction::Outbound => &t.outbound,
        });
        let names = |kind: &str, named: Option<&String>| -> Vec<String> {
            let d = direction.word();
            let mut v: Vec<String> = named.into_iter().cloned().collect();
            v.extend([
                format!("DefaultPubsubComponent{d}{kind}Policy"),
                format!("DefaultComponent{d}{kind}Policy"),
                format!("DefaultComponent{kind}Policy"),
                format!("Default{kind}Policy"),
            ]);
            v
        };
        AppliedPolicies {
            timeout: names("Timeout", target.and_then(|t| t.timeout.as_ref()))
                .iter()
                .find_map(|n| self.timeouts.get(n).copied()),
            retry: names("Retry", target.and_then(|t| t.retry.as_ref()))
                .iter()
                .find_map(|n| self.retries.get(n)),
            circuit_breaker: names(
                "CircuitBreaker",
                target.and_then(|t| t.circuit_breaker.as_ref()),
            )
            .iter()
            .find_map(|n| self.circuit_breakers.get(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::ResiliencySpec;
    use serde_json::{json, Value};

    fn spec() -> Value {
        json!({
            "policies": {
                "timeouts": {"DefaultTimeoutPolicy": "30s", "DefaultComponentInboundTimeoutPolicy": "2s", "fast": "100ms"},
                "retries": {
                    "DefaultRetryPolicy": {"maxRetries": 3},
                    "DefaultPubsubComponentOutboundRetryPolicy": {"policy": "exponential", "maxRetries": "7"},
                    "named": {"policy": "constant", "duration": "250ms", "matching": {"httpStatusCodes": "500-503, 429"}}
                },
                "circuitBreakers": {"DefaultComponentCircuitBreakerPolicy": {}}
            },
            "targets": {"components": {"orders": {"inbound": {"retry": "named", "timeout": "fast"}}}}
        })
    }

    #[test]
    fn named_targets_win_then_default_names_narrowest_first() {
        let p = ResiliencyPolicies::from_spec(&spec()).unwrap_or_else(|e| panic!("{e:?}"));
        let inbound = p.policies_for("orders", Direction::Inbound);
        assert_eq!(inbound.timeout, Some(Duration::from_millis(100)));
        let retry = inbound.retry.unwrap_or_else(|| panic!("named retry"));
        assert_eq!(
            (retry.duration, retry.max_retries),
            (Duration::from_millis(250), -1)
        );
        let m = retry.matching.clone().unwrap_or_default();
        assert_eq!(m.http, [(500, 503), (429, 429)]);
        assert!(m.retries_grpc(14), "no gRPC list: every gRPC code retries");

        let outbound = p.policies_for("orders", Direction::Outbound);
        assert_eq!(outbound.timeout, Some(Duration::from_secs(30)));
        let retry = outbound
            .retry
            .unwrap_or_else(|| panic!("default outbound retry"));
        assert_eq!(
            (retry.backoff, retry.max_retries),
            (Backoff::Exponential, 7)
        );

        let other = p.policies_for("payments", Direction::Inbound);
        assert_eq!(other.timeout, Some(Duration::from_secs(2)));
        assert_eq!(other.retry.map(|r| r.max_retries), Some(3));
        let cb = other
            .circuit_breaker
            .unwrap_or_else(|| panic!("default breaker"));
        assert_eq!(
            (cb.max_requests, cb.timeout, cb.trip.as_str()),
            (1, Duration::from_secs(60), "consecutiveFailures > 5")
        );
        assert_eq!(cb.interval, Duration::ZERO);
    }

    #[test]
    fn empty_spec_has_no_policies_and_first_definition_wins() {
        let empty = ResiliencyPolicies::from_spec(&Value::Null).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            empty.policies_for("x", Direction::Outbound),
            AppliedPolicies::default()
        );

        let spec_of = |s: Value| ResiliencySpec {
            name: "r".into(),
            spec: s,
            scopes: Vec::new(),
            source: "r.yaml".into(),
        };
        let merged = ResiliencyPolicies::from_specs(&[
            spec_of(json!({"policies": {"timeouts": {"t": "1s"}}})),
            spec_of(json!({"policies": {"timeouts": {"t": "9s", "u": "2s"}}})),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(merged.timeouts.get("t"), Some(&Duration::from_secs(1)));
        assert_eq!(merged.timeouts.get("u"), Some(&Duration::from_secs(2)));

        let bad = ResiliencyPolicies::from_spec(&json!({"policies": {"timeouts": {"t": 5}}}));
        let problems = bad.err().unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "spec.policies.timeouts.t");
    }
}
