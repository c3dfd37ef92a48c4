//! Helpers shared by the Kafka tests.

use std::sync::Arc;

use crate::broker::kafka::Kafka;
use crate::broker::{Metadata, PubSub};

/// Env var naming the brokers the tests use.
pub const BROKERS_ENV: &str = "SIDEBUS_TEST_KAFKA_BROKERS";

/// The test brokers; fails the test loudly when they are not configured.
pub fn brokers() -> String {
    match std::env::var(BROKERS_ENV) {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "{BROKERS_ENV} is not set: start a broker with `scripts/brokers/tansu.sh start` \
             and `eval \"$(scripts/brokers/tansu.sh env)\"` before running the Kafka tests"
        ),
    }
}

/// Metadata for a test component: small session timeouts (Tansu's join
/// takes about half the session timeout), plus `extra`.
pub fn metadata(brokers: &str, extra: &[(&str, &str)]) -> Metadata {
    let mut m = Metadata::new();
    m.insert("brokers".into(), brokers.into());
    m.insert("sessionTimeout".into(), "6s".into());
    m.insert("heartbeatInterval".into(), "1s".into());
    m.insert("publishTimeout".into(), "20s".into());
    for (k, v) in extra {
        m.insert((*k).into(), (*v).into());
    }
    m
}

/// A component on the test brokers.
pub fn component(extra: &[(&str, &str)]) -> Arc<dyn PubSub> {
    let m = metadata(&brokers(), extra);
    Arc::new(Kafka::from_metadata(&m).unwrap_or_else(|e| panic!("bad test metadata: {e}")))
}
