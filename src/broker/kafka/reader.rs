//! The multi-key settings of [`KafkaConfig::parse`](super::config::KafkaConfig::parse)
//! (auth, rebalance strategy, timing constraints), read with the shared
//! `config::metadata::MetadataReader`. This file imports nothing from
//! `config.rs`; `config.rs` re-exports [`Auth`].

use std::time::Duration;

use crate::config::metadata::MetadataReader;
use crate::config::Secret;

/// How clients authenticate to the brokers (`authType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No authentication.
    None,
    /// SASL with a user name and password.
    Password {
        /// `saslUsername`.
        username: String,
        /// `saslPassword`.
        password: Secret,
        /// librdkafka's `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
        mechanism: &'static str,
    },
    /// TLS client certificate.
    Mtls {
        /// `clientCert` (PEM).
        client_cert: String,
        /// `clientKey` (PEM).
        client_key: Secret,
    },
}

/// The timing settings whose values constrain each other.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `sessionTimeout`.
    pub session_timeout: Duration,
    /// `heartbeatInterval`.
    pub heartbeat_interval: Duration,
    /// `consumeRetryInterval`.
    pub retry_interval: Duration,
    /// `consumeRetryMaxInterval`.
    pub retry_max_interval: Duration,
    /// `publishTimeout`.
    pub publish_timeout: Duration,
}

/// `authType` (and legacy `authRequired`) with the credentials it needs.
pub fn parse_auth(r: &mut MetadataReader<'_>) -> Auth {
    let legacy = r.bool("authRequired", false);
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
                password: password.into(),
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
                client_key: client_key.into(),
            }
        }
        _ => Auth::None,
    }
}

/// The librdkafka assignor for `rebalanceStrategy` / `consumerGroupRebalanceStrategy`.
pub fn parse_strategy(r: &mut MetadataReader<'_>) -> &'static str {
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
pub fn check_timings(r: &mut MetadataReader<'_>, cfg: &Timings) {
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
