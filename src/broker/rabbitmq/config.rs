//! Typed metadata of `pubsub.rabbitmq`, parsed from `spec.metadata` with
//! daprd's key names (components-contrib `pubsub/rabbitmq/metadata.go`).
//!
//! [`RabbitConfig::parse`] is pure: it reports every problem at once and never
//! touches the network, so `sidebus validate` can run it before any port is
//! bound.

use std::time::Duration;

use lapin::uri::{AMQPScheme, AMQPUri};

pub use super::uri::{describe, redact};

use crate::broker::registry::MetadataProblem;
use crate::broker::Metadata;

/// How events are laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    /// The whole CloudEvent JSON is the AMQP body (daprd's layout).
    Structured,
    /// CloudEvents AMQP binding: attributes in `cloudEvents_*` headers, the
    /// event's `data` as the body.
    Binary,
}

/// AMQP exchange kinds daprd accepts for `exchangeKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Every bound queue gets every event (daprd's default).
    Fanout,
    /// Routing key patterns (`orders.*`).
    Topic,
    /// Exact routing key match.
    Direct,
    /// Header matching.
    Headers,
}

impl ExchangeKind {
    /// The lapin value for `exchange.declare`.
    pub fn to_lapin(self) -> lapin::ExchangeKind {
        match self {
            ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            ExchangeKind::Topic => lapin::ExchangeKind::Topic,
            ExchangeKind::Direct => lapin::ExchangeKind::Direct,
            ExchangeKind::Headers => lapin::ExchangeKind::Headers,
        }
    }
}

/// TLS material (PEM text, as daprd takes it inline).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `caCert`: extra trusted CA certificates (PEM).
    pub ca_cert: Option<String>,
    /// `clientCert`: client certificate chain (PEM), with `clientKey`.
    pub client_cert: Option<String>,
    /// `clientKey`: PKCS#8 private key (PEM) for `clientCert`.
    pub client_key: Option<String>,
}

/// Everything `pubsub.rabbitmq` reads from its component metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitConfig {
    /// Brokers to try in turn (`connectionString` CSV, or `hostname` CSV with
    /// `protocol`/`username`/`password`). Never empty after parsing.
    pub uris: Vec<AMQPUri>,
    /// TLS settings used for `amqps` URIs.
    pub tls: TlsConfig,
    /// `exchangeKind`: kind of the per-topic exchange. Default `fanout`.
    pub exchange_kind: ExchangeKind,
    /// `routingKey`: default routing key for publishes and bindings
    /// (CSV for bindings). Default empty.
    pub routing_key: String,
    /// `durable`: durable exchanges and queues. Default true.
    pub durable: bool,
    /// `deletedWhenUnused`: auto-delete queues when the last consumer leaves.
    /// Default false (daprd: true), because that loses events between
    /// restarts.
    pub deleted_when_unused: bool,
    /// `deliveryMode`: 2 persistent (default), 1 or 0 transient.
    pub delivery_mode: u8,
    /// `prefetchCount`: unacknowledged deliveries per consumer. Default 64.
    pub prefetch_count: u16,
    /// `ttlInSeconds`: default message TTL (queue `x-message-ttl` and
    /// per-message expiration).
    pub ttl: Option<Duration>,
    /// `maxLen`: queue `x-max-length`.
    pub max_len: Option<u64>,
    /// `maxLenBytes`: queue `x-max-length-bytes`.
    pub max_len_bytes: Option<u64>,
    /// `maxPriority`: queue `x-max-priority` (1–255).
    pub max_priority: Option<u8>,
    /// `singleActiveConsumer`: queue `x-single-active-consumer`. Default false.
    pub single_active_consumer: bool,
    /// `enableDeadLetter`: declare `dlx-<queue>` / `dlq-<queue>` and route
    /// broker-level dead letters there. Default false.
    pub enable_dead_letter: bool,
    /// `reconnectWaitSeconds`: base of the jittered reconnect backoff. Default 3 s.
    pub reconnect_wait: Duration,
    /// `heartBeat`: AMQP heartbeat (Go duration or seconds). Default 10 s.
    pub heartbeat: Duration,
    /// `clientName`: connection name shown in the management UI.
    pub client_name: Option<String>,
    /// `contentMode`: `structured` (default) or `binary`.
    pub content_mode: ContentMode,
    /// `queueExpiresInSeconds` (sidebus): queue `x-expires`, deletes queues
    /// unused for that long. Default none.
    pub queue_expires: Option<Duration>,
}

/// daprd keys we read (plus `connectionString` etc. handled explicitly).
const KNOWN: &[&str] = &[
    "connectionString",
    "protocol",
    "hostname",
    "host",
    "username",
    "password",
    "caCert",
    "clientCert",
    "clientKey",
    "exchangeKind",
    "routingKey",
    "durable",
    "deletedWhenUnused",
    "deliveryMode",
    "prefetchCount",
    "ttlInSeconds",
    "maxLen",
    "maxLenBytes",
    "maxPriority",
    "singleActiveConsumer",
    "enableDeadLetter",
    "reconnectWaitSeconds",
    "heartBeat",
    "clientName",
    "contentMode",
    "queueExpiresInSeconds",
];

/// daprd keys whose behaviour is always on (or always off) here.
const FIXED: &[(&str, &str)] = &[
    ("publisherConfirm", "publisher confirms are always on"),
    ("autoAck", "deliveries are always acknowledged manually"),
    (
        "requeueInFailure",
        "RETRY outcomes are always redelivered after a delay",
    ),
    (
        "concurrencyMode",
        "concurrency is governed by the delivery layer",
    ),
    (
        "publishMessagePropertiesToMetadata",
        "string headers always become metadata",
    ),
    (
        "saslExternal",
        "use `auth_mechanism=external` in connectionString",
    ),
];

