//! Typed metadata of `pubsub.kafka` / `pubsub.redpanda`, parsed from the
//! component's `spec.metadata` with daprd's key names (components-contrib
//! `common/component/kafka/metadata.go`) plus a few sidebus settings.
//!
//! Parsing is pure: every problem is collected as a [`MetadataProblem`] so
//! `sidebus validate` can list them all at once.

use std::time::Duration;

use super::reader::{check_timings, looks_secret, parse_auth, parse_strategy, Reader};
use crate::broker::registry::{MetadataProblem, Validation};
use crate::broker::{common_metadata_key, Metadata};

/// How a producer writes CloudEvents on Kafka (CloudEvents Kafka binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    /// The whole CloudEvent JSON is the record value (daprd's format).
    Structured,
    /// Attributes in `ce_*` headers, the event data as the record value.
    Binary,
}

/// Where a consumer group without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialOffset {
    /// The oldest retained record (sidebus default: nothing is skipped).
    Oldest,
    /// Only records produced after the group joined (daprd's default).
    Newest,
}

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
        password: String,
        /// librdkafka's `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
        mechanism: &'static str,
    },
    /// TLS client certificate.
    Mtls {
        /// `clientCert` (PEM).
        client_cert: String,
        /// `clientKey` (PEM).
        client_key: String,
    },
}

/// Settings for topics sidebus creates because they do not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    /// `partitions`: partition count of a new topic (default 1).
    pub partitions: i32,
    /// `replicationFactor`: replicas of a new topic; -1 = broker default.
    pub replication_factor: i32,
    /// `retention`: `retention.ms` of a new topic; `None` = broker default.
    pub retention: Option<Duration>,
    /// `cleanupPolicy`: `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: Option<String>,
}

/// The component's parsed metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `brokers`: bootstrap servers, comma separated (required).
    pub brokers: String,
    /// `consumerGroup`: overrides the subscription's group (app id).
    pub consumer_group: Option<String>,
    /// `clientId` (default `sidebus`).
    pub client_id: String,
    /// `authType` and its credentials.
    pub auth: Auth,
    /// TLS is used unless `authType: none` or `disableTls: true`.
    pub tls: bool,
    /// `caCert`: PEM of the CA that signed the brokers' certificates.
    pub ca_cert: Option<String>,
    /// `skipVerify`: do not verify the brokers' certificates.
    pub skip_verify: bool,
    /// `initialOffset`: where a new consumer group starts (default oldest).
    pub initial_offset: InitialOffset,
    /// `compression`: none, gzip, snappy, lz4 or zstd (default none).
    pub compression: String,
    /// `maxMessageBytes`: largest record the producer sends.
    pub max_message_bytes: Option<u32>,
    /// `sessionTimeout`: group session timeout (default 10s).
    pub session_timeout: Duration,
    /// `heartbeatInterval`: group heartbeat interval (default 3s).
    pub heartbeat_interval: Duration,
    /// `contentMode`: structured (default) or binary CloudEvents.
    pub content_mode: ContentMode,
    /// Settings for topics created on first use.
    pub topic_defaults: TopicDefaults,
    /// `consumeRetryInterval`: first redelivery delay after a RETRY outcome
    /// (default 100ms); it doubles per redelivery up to `consumeRetryMaxInterval`.
    pub retry_interval: Duration,
    /// `consumeRetryMaxInterval`: cap of the redelivery delay (default 30s).
    pub retry_max_interval: Duration,
    /// `consumerGroupRebalanceStrategy` / `rebalanceStrategy`: librdkafka's
    /// `partition.assignment.strategy` (default `cooperative-sticky`).
    pub rebalance_strategy: String,
    /// `groupInstanceId`: static membership id (e.g. the pod name).
    pub group_instance_id: Option<String>,
    /// `channelBufferSize`: records buffered per partition before the
    /// partition is paused (default 256).
    pub partition_buffer: usize,
    /// `publishTimeout`: how long a publish may wait for its delivery report,
    /// librdkafka retries included (default 30s).
    pub publish_timeout: Duration,
    /// `stallTimeout`: a partition with lag and no progress for this long
    /// restarts the consumer (default 60s; 0 disables the watchdog).
    pub stall_timeout: Duration,
    /// `fetchMaxWait`: longest time the broker may hold a fetch waiting for
    /// data (default 100ms). Kafka answers as soon as data arrives; brokers
    /// that do not (Tansu) add up to this much delivery latency.
    pub fetch_max_wait: Duration,
    /// `drainTimeout`: how long a rebalance or stop waits for in-flight
    /// events of revoked partitions before committing (default 10s).
    pub drain_timeout: Duration,
}

