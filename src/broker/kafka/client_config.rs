//! Turns a [`KafkaConfig`] into librdkafka client settings for the producer,
//! the admin client and the group consumers.

use rdkafka::ClientConfig;

use super::config::{Auth, InitialOffset, KafkaConfig};

/// How long the producer waits to fill a batch: small, so a lone publish is
/// not delayed much, yet concurrent publishes share one produce request.
const LINGER_MS: &str = "2";
/// Records buffered in the producer before `send` waits (bounded memory).
const PRODUCER_QUEUE_MESSAGES: &str = "100000";
/// Bytes prefetched per consumer before fetching stops (bounded memory).
const CONSUMER_QUEUE_KBYTES: &str = "16384";

/// Settings every client of the component shares: brokers, identity, auth.
pub fn common(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", &cfg.client_id)
        .set("log_level", "4");
    let sasl = matches!(cfg.auth, Auth::Password { .. });
    let protocol = match (sasl, cfg.tls) {
        (true, true) => "sasl_ssl",
        (true, false) => "sasl_plaintext",
        (false, true) => "ssl",
        (false, false) => "plaintext",
    };
    c.set("security.protocol", protocol);
    match &cfg.auth {
        Auth::None => {}
        Auth::Password {
            username,
            password,
            mechanism,
        } => {
            c.set("sasl.mechanism", *mechanism)
                .set("sasl.username", username)
                .set("sasl.password", password.expose());
        }
        Auth::Mtls {
            client_cert,
            client_key,
        } => {
            c.set("ssl.certificate.pem", client_cert)
                .set("ssl.key.pem", client_key.expose());
        }
    }
    if cfg.tls {
        if let Some(ca) = &cfg.ca_cert {
            c.set("ssl.ca.pem", ca);
        }
        if cfg.skip_verify {
            c.set("enable.ssl.certificate.verification", "false")
                .set("ssl.endpoint.identification.algorithm", "none");
        }
    }
    c
}

/// The producer: acks=all and idempotence always on (no loss, no duplicates
/// from internal retries, per-partition order kept across retries).
pub fn producer(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = common(cfg);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", LINGER_MS)
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", PRODUCER_QUEUE_MESSAGES)
        .set("compression.type", &cfg.compression)
        .set(
            "message.timeout.ms",
            cfg.publish_timeout.as_millis().to_string(),
        );
    if let Some(max) = cfg.max_message_bytes {
        c.set("message.max.bytes", max.to_string());
    }
    c
}

/// One group consumer. Offsets are committed by sidebus only (never
/// automatically), so a commit can never pass an unfinished event.
pub fn consumer(cfg: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = common(cfg);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match cfg.initial_offset {
                InitialOffset::Oldest => "earliest",
                InitialOffset::Newest => "latest",
            },
        )
        .set("partition.assignment.strategy", &cfg.rebalance_strategy)
        .set(
            "session.timeout.ms",
            cfg.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            cfg.heartbeat_interval.as_millis().to_string(),
        )
        .set("queued.max.messages.kbytes", CONSUMER_QUEUE_KBYTES)
        .set(
            "fetch.wait.max.ms",
            cfg.fetch_max_wait.as_millis().to_string(),
        )
        // New topics created after subscribing are noticed within seconds.
        .set("topic.metadata.refresh.interval.ms", "5000");
    if let Some(id) = &cfg.group_instance_id {
        c.set("group.instance.id", id);
    }
    c
}
