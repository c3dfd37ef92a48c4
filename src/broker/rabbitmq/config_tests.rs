use std::time::Duration;

use super::*;

fn md(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_from_a_connection_string() {
    let cfg = RabbitConfig::parse(&md(&[("connectionString", "amqp://u:p@10.0.0.1:5673/%2f")]))
        .expect("valid");
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
    .expect("valid");
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
    .expect_err("invalid");
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
    let errs = RabbitConfig::parse(&md(&[])).expect_err("no host");
    assert_eq!(errs[0].key, "connectionString");
    assert_eq!(redact("amqp://u:pw@h:1/%2f"), "amqp://u:<secret>@h:1/%2f");
}

#[test]
fn unknown_and_fixed_keys_warn_but_runtime_keys_are_silent() {
    let warnings = RabbitConfig::warnings(&md(&[
        ("hostname", "h"),
        ("consumerID", "app"),
        ("partitionKeyAttribute", "k"),
        ("publisherConfirm", "false"),
        ("mystery", "1"),
    ]));
    let keys: Vec<_> = warnings.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["mystery", "publisherConfirm"]);
}

#[test]
fn durations_accept_seconds_and_go_units() {
    assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("x"), None);
}
