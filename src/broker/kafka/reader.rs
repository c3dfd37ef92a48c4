//! The metadata reader behind [`KafkaConfig::parse`](super::config::KafkaConfig::parse):
//! typed getters that record every problem instead of stopping at the first,
//! and the parsers of the multi-key settings (auth, rebalance strategy,
//! timing constraints).

use std::time::Duration;

use super::config::{Auth, KafkaConfig};
use crate::broker::registry::MetadataProblem;
use crate::broker::Metadata;

/// Keys whose values are never echoed in problems.
const SECRET: &[&str] = &["saslPassword", "clientKey"];

/// Reads metadata, remembering every problem.
pub struct Reader<'a> {
    /// The component's metadata.
    pub meta: &'a Metadata,
    /// Problems found so far.
    pub errors: Vec<MetadataProblem>,
}

impl<'a> Reader<'a> {
    /// The trimmed, non-empty value of `key` (names match case-insensitively).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.meta
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Records a problem; secret values are shown as `<secret>`.
    pub fn fail(&mut self, key: &str, value: &str, reason: impl Into<String>) {
        let shown = if SECRET.iter().any(|s| s.eq_ignore_ascii_case(key)) {
            "<secret>"
        } else {
            value
        };
        self.errors.push(MetadataProblem::new(key, shown, reason));
    }

    /// A Go duration, or `default` when absent or invalid (recorded).
    pub fn duration(&mut self, key: &str, default: Duration) -> Duration {
        match self.get(key) {
            None => default,
            // Bare integers are milliseconds, as daprd's metadata decoder
            // reads duration fields; anything else is a Go duration.
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .or_else(|_| crate::config::duration::parse(v).map_err(|e| e.to_string()))
                .unwrap_or_else(|e| {
                    self.fail(key, v, format!("not a duration: {e}"));
                    default
                }),
        }
    }

    /// A boolean (`true`/`false`/`1`/`0`), false when absent.
    pub fn bool(&mut self, key: &str) -> bool {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(v) => {
                let v = v.to_string();
                self.fail(key, &v, "expected true or false");
                false
            }
        }
    }

    /// A number accepted by `ok`, `None` when absent or invalid (recorded).
    pub fn int<T: std::str::FromStr>(&mut self, key: &str, ok: impl Fn(&T) -> bool) -> Option<T> {
        let v = self.get(key)?;
        match v.parse::<T>() {
            Ok(n) if ok(&n) => Some(n),
            _ => {
                self.fail(key, v, "not a number in the allowed range");
                None
            }
        }
    }

    /// One of `allowed` (case-insensitive), `default` when absent or invalid.
    pub fn choice(
        &mut self,
        key: &str,
        allowed: &[&'static str],
        default: &'static str,
    ) -> &'static str {
        match self.get(key) {
            None => default,
            Some(v) => match allowed.iter().find(|a| a.eq_ignore_ascii_case(v)) {
                Some(a) => a,
                None => {
                    self.fail(key, v, format!("expected one of {}", allowed.join(", ")));
                    default
                }
            },
        }
    }
}

/// Unknown keys are echoed in warnings unless their name suggests a secret
/// (daprd's OIDC / schema-registry credentials, for instance).
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "key", "token", "cert"]
        .iter()
        .any(|s| k.contains(s))
}

/// `authType` (and legacy `authRequired`) with the credentials it needs.
pub fn parse_auth(r: &mut Reader<'_>) -> Auth {
    let legacy = r.bool("authRequired");
    let kind = match r.get("authType") {
        None if legacy => "password",
        None => "none",
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "none" => "none",
            "password" => "password",
            "mtls" => "mtls",
            _ => {
                r.fail("authType", v, "sidebus supports none, password and mtls");
                "none"
            }
        },
    };
    match kind {
        "password" => {
            let username = r.get("saslUsername").unwrap_or_default().to_string();
            let password = r.get("saslPassword").unwrap_or_default().to_string();
            if username.is_empty() {
                r.fail("saslUsername", "", "required when authType is password");
            }
            if password.is_empty() {
                r.fail("saslPassword", "", "required when authType is password");
            }
            let mechanism = match r
                .get("saslMechanism")
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("PLAINTEXT") | Some("PLAIN") => "PLAIN",
                Some("SHA-256") | Some("SCRAM-SHA-256") => "SCRAM-SHA-256",
                Some("SHA-512") | Some("SCRAM-SHA-512") => "SCRAM-SHA-512",
                Some(other) => {
                    let other = other.to_string();
                    r.fail(
                        "saslMechanism",
                        &other,
                        "expected PLAINTEXT, SHA-256 or SHA-512",
                    );
                    "PLAIN"
                }
            };
            Auth::Password {
                username,
                password,
                mechanism,
            }
        }
        "mtls" => {
            let client_cert = r.get("clientCert").unwrap_or_default().to_string();
            let client_key = r.get("clientKey").unwrap_or_default().to_string();
            if client_cert.is_empty() {
                r.fail("clientCert", "", "required when authType is mtls");
            }
            if client_key.is_empty() {
                r.fail("clientKey", "", "required when authType is mtls");
            }
            Auth::Mtls {
                client_cert,
                client_key,
            }
        }
        _ => Auth::None,
    }
}

/// The librdkafka assignor for `rebalanceStrategy` / `consumerGroupRebalanceStrategy`.
pub fn parse_strategy(r: &mut Reader<'_>) -> &'static str {
    let key = if r.get("rebalanceStrategy").is_some() {
        "rebalanceStrategy"
    } else {
        "consumerGroupRebalanceStrategy"
    };
    // daprd's names (Sarama) mapped to librdkafka's assignors.
    match r.get(key).map(str::to_ascii_lowercase).as_deref() {
        None | Some("cooperative-sticky") | Some("sticky") => "cooperative-sticky",
        Some("range") => "range",
        Some("roundrobin") => "roundrobin",
        Some(other) => {
            let other = other.to_string();
            r.fail(
                key,
                &other,
                "expected cooperative-sticky, sticky, range or roundrobin",
            );
            "cooperative-sticky"
        }
    }
}

/// Constraints between timing settings.
pub fn check_timings(r: &mut Reader<'_>, cfg: &KafkaConfig) {
    let (s, h) = (cfg.session_timeout, cfg.heartbeat_interval);
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&s) {
        r.fail(
            "sessionTimeout",
            &format!("{s:?}"),
            "must be between 1s and 1h",
        );
    }
    if h.is_zero() || h >= s {
        r.fail(
            "heartbeatInterval",
            &format!("{h:?}"),
            "must be above 0 and below sessionTimeout",
        );
    }
    if cfg.retry_interval.is_zero() || cfg.retry_interval > cfg.retry_max_interval {
        let v = format!("{:?}", cfg.retry_interval);
        r.fail(
            "consumeRetryInterval",
            &v,
            "must be above 0 and at most consumeRetryMaxInterval",
        );
    }
    if cfg.publish_timeout < Duration::from_millis(100) {
        let v = format!("{:?}", cfg.publish_timeout);
        r.fail("publishTimeout", &v, "must be at least 100ms");
    }
}
