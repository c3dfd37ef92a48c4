//! Broker faults on librdkafka's in-process mock cluster: the broker goes
//! down while publishing and while consuming.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;

use super::support::{keyed, metadata, publish_all, subscribe};
use crate::broker::conformance::{unique, Recorder};
use crate::broker::kafka::Kafka;
use crate::broker::PubSub;

/// How long the broker stays away in each fault.
const OUTAGE: Duration = Duration::from_secs(3);

fn mock_component(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
) -> Arc<dyn PubSub> {
    let m = metadata(&mock.bootstrap_servers(), &[("publishTimeout", "60s")]);
    Arc::new(Kafka::from_metadata(&m).expect("mock component"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_survives_a_broker_outage() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let topic = unique("m-pub");
    mock.create_topic(&topic, 2, 1).expect("topic");
    let ps = mock_component(&mock);
    publish_all(&ps, keyed(&topic, "warm", 1, 1)).await;

    mock.broker_down(-1).expect("down");
    let publisher = ps.clone();
    let reqs = keyed(&topic, &unique("r"), 5, 10);
    let pending = tokio::spawn(async move { publisher.publish_bulk(reqs).await });
    tokio::time::sleep(OUTAGE).await;
    assert!(
        !pending.is_finished(),
        "publishes completed while the broker was down"
    );
    mock.broker_up(-1).expect("up");
    let results = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("publishes finished after the broker came back")
        .expect("publish task");
    assert_eq!(results.len(), 50);
    for r in results {
        r.unwrap_or_else(|e| panic!("publish failed after the outage: {e}"));
    }
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_resumes_after_a_broker_outage_without_loss() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let (topic, group) = (unique("m-sub"), unique("g"));
    mock.create_topic(&topic, 2, 1).expect("topic");
    let ps = mock_component(&mock);
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let before = keyed(&topic, &unique("r1"), 4, 10);
    publish_all(&ps, before.clone()).await;
    rec.wait_for("events before the outage", |r| r.distinct() == 40)
        .await;

    mock.broker_down(-1).expect("down");
    let publisher = ps.clone();
    let after = keyed(&topic, &unique("r2"), 4, 10);
    let reqs = after.clone();
    let pending = tokio::spawn(async move { publish_all(&publisher, reqs).await });
    tokio::time::sleep(OUTAGE).await;
    mock.broker_up(-1).expect("up");
    pending.await.expect("publishes after the outage");
    rec.wait_for("every event, before and after the outage", |r| {
        before.iter().chain(&after).all(|q| r.count(&q.data) >= 1)
    })
    .await;
    sub.stop().await;
    ps.close().await.expect("close");
}
