//! Typed metadata of `pubsub.kafka` / `pubsub.redpanda`, parsed from the
//! component's `spec.metadata` with daprd's key names (components-contrib
//! `common/component/kafka/metadata.go`) plus a few sidebus settings.
//!
//! Parsing is pure and uses the shared `config::metadata::MetadataReader`:
//! every problem is collected so `sidebus validate` can list them all at
//! once, and secret values are never echoed.

use std::time::Duration;

pub use super::reader::Auth;
use super::reader::{check_timings, parse_auth, parse_strategy, Timings};
use crate::config::metadata::{Metadata, MetadataReader, Parsed, Validation};

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
    /// Parses and validates `meta`: the config and the ignored keys, or
    /// every problem.
    pub fn parse(meta: &Metadata) -> Result<Parsed<KafkaConfig>, Validation> {
        let mut r = MetadataReader::new(meta);
        let brokers = r.get("brokers").unwrap_or_default().to_string();
        if brokers.is_empty() {
            r.fail("brokers", "", "required: comma-separated host:port list");
        }
        let auth = parse_auth(&mut r);
        let disable_tls = r.bool("disableTls", false);
        let tls = !disable_tls && auth != Auth::None;
        let cleanup = r.get("cleanupPolicy").map(str::to_string);
        if let Some(c) = &cleanup {
            let ok = c
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact"));
            if !ok {
                r.fail(
                    "cleanupPolicy",
                    c,
                    "expected delete, compact or compact,delete",
                );
            }
        }
        let timings = Timings {
            session_timeout: dur(&mut r, "sessionTimeout", Duration::from_secs(10)),
            heartbeat_interval: dur(&mut r, "heartbeatInterval", Duration::from_secs(3)),
            retry_interval: dur(&mut r, "consumeRetryInterval", Duration::from_millis(100)),
            retry_max_interval: dur(&mut r, "consumeRetryMaxInterval", Duration::from_secs(30)),
            publish_timeout: dur(&mut r, "publishTimeout", Duration::from_secs(30)),
        };
        check_timings(&mut r, &timings);
        let cfg = KafkaConfig {
            consumer_group: r.get("consumerGroup").map(str::to_string),
            client_id: r.get("clientId").unwrap_or("sidebus").to_string(),
            auth,
            tls,
            ca_cert: r.get("caCert").map(str::to_string),
            skip_verify: r.bool("skipVerify", false),
            initial_offset: r
                .choice(
                    "initialOffset",
                    &[
                        ("oldest", InitialOffset::Oldest),
                        ("newest", InitialOffset::Newest),
                        ("earliest", InitialOffset::Oldest),
                        ("latest", InitialOffset::Newest),
                    ],
                )
                .unwrap_or(InitialOffset::Oldest),
            compression: r
                .choice(
                    "compression",
                    &[
                        ("none", "none"),
                        ("gzip", "gzip"),
                        ("snappy", "snappy"),
                        ("lz4", "lz4"),
                        ("zstd", "zstd"),
                    ],
                )
                .unwrap_or("none")
                .to_string(),
            max_message_bytes: r.int("maxMessageBytes", 1000..=u32::MAX, ""),
            session_timeout: timings.session_timeout,
            heartbeat_interval: timings.heartbeat_interval,
            content_mode: r
                .choice(
                    "contentMode",
                    &[
                        ("structured", ContentMode::Structured),
                        ("binary", ContentMode::Binary),
                    ],
                )
                .unwrap_or(ContentMode::Structured),
            topic_defaults: TopicDefaults {
                partitions: r.int("partitions", 1..=i32::MAX, "").unwrap_or(1),
                replication_factor: r
                    .int(
                        "replicationFactor",
                        -1..=i32::MAX,
                        "must be -1 (broker default) or at least 1",
                    )
                    .filter(|n| *n != 0 || zero_replicas(&mut r))
                    .unwrap_or(-1),
                retention: r.duration("retention"),
                cleanup_policy: cleanup,
            },
            retry_interval: timings.retry_interval,
            retry_max_interval: timings.retry_max_interval,
            rebalance_strategy: parse_strategy(&mut r).to_string(),
            group_instance_id: r.get("groupInstanceId").map(str::to_string),
            partition_buffer: r.int("channelBufferSize", 1..=100_000, "").unwrap_or(256),
            publish_timeout: timings.publish_timeout,
            stall_timeout: dur(&mut r, "stallTimeout", Duration::from_secs(60)),
            drain_timeout: dur(&mut r, "drainTimeout", Duration::from_secs(10)),
            fetch_max_wait: dur(&mut r, "fetchMaxWait", Duration::from_millis(100)),
            brokers,
        };
        r.finish(
            cfg,
            KNOWN,
            "not supported by sidebus's Kafka component; ignored",
        )
    }
}

/// A duration setting, `default` when absent or invalid (recorded).
fn dur(r: &mut MetadataReader<'_>, key: &str, default: Duration) -> Duration {
    r.duration(key).unwrap_or(default)
}

/// Records `replicationFactor: 0`; always `false` (for `filter`).
fn zero_replicas(r: &mut MetadataReader<'_>) -> bool {
    r.fail(
        "replicationFactor",
        "0",
        "must be -1 (broker default) or at least 1",
    );
    false
}
