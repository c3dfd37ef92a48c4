//! Parsing of a Resiliency `spec` into the model of `resiliency.rs`
//! (durations, retry and breaker policies, status-code lists, targets),
//! collecting every problem.

use std::time::Duration;

use serde_json::Value;

use super::resiliency::{
    Backoff, CircuitBreakerPolicy, ComponentTargets, PolicyProblem, ResiliencyPolicies,
    RetryPolicy, StatusMatching, TargetPolicies,
};
use crate::config::model::ResiliencySpec;
use crate::config::{cel, duration};

/// The entries of the mapping at a dotted path (empty when absent).
pub(crate) fn map_at<'a>(v: &'a Value, dotted: &str) -> Vec<(&'a String, &'a Value)> {
    dotted
        .split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_object)
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

/// A scalar field as a string (numbers and bools in their JSON spelling).
pub(crate) fn str_at(v: &Value, key: &str) -> Option<String> {
    text(v.get(key)?)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn duration(
    v: &Value,
    field: &str,
    problems: &mut Vec<PolicyProblem>,
) -> Option<Duration> {
    let raw = text(v).unwrap_or_default();
    match duration::parse(&raw) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(PolicyProblem::new(
                field,
                &raw,
                format!("not a duration such as 5s or 500ms: {e}"),
            ));
            None
        }
    }
}

fn duration_or(
    v: &Value,
    key: &str,
    default: Duration,
    field: &str,
    problems: &mut Vec<PolicyProblem>,
) -> Duration {
    match v.get(key) {
        None | Some(Value::Null) => default,
        Some(x) => duration(x, &format!("{field}.{key}"), problems).unwrap_or(default),
    }
}

pub(crate) fn retry(
    v: &Value,
    field: &str,
    problems: &mut Vec<PolicyProblem>,
) -> Option<RetryPolicy> {
    let before = problems.len();
    let backoff = match str_at(v, "policy").as_deref() {
        None | Some("") | Some("constant") => Backoff::Constant,
        Some("exponential") => Backoff::Exponential,
        Some(other) => {
            problems.push(PolicyProblem::new(
                &format!("{field}.policy"),
                other,
                "must be constant or exponential",
            ));
            Backoff::Constant
        }
    };
    let max_retries = match v.get("maxRetries") {
        None | Some(Value::Null) => -1,
        Some(x) => {
            let raw = text(x).unwrap_or_default();
            match raw.parse::<i64>() {
                Ok(n) if n >= -1 => n,
                _ => {
                    problems.push(PolicyProblem::new(
                        &format!("{field}.maxRetries"),
                        &raw,
                        "must be an integer >= -1 (-1 retries forever)",
                    ));
                    -1
                }
            }
        }
    };
    let matching = v.get("matching").map(|m| StatusMatching {
        http: codes(m, "httpStatusCodes", 100, 599, field, problems),
        grpc: codes(m, "gRPCStatusCodes", 0, 16, field, problems),
    });
    let policy = RetryPolicy {
        backoff,
        duration: duration_or(v, "duration", Duration::from_secs(5), field, problems),
        initial_interval: duration_or(
            v,
            "initialInterval",
            Duration::from_millis(500),
            field,
            problems,
        ),
        max_interval: duration_or(v, "maxInterval", Duration::from_secs(60), field, problems),
        max_retries,
        matching,
    };
    (problems.len() == before).then_some(policy)
}

/// `"500-503,429"` → inclusive ranges within `[lo, hi]`.
fn codes(
    m: &Value,
    key: &str,
    lo: u16,
    hi: u16,
    field: &str,
    problems: &mut Vec<PolicyProblem>,
) -> Vec<(u16, u16)> {
    let Some(raw) = str_at(m, key) else {
        return Vec::new();
    };
    let field = format!("{field}.matching.{key}");
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
            (Ok(a), Ok(b)) if a <= b && a >= lo && b <= hi => out.push((a, b)),
            _ => {
                problems.push(PolicyProblem::new(
                    &field,
                    &raw,
                    format!("{part:?} is not a code or range (a-b) within {lo}-{hi}"),
                ));
            }
        }
    }
    out
}

