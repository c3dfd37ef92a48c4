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

/// A connected component; test queues expire 10 minutes after their last use.
async fn component() -> Arc<dyn PubSub> {
    let md: Metadata = [
        ("connectionString", url()),
        ("reconnectWaitSeconds", "1".to_string()),
        ("queueExpiresInSeconds", "600".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cfg = RabbitConfig::parse(&md).expect("valid test config").config;
    let c = RabbitMq::connect(cfg, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at SIDEBUS_TEST_RABBITMQ_URL unreachable: {e}"));
    Arc::new(c)
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
