//! The shared conformance suite against a real RabbitMQ
//! (`SIDEBUS_TEST_RABBITMQ_URL`, printed by `scripts/brokers/rabbitmq.sh env`).

use std::sync::Arc;
use std::time::Duration;

use super::{RabbitConfig, RabbitMq};
use crate::broker::{Metadata, PubSub};

/// The broker URL; a missing one fails the test loudly instead of skipping.
fn url() -> String {
    std::env::var("SIDEBUS_TEST_RABBITMQ_URL").unwrap_or_else(|_| {
        panic!(
            "SIDEBUS_TEST_RABBITMQ_URL is not set: run `scripts/brokers/rabbitmq.sh start` \
             and `eval \"$(scripts/brokers/rabbitmq.sh env)\"` first"
        )
    })
}

/// A connected component with `extra` metadata; test queues expire 10
/// minutes after their last use.
async fn connected(extra: &[(&str, &str)]) -> RabbitMq {
    let mut md: Metadata = [
        ("connectionString", url()),
        ("reconnectWaitSeconds", "1".to_string()),
        ("queueExpiresInSeconds", "600".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    md.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let cfg = RabbitConfig::parse(&md).expect("valid test config").config;
    RabbitMq::connect(cfg, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at SIDEBUS_TEST_RABBITMQ_URL unreachable: {e}"))
}

async fn component() -> Arc<dyn PubSub> {
    Arc::new(connected(&[]).await)
}

/// Apps publish before their consumers exist; daprd answers 204 and so
/// does sidebus (this answered 500 before, failing three official SDK
/// scenarios on RabbitMQ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_publishes_succeed_and_are_counted_by_default() {
    use crate::broker::conformance::{event, unique};
    let c = connected(&[]).await;
    let topic = unique("rmq-unroutable-ok");
    for n in 1..=2 {
        c.publish(event(&topic, None, "e"))
            .await
            .expect("succeeds as in daprd");
        assert_eq!(c.unroutable_published(), n);
    }
    c.ping()
        .await
        .expect("the publish channel survives a return");
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_error_mode_refuses_the_publish() {
    use crate::broker::conformance::{event, unique};
    use crate::broker::BrokerError;
    let c = connected(&[("unroutable", "error")]).await;
    let err = c
        .publish(event(&unique("rmq-unroutable-err"), None, "e"))
        .await
        .expect_err("refused");
    assert!(matches!(err, BrokerError::Rejected(_)), "{err:?}");
    assert_eq!(c.unroutable_published(), 0);
    c.close().await.expect("close");
}

crate::conformance_suite!(component);

#[test]
fn registered_and_validated_without_io() {
    use crate::broker::registry::Registry;
    use crate::config::model::ComponentSpec;
    let reg = Registry::builtin();
    let factory = reg
        .get("pubsub.rabbitmq")
        .expect("pubsub.rabbitmq registered");
    let spec = |pairs: &[(&str, &str)]| ComponentSpec {
        name: "pubsub".into(),
        type_name: "pubsub.rabbitmq".into(),
        version: "v1".into(),
        metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: "test.yaml".into(),
    };
    let ok = factory.validate(&spec(&[("hostname", "h"), ("publisherConfirm", "true")]));
    assert!(ok.errors.is_empty(), "{ok:?}");
    assert_eq!(ok.warnings.len(), 1);
    let bad = factory.validate(&spec(&[("prefetchCount", "x"), ("deliveryMode", "9")]));
    assert_eq!(
        bad.errors.len(),
        3,
        "no connection, bad prefetch, bad mode: {bad:?}"
    );
}