/// Reads metadata keys case-insensitively and collects every problem.
pub(super) struct Reader<'a> {
    md: &'a Metadata,
    errors: Vec<MetadataProblem>,
}

impl Reader<'_> {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.md
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn fail(&mut self, key: &str, value: &str, reason: impl Into<String>) {
        let shown = if key.eq_ignore_ascii_case("password") || key.contains("Key") {
            "<secret>"
        } else {
            value
        };
        self.errors.push(MetadataProblem::new(key, shown, reason));
    }

    fn parse<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Option<T> {
        let raw = self.get(key)?.to_string();
        match raw.parse::<T>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail(key, &raw, format!("must be {what}"));
                None
            }
        }
    }

    fn flag(&mut self, key: &str, default: bool) -> bool {
        let Some(raw) = self.get(key).map(str::to_ascii_lowercase) else {
            return default;
        };
        match raw.as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                self.fail(key, &raw, "must be true or false");
                default
            }
        }
    }

    fn seconds(&mut self, key: &str) -> Option<Duration> {
        let raw = self.get(key)?.to_string();
        match parse_duration(&raw) {
            Some(d) => Some(d),
            None => {
                self.fail(
                    key,
                    &raw,
                    "must be seconds or a duration like 10s, 500ms, 1m",
                );
                None
            }
        }
    }
}

/// Seconds (`10`) or a Go-style duration (`10s`, `500ms`, `2m`, `1h`).
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

impl RabbitConfig {
    /// Parses component metadata, returning the config or every problem.
    pub fn parse(md: &Metadata) -> Result<Self, Vec<MetadataProblem>> {
        let mut r = Reader {
            md,
            errors: Vec::new(),
        };
        let uris = super::uri::connection_uris(&mut r);
        let tls = TlsConfig {
            ca_cert: r.get("caCert").map(str::to_string),
            client_cert: r.get("clientCert").map(str::to_string),
            client_key: r.get("clientKey").map(str::to_string),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            r.fail(
                "clientCert",
                "",
                "clientCert and clientKey must be given together",
            );
        }
        let exchange_kind = match r
            .get("exchangeKind")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("fanout") => ExchangeKind::Fanout,
            Some("topic") => ExchangeKind::Topic,
            Some("direct") => ExchangeKind::Direct,
            Some("headers") => ExchangeKind::Headers,
            Some(other) => {
                let other = other.to_string();
                r.fail(
                    "exchangeKind",
                    &other,
                    "must be fanout, topic, direct or headers",
                );
                ExchangeKind::Fanout
            }
        };
        let delivery_mode = r.parse::<u8>("deliveryMode", "0, 1 or 2").unwrap_or(2);
        if delivery_mode > 2 {
            r.fail(
                "deliveryMode",
                &delivery_mode.to_string(),
                "must be 0, 1 or 2",
            );
        }
        let prefetch_count = r
            .parse::<u16>("prefetchCount", "an integer from 1 to 65535")
            .unwrap_or(64);
        if prefetch_count == 0 {
            // Unlimited prefetch defeats the delivery layer's backpressure.
            r.fail(
                "prefetchCount",
                "0",
                "must be at least 1 (0 would be unlimited)",
            );
        }
        let max_priority = r.parse::<u8>("maxPriority", "an integer from 1 to 255");
        if max_priority == Some(0) {
            r.fail("maxPriority", "0", "must be from 1 to 255");
        }
        let content_mode = match r.get("contentMode").map(str::to_ascii_lowercase).as_deref() {
            None | Some("structured") => ContentMode::Structured,
            Some("binary") => ContentMode::Binary,
            Some(other) => {
                let other = other.to_string();
                r.fail("contentMode", &other, "must be structured or binary");
                ContentMode::Structured
            }
        };
        let cfg = RabbitConfig {
            uris,
            tls,
            exchange_kind,
            routing_key: r.get("routingKey").unwrap_or_default().to_string(),
            durable: r.flag("durable", true),
            deleted_when_unused: r.flag("deletedWhenUnused", false),
            delivery_mode,
            prefetch_count,
            ttl: r.seconds("ttlInSeconds").filter(|d| !d.is_zero()),
            max_len: r.parse("maxLen", "a non-negative integer"),
            max_len_bytes: r.parse("maxLenBytes", "a non-negative integer"),
            max_priority,
            single_active_consumer: r.flag("singleActiveConsumer", false),
            enable_dead_letter: r.flag("enableDeadLetter", false),
            reconnect_wait: r
                .seconds("reconnectWaitSeconds")
                .unwrap_or(Duration::from_secs(3)),
            heartbeat: r.seconds("heartBeat").unwrap_or(Duration::from_secs(10)),
            client_name: r.get("clientName").map(str::to_string),
            content_mode,
            queue_expires: r.seconds("queueExpiresInSeconds").filter(|d| !d.is_zero()),
        };
        if r.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(r.errors)
        }
    }

    /// Keys that are ignored, as warnings (unknown or fixed behaviour).
    pub fn warnings(md: &Metadata) -> Vec<MetadataProblem> {
        let mut out = Vec::new();
        for (k, v) in md {
            if crate::broker::common_metadata_key(k)
                || KNOWN.iter().any(|n| n.eq_ignore_ascii_case(k))
            {
                continue;
            }
            let reason = FIXED
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, why)| format!("ignored: {why}"))
                .unwrap_or_else(|| "unknown to pubsub.rabbitmq; ignored".to_string());
            out.push(MetadataProblem::new(k, v, reason));
        }
        out
    }

    /// Whether any broker is reached over TLS.
    pub fn uses_tls(&self) -> bool {
        self.uris.iter().any(|u| u.scheme == AMQPScheme::AMQPS)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
