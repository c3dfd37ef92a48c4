use std::time::Duration;

use super::*;
use crate::config::metadata::test_metadata as md;

#[test]
fn defaults_from_a_connection_string() {
    let cfg = RabbitConfig::parse(&md(&[("connectionString", "amqp://u:p@10.0.0.1:5673/%2f")]))
        .expect("valid")
        .config;
    assert_eq!(cfg.uris.len(), 1);
    assert_eq!(cfg.uris[0].authority.host, "10.0.0.1");
    assert_eq!(cfg.uris[0].authority.port, 5673);
    assert_eq!(cfg.exchange_kind, ExchangeKind::Fanout);
    assert!(cfg.durable);
    assert!(!cfg.deleted_when_unused);
    assert_eq!(cfg.delivery_mode, 2);
    assert_eq!(cfg.prefetch_count, 64);
    assert_eq!(cfg.reconnect_wait, Duration::from_secs(3));
    assert_eq!(cfg.heartbeat, Duration::from_secs(10));
    assert_eq!(cfg.content_mode, ContentMode::Structured);
    assert_eq!(cfg.ttl, None);
}

#[test]
fn host_list_for_failover() {
    let cfg = RabbitConfig::parse(&md(&[
        ("hostname", "a:5672, b, c:5999"),
        ("username", "bob"),
        ("password", "pw"),
        ("prefetchCount", "1000"),
        ("ttlInSeconds", "30"),
        ("heartBeat", "5s"),
        ("exchangeKind", "topic"),
        ("contentMode", "binary"),
    ]))
    .expect("valid")
    .config;
    let hosts: Vec<_> = cfg.uris.iter().map(describe).collect();
    assert_eq!(hosts, ["a:5672", "b:5672", "c:5999"]);
    assert_eq!(cfg.uris[1].authority.userinfo.username, "bob");
    assert_eq!(cfg.prefetch_count, 1000, "not capped at 255 like daprd");
    assert_eq!(cfg.ttl, Some(Duration::from_secs(30)));
    assert_eq!(cfg.heartbeat, Duration::from_secs(5));
    assert_eq!(cfg.exchange_kind, ExchangeKind::Topic);
    assert_eq!(cfg.content_mode, ContentMode::Binary);
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = RabbitConfig::parse(&md(&[
        ("connectionString", "http://x, amqp://u:secretpw@ok/%2f"),
        ("exchangeKind", "weird"),
        ("prefetchCount", "0"),
        ("deliveryMode", "7"),
        ("durable", "maybe"),
        ("heartBeat", "soon"),
        ("clientCert", "PEM"),
    ]))
    .expect_err("invalid")
    .errors;
    let keys: Vec<_> = errs.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "connectionString",
        "exchangeKind",
        "prefetchCount",
        "deliveryMode",
        "durable",
        "heartBeat",
        "clientCert",
    ] {
        assert!(keys.contains(&k), "{k} not reported: {errs:?}");
    }
}

#[test]
fn a_connection_is_required_and_passwords_stay_hidden() {
    let errs = RabbitConfig::parse(&md(&[])).expect_err("no host").errors;
    assert_eq!(errs[0].key, "connectionString");
    assert_eq!(
        crate::config::metadata::shown_value("connectionString", "amqp://u:pw@h:1/%2f"),
        "amqp://u:<secret>@h:1/%2f"
    );
}

#[test]
fn unknown_and_fixed_keys_warn_but_runtime_keys_are_silent() {
    let warnings = RabbitConfig::parse(&md(&[
        ("hostname", "h"),
        ("consumerID", "app"),
        ("partitionKeyAttribute", "k"),
        ("publisherConfirm", "false"),
        ("mystery", "1"),
    ]))
    .expect("valid")
    .warnings;
    let keys: Vec<_> = warnings.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["mystery", "publisherConfirm"]);
}

#[test]
fn durations_are_seconds_or_go_units_and_booleans_are_go_booleans() {
    let parse = |pairs: &[(&str, &str)]| {
        let mut all = vec![("hostname", "h")];
        all.extend_from_slice(pairs);
        RabbitConfig::parse(&md(&all))
    };
    let cfg = parse(&[
        ("reconnectWaitSeconds", "3"),
        ("heartBeat", "500ms"),
        ("queueExpiresInSeconds", "2m"),
        ("durable", "F"),
    ])
    .expect("valid")
    .config;
    assert_eq!(cfg.reconnect_wait, Duration::from_secs(3));
    assert_eq!(cfg.heartbeat, Duration::from_millis(500));
    assert_eq!(cfg.queue_expires, Some(Duration::from_secs(120)));
    assert!(!cfg.durable);
    let v = parse(&[("ttlInSeconds", "x"), ("durable", "yes")]).expect_err("invalid");
    let keys: Vec<_> = v.errors.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["durable", "ttlInSeconds"]);
}

/// A URI without `//` used to be echoed whole by `validate` and at start-up,
/// password included; neither the problems nor the config's `Debug` may
/// show a password.
#[test]
fn passwords_never_appear_in_problems_or_debug_output() {
    for cs in [
        "amqp:guest:s3cret@host",
        "amqps:/u:s3cret@h:5671",
        "u:s3cret@@h",
    ] {
        let md: Metadata = [("connectionString".to_string(), cs.to_string())].into();
        let shown = match RabbitConfig::parse(&md) {
            Ok(p) => format!("{:?}", p.config),
            Err(v) => format!("{v:?} {}", v.describe_errors()),
        };
        assert!(!shown.contains("s3cret"), "{cs}: {shown}");
    }
    let md: Metadata = [
        (
            "connectionString".to_string(),
            "amqp://u:s3cret@h:5672/%2f".to_string(),
        ),
        ("clientCert".to_string(), "CERT".to_string()),
        ("clientKey".to_string(), "KEY-s3cret".to_string()),
    ]
    .into();
    let cfg = RabbitConfig::parse(&md).expect("valid").config;
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("s3cret") && shown.contains("h:5672"),
        "{shown}"
    );
}
