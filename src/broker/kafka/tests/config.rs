//! Metadata parsing and validation (no broker needed).

use std::time::Duration;

use crate::broker::kafka::config::{Auth, ContentMode, InitialOffset, KafkaConfig};
use crate::config::metadata::test_metadata as meta;

#[test]
fn defaults_are_the_safe_ones() {
    let parsed = KafkaConfig::parse(&meta(&[("brokers", "a:9092,b:9092")]))
        .unwrap_or_else(|v| panic!("valid: {v:?}"));
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let cfg = parsed.config;
    assert_eq!(cfg.initial_offset, InitialOffset::Oldest);
    assert_eq!(cfg.content_mode, ContentMode::Structured);
    assert_eq!(cfg.auth, Auth::None);
    assert!(!cfg.tls);
    assert_eq!(cfg.rebalance_strategy, "cooperative-sticky");
    assert_eq!(cfg.session_timeout, Duration::from_secs(10));
    assert_eq!(cfg.topic_defaults.partitions, 1);
    assert_eq!(cfg.consumer_group, None);
}

#[test]
fn daprd_yaml_values_are_understood() {
    let parsed = KafkaConfig::parse(&meta(&[
        ("brokers", "k:9093"),
        ("consumerGroup", "orders"),
        ("authType", "password"),
        ("saslUsername", "u"),
        ("saslPassword", "p"),
        ("saslMechanism", "SHA-512"),
        ("initialOffset", "newest"),
        ("sessionTimeout", "30s"),
        ("heartbeatInterval", "2s"),
        ("consumerGroupRebalanceStrategy", "range"),
        ("cleanupPolicy", "compact"),
        ("retention", "168h"),
        ("contentMode", "binary"),
        ("consumerID", "app"),
        ("version", "2.0.0"),
    ]))
    .unwrap_or_else(|v| panic!("valid: {v:?}"));
    let cfg = parsed.config;
    assert!(cfg.tls, "password auth uses TLS unless disableTls");
    assert!(matches!(
        cfg.auth,
        Auth::Password {
            mechanism: "SCRAM-SHA-512",
            ..
        }
    ));
    assert_eq!(cfg.initial_offset, InitialOffset::Newest);
    assert_eq!(cfg.consumer_group.as_deref(), Some("orders"));
    assert_eq!(cfg.rebalance_strategy, "range");
    assert_eq!(
        cfg.topic_defaults.retention,
        Some(Duration::from_secs(168 * 3600))
    );
    assert_eq!(cfg.content_mode, ContentMode::Binary);
    let shown = format!("{cfg:?}");
    assert!(
        shown.contains("SCRAM-SHA-512") && !shown.contains("password: \"p\""),
        "the SASL password is never printed: {shown}"
    );
    let warned: Vec<&str> = parsed.warnings.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        warned,
        vec!["version"],
        "only unknown keys warn; consumerID is the runtime's"
    );
}

#[test]
fn every_problem_is_reported_and_secrets_are_hidden() {
    let v = KafkaConfig::parse(&meta(&[
        ("authType", "mtls"),
        ("clientKey", "-----BEGIN PRIVATE KEY-----"),
        ("compression", "brotli"),
        ("sessionTimeout", "ten seconds"),
        ("partitions", "0"),
        ("cleanupPolicy", "forever"),
        ("heartbeatInterval", "20s"),
        ("saslPassword", "hunter2"),
        ("authRequired", "maybe"),
        ("oidcClientSecret", "hunter2"),
    ]))
    .expect_err("invalid");
    let keys: Vec<&str> = v.errors.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "brokers",
        "clientCert",
        "compression",
        "sessionTimeout",
        "partitions",
        "cleanupPolicy",
        "heartbeatInterval",
        "authRequired",
    ] {
        assert!(keys.contains(&want), "{want} not reported in {keys:?}");
    }
    assert!(
        v.errors
            .iter()
            .chain(&v.warnings)
            .all(|p| !p.value.contains("hunter2") && !p.value.contains("PRIVATE")),
        "a secret was echoed: {v:?}"
    );
}

#[test]
fn durations_follow_the_metadata_rule() {
    let parsed = KafkaConfig::parse(&meta(&[
        ("brokers", "k:9092"),
        ("sessionTimeout", "30"),
        ("consumeRetryInterval", "1"),
        ("retention", "1.5h"),
    ]))
    .unwrap_or_else(|v| panic!("valid: {v:?}"));
    let cfg = parsed.config;
    assert_eq!(
        cfg.session_timeout,
        Duration::from_secs(30),
        "bare = seconds"
    );
    assert_eq!(cfg.retry_interval, Duration::from_secs(1));
    assert_eq!(
        cfg.topic_defaults.retention,
        Some(Duration::from_secs(5400))
    );
    let v = KafkaConfig::parse(&meta(&[
        ("brokers", "k:9092"),
        ("consumeRetryInterval", "200"),
    ]))
    .expect_err("200 s is above consumeRetryMaxInterval (30s)");
    assert_eq!(v.errors[0].key, "consumeRetryInterval");
}