/// Keys this component understands.
const KNOWN: &[&str] = &[
    "brokers",
    "consumerGroup",
    "clientId",
    "clientID",
    "authType",
    "authRequired",
    "saslUsername",
    "saslPassword",
    "saslMechanism",
    "caCert",
    "clientCert",
    "clientKey",
    "skipVerify",
    "disableTls",
    "initialOffset",
    "compression",
    "maxMessageBytes",
    "sessionTimeout",
    "heartbeatInterval",
    "contentMode",
    "partitions",
    "replicationFactor",
    "retention",
    "cleanupPolicy",
    "consumeRetryInterval",
    "consumeRetryMaxInterval",
    "consumerGroupRebalanceStrategy",
    "rebalanceStrategy",
    "groupInstanceId",
    "channelBufferSize",
    "publishTimeout",
    "stallTimeout",
    "drainTimeout",
    "fetchMaxWait",
];

impl KafkaConfig {
    /// Parses and validates `meta`. Returns the config when there are no
    /// errors, and always the full validation (errors and warnings).
    pub fn parse(meta: &Metadata) -> (Option<KafkaConfig>, Validation) {
        let mut r = Reader {
            meta,
            errors: Vec::new(),
        };
        let brokers = r.get("brokers").unwrap_or_default().to_string();
        if brokers.is_empty() {
            r.fail("brokers", "", "required: comma-separated host:port list");
        }
        let auth = parse_auth(&mut r);
        let disable_tls = r.bool("disableTls");
        let tls = !disable_tls && auth != Auth::None;
        let initial = r.choice(
            "initialOffset",
            &["oldest", "newest", "earliest", "latest"],
            "oldest",
        );
        let content = r.choice("contentMode", &["structured", "binary"], "structured");
        let cleanup = r.get("cleanupPolicy").map(str::to_string);
        if let Some(c) = &cleanup {
            let ok = c
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact"));
            if !ok {
                let c = c.clone();
                r.fail(
                    "cleanupPolicy",
                    &c,
                    "expected delete, compact or compact,delete",
                );
            }
        }
        let retention = r
            .get("retention")
            .map(|_| r.duration("retention", Duration::ZERO));
        let cfg = KafkaConfig {
            consumer_group: r.get("consumerGroup").map(str::to_string),
            client_id: r
                .get("clientId")
                .or_else(|| r.get("clientID"))
                .unwrap_or("sidebus")
                .to_string(),
            auth,
            tls,
            ca_cert: r.get("caCert").map(str::to_string),
            skip_verify: r.bool("skipVerify"),
            initial_offset: match initial {
                "newest" | "latest" => InitialOffset::Newest,
                _ => InitialOffset::Oldest,
            },
            compression: r
                .choice(
                    "compression",
                    &["none", "gzip", "snappy", "lz4", "zstd"],
                    "none",
                )
                .to_string(),
            max_message_bytes: r.int("maxMessageBytes", |n: &u32| *n >= 1000),
            session_timeout: r.duration("sessionTimeout", Duration::from_secs(10)),
            heartbeat_interval: r.duration("heartbeatInterval", Duration::from_secs(3)),
            content_mode: if content == "binary" {
                ContentMode::Binary
            } else {
                ContentMode::Structured
            },
            topic_defaults: TopicDefaults {
                partitions: r.int("partitions", |n: &i32| *n >= 1).unwrap_or(1),
                replication_factor: r
                    .int("replicationFactor", |n: &i32| *n == -1 || *n >= 1)
                    .unwrap_or(-1),
                retention,
                cleanup_policy: cleanup,
            },
            retry_interval: r.duration("consumeRetryInterval", Duration::from_millis(100)),
            retry_max_interval: r.duration("consumeRetryMaxInterval", Duration::from_secs(30)),
            rebalance_strategy: parse_strategy(&mut r).to_string(),
            group_instance_id: r.get("groupInstanceId").map(str::to_string),
            partition_buffer: r
                .int("channelBufferSize", |n: &usize| (1..=100_000).contains(n))
                .unwrap_or(256),
            publish_timeout: r.duration("publishTimeout", Duration::from_secs(30)),
            stall_timeout: r.duration("stallTimeout", Duration::from_secs(60)),
            drain_timeout: r.duration("drainTimeout", Duration::from_secs(10)),
            fetch_max_wait: r.duration("fetchMaxWait", Duration::from_millis(100)),
            brokers,
        };
        check_timings(&mut r, &cfg);
        let warnings = meta
            .iter()
            .filter(|(k, _)| !common_metadata_key(k))
            .filter(|(k, _)| !KNOWN.iter().any(|n| n.eq_ignore_ascii_case(k)))
            .map(|(k, v)| {
                let shown = if looks_secret(k) {
                    "<secret>"
                } else {
                    v.as_str()
                };
                MetadataProblem::new(
                    k,
                    shown,
                    "not supported by sidebus's Kafka component; ignored",
                )
            })
            .collect();
        let validation = Validation {
            errors: r.errors,
            warnings,
        };
        let cfg = validation.errors.is_empty().then_some(cfg);
        (cfg, validation)
    }
}
