//! Typed metadata of `pubsub.rabbitmq`, parsed from `spec.metadata` with
//! daprd's key names (components-contrib `pubsub/rabbitmq/metadata.go`).
//!
//! [`RabbitConfig::parse`] uses the shared `config::metadata::MetadataReader`
//! and is pure: it reports every problem at once and never touches the
//! network, so `sidebus validate` can run it before any port is bound.

use std::time::Duration;

use lapin::uri::{AMQPScheme, AMQPUri};

pub use super::uri::describe;

use crate::config::metadata::{Metadata, MetadataReader, Parsed, Validation};
use crate::config::Secret;

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

/// What a publish no queue is bound to does (`unroutable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unroutable {
    /// Succeed, as daprd does (it publishes without `mandatory`): apps
    /// publish before their consumers exist. Counted, and logged once per
    /// topic. The default.
    Drop,
    /// Fail the publish (`Rejected`), for those who want to know.
    Error,
}

/// The broker URIs, which carry the password: `Debug` shows only where
/// each points, so printing the config cannot leak it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Brokers(pub Vec<AMQPUri>);

impl std::ops::Deref for Brokers {
    type Target = Vec<AMQPUri>;

    fn deref(&self) -> &Vec<AMQPUri> {
        &self.0
    }
}

impl std::fmt::Debug for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(describe)).finish()
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
    pub client_key: Option<Secret>,
}

/// Everything `pubsub.rabbitmq` reads from its component metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitConfig {
    /// Brokers to try in turn (`connectionString` CSV, or `hostname` CSV with
    /// `protocol`/`username`/`password`). Never empty after parsing.
    pub uris: Brokers,
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
    /// `unroutable` (sidebus): `drop` (default, as daprd) or `error`.
    pub unroutable: Unroutable,
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
    "unroutable",
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

impl RabbitConfig {
    /// Parses component metadata: the config and the ignored keys, or every
    /// problem.
    pub fn parse(md: &Metadata) -> Result<Parsed<Self>, Validation> {
        let mut r = MetadataReader::new(md);
        let uris = super::uri::connection_uris(&mut r);
        let tls = TlsConfig {
            ca_cert: r.get("caCert").map(str::to_string),
            client_cert: r.get("clientCert").map(str::to_string),
            client_key: r.get("clientKey").map(Secret::from),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            r.fail(
                "clientCert",
                "",
                "clientCert and clientKey must be given together",
            );
        }
        let exchange_kind = r
            .choice(
                "exchangeKind",
                &[
                    ("fanout", ExchangeKind::Fanout),
                    ("topic", ExchangeKind::Topic),
                    ("direct", ExchangeKind::Direct),
                    ("headers", ExchangeKind::Headers),
                ],
            )
            .unwrap_or(ExchangeKind::Fanout);
        let content_mode = r
            .choice(
                "contentMode",
                &[
                    ("structured", ContentMode::Structured),
                    ("binary", ContentMode::Binary),
                ],
            )
            .unwrap_or(ContentMode::Structured);
        let cfg = RabbitConfig {
            uris: Brokers(uris),
            tls,
            exchange_kind,
            routing_key: r.get("routingKey").unwrap_or_default().to_string(),
            durable: r.bool("durable", true),
            deleted_when_unused: r.bool("deletedWhenUnused", false),
            delivery_mode: r
                .int("deliveryMode", 0..=2, "must be 0, 1 or 2")
                .unwrap_or(2),
            // 0 would be unlimited prefetch, defeating the delivery layer's
            // backpressure.
            prefetch_count: r
                .int(
                    "prefetchCount",
                    1..=u16::MAX,
                    "must be an integer from 1 to 65535 (0 would be unlimited)",
                )
                .unwrap_or(64),
            ttl: r.duration("ttlInSeconds").filter(|d| !d.is_zero()),
            max_len: r.int("maxLen", 0..=u64::MAX, "must be a non-negative integer"),
            max_len_bytes: r.int(
                "maxLenBytes",
                0..=u64::MAX,
                "must be a non-negative integer",
            ),
            max_priority: r.int("maxPriority", 1..=u8::MAX, ""),
            single_active_consumer: r.bool("singleActiveConsumer", false),
            enable_dead_letter: r.bool("enableDeadLetter", false),
            reconnect_wait: r
                .duration("reconnectWaitSeconds")
                .unwrap_or(Duration::from_secs(3)),
            heartbeat: r.duration("heartBeat").unwrap_or(Duration::from_secs(10)),
            client_name: r.get("clientName").map(str::to_string),
            content_mode,
            queue_expires: r.duration("queueExpiresInSeconds").filter(|d| !d.is_zero()),
            unroutable: r
                .choice(
                    "unroutable",
                    &[("drop", Unroutable::Drop), ("error", Unroutable::Error)],
                )
                .unwrap_or(Unroutable::Drop),
        };
        for (name, why) in FIXED {
            if let Some((k, v)) = r.entry(name) {
                r.warn(k, v, format!("ignored: {why}"));
            }
        }
        let known: Vec<&str> = KNOWN
            .iter()
            .chain(FIXED.iter().map(|(n, _)| n))
            .copied()
            .collect();
        r.finish(cfg, &known, "unknown to pubsub.rabbitmq; ignored")
    }

    /// Whether any broker is reached over TLS.
    pub fn uses_tls(&self) -> bool {
        self.uris.iter().any(|u| u.scheme == AMQPScheme::AMQPS)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
