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
    let cfg = RabbitConfig::parse(&md).expect("valid test config");
    let c = RabbitMq::connect(cfg, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at SIDEBUS_TEST_RABBITMQ_URL unreachable: {e}"));
    Arc::new(c)
}

crate::conformance_suite!(component);