pub(crate) fn breaker(
    v: &Value,
    field: &str,
    problems: &mut Vec<PolicyProblem>,
) -> Option<CircuitBreakerPolicy> {
    let before = problems.len();
    let max_requests = match v.get("maxRequests") {
        None | Some(Value::Null) => 1,
        Some(x) => {
            let raw = text(x).unwrap_or_default();
            match raw.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    problems.push(PolicyProblem::new(
                        &format!("{field}.maxRequests"),
                        &raw,
                        "must be an integer >= 1",
                    ));
                    1
                }
            }
        }
    };
    let trip = str_at(v, "trip")
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "consecutiveFailures > 5".to_string());
    if let Err(reason) = cel::check(&trip) {
        problems.push(PolicyProblem::new(&format!("{field}.trip"), &trip, reason));
    }
    let policy = CircuitBreakerPolicy {
        max_requests,
        interval: duration_or(v, "interval", Duration::ZERO, field, problems),
        timeout: duration_or(v, "timeout", Duration::from_secs(60), field, problems),
        trip,
    };
    (problems.len() == before).then_some(policy)
}

impl ResiliencyPolicies {
    /// Parses one `spec`, listing every problem (field paths start at
    /// `spec.`). Problems leave the offending policy out.
    pub fn parse(spec: &Value) -> (Self, Vec<PolicyProblem>) {
        let mut problems = Vec::new();
        let mut out = Self::default();
        for (name, v) in map_at(spec, "policies.timeouts") {
            let field = format!("spec.policies.timeouts.{name}");
            if let Some(d) = duration(v, &field, &mut problems) {
                out.timeouts.insert(name.clone(), d);
            }
        }
        for (name, v) in map_at(spec, "policies.retries") {
            let field = format!("spec.policies.retries.{name}");
            if let Some(r) = retry(v, &field, &mut problems) {
                out.retries.insert(name.clone(), r);
            }
        }
        for (name, v) in map_at(spec, "policies.circuitBreakers") {
            let field = format!("spec.policies.circuitBreakers.{name}");
            if let Some(cb) = breaker(v, &field, &mut problems) {
                out.circuit_breakers.insert(name.clone(), cb);
            }
        }
        for (name, v) in map_at(spec, "targets.components") {
            let field = format!("spec.targets.components.{name}");
            let target = ComponentTargets {
                inbound: out.target(v.get("inbound"), &format!("{field}.inbound"), &mut problems),
                outbound: out.target(
                    v.get("outbound"),
                    &format!("{field}.outbound"),
                    &mut problems,
                ),
            };
            out.components.insert(name.clone(), target);
        }
        (out, problems)
    }

    /// Parses one spec; any problem is an error.
    pub fn from_spec(spec: &Value) -> Result<Self, Vec<PolicyProblem>> {
        let (policies, problems) = Self::parse(spec);
        if problems.is_empty() {
            Ok(policies)
        } else {
            Err(problems)
        }
    }

    /// Merges the loaded Resiliency resources; the first definition of a
    /// name wins, as with components and subscriptions.
    pub fn from_specs(specs: &[ResiliencySpec]) -> Result<Self, Vec<PolicyProblem>> {
        let mut out = Self::default();
        for spec in specs {
            let one = Self::from_spec(&spec.spec)?;
            for (k, v) in one.timeouts {
                out.timeouts.entry(k).or_insert(v);
            }
            for (k, v) in one.retries {
                out.retries.entry(k).or_insert(v);
            }
            for (k, v) in one.circuit_breakers {
                out.circuit_breakers.entry(k).or_insert(v);
            }
            for (k, v) in one.components {
                out.components.entry(k).or_insert(v);
            }
        }
        Ok(out)
    }

    /// One direction of a target; references must name defined policies.
    fn target(
        &self,
        v: Option<&Value>,
        field: &str,
        problems: &mut Vec<PolicyProblem>,
    ) -> TargetPolicies {
        let Some(v) = v else {
            return TargetPolicies::default();
        };
        let mut reference = |key: &str, defined: &dyn Fn(&str) -> bool, what: &str| {
            let name = str_at(v, key)?;
            if !defined(&name) {
                problems.push(PolicyProblem::new(
                    &format!("{field}.{key}"),
                    &name,
                    format!("no {what} policy with this name in spec.policies"),
                ));
                return None;
            }
            Some(name)
        };
        TargetPolicies {
            timeout: reference("timeout", &|n| self.timeouts.contains_key(n), "timeout"),
            retry: reference("retry", &|n| self.retries.contains_key(n), "retry"),
            circuit_breaker: reference(
                "circuitBreaker",
                &|n| self.circuit_breakers.contains_key(n),
                "circuit breaker",
            ),
        }
    }
}
