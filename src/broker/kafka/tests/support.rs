//! Helpers shared by the Kafka tests.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::broker::conformance::{event, Recorder};
use crate::broker::kafka::Kafka;
use crate::broker::{Handler, Metadata, PubSub, PublishRequest, SubscribeRequest, Subscription};

/// Env var naming the brokers the tests use.
pub const BROKERS_ENV: &str = "SIDEBUS_TEST_KAFKA_BROKERS";

/// The test brokers; fails the test loudly when they are not configured or
/// the first one does not accept connections.
pub fn brokers() -> String {
    let brokers = match std::env::var(BROKERS_ENV) {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "{BROKERS_ENV} is not set: start a broker with `scripts/brokers/tansu.sh start` \
             and `eval \"$(scripts/brokers/tansu.sh env)\"` before running the Kafka tests"
        ),
    };
    let first = brokers.split(',').next().unwrap_or_default().trim();
    let reachable = first
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok());
    assert!(
        reachable,
        "{BROKERS_ENV}={brokers} is not reachable: is the broker running \
         (`scripts/brokers/tansu.sh start`)?"
    );
    brokers
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

/// Subscribes `handler` to `topic` in `group`.
pub async fn subscribe(
    ps: &Arc<dyn PubSub>,
    topic: &str,
    group: &str,
    handler: Arc<dyn Handler>,
) -> Subscription {
    let req = SubscribeRequest {
        topic: topic.to_string(),
        group: group.to_string(),
        metadata: Metadata::new(),
    };
    ps.subscribe(req, handler)
        .await
        .unwrap_or_else(|e| panic!("subscribe to {topic} failed: {e}"))
}

/// A CloudEvent body carrying `key` and `seq`.
pub fn body(run: &str, key: &str, seq: usize) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{run}-{key}-{seq}","source":"test","type":"t","datacontenttype":"application/json","data":{{"key":"{key}","seq":{seq}}}}}"#
    )
}

/// The (key, seq) carried by a [`body`].
pub fn key_seq(data: &[u8]) -> (String, u64) {
    let v: serde_json::Value = serde_json::from_slice(data).expect("json body");
    let key = v["data"]["key"].as_str().expect("key").to_string();
    (key, v["data"]["seq"].as_u64().expect("seq"))
}

/// Publishes every request concurrently and fails on any error.
pub async fn publish_all(ps: &Arc<dyn PubSub>, reqs: Vec<PublishRequest>) {
    let results = ps.publish_bulk(reqs).await;
    for r in results {
        r.unwrap_or_else(|e| panic!("publish failed: {e}"));
    }
}

/// Publish requests with keys `k0..k{keys}` and `per_key` events each,
/// interleaved.
pub fn keyed(topic: &str, run: &str, keys: usize, per_key: usize) -> Vec<PublishRequest> {
    let mut reqs = Vec::new();
    for seq in 0..per_key {
        for k in 0..keys {
            let key = format!("k{k}");
            reqs.push(event(topic, Some(&key), &body(run, &key, seq)));
        }
    }
    reqs
}

/// Total deliveries minus distinct payloads over several recorders.
pub fn duplicates(recs: &[&Recorder]) -> usize {
    let mut all = std::collections::HashMap::<bytes::Bytes, usize>::new();
    for r in recs {
        for m in r.deliveries() {
            *all.entry(m.data).or_insert(0) += 1;
        }
    }
    all.values().map(|n| n - 1).sum()
}
