//! Broker faults on librdkafka's in-process mock cluster: the broker goes
//! down while publishing and while consuming.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_restarts_a_stalled_consumer() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let (topic, group) = (unique("m-stall"), unique("g"));
    mock.create_topic(&topic, 1, 1).expect("topic");
    let m = metadata(&mock.bootstrap_servers(), &[("stallTimeout", "2s")]);
    let kafka = Arc::new(Kafka::from_metadata(&m).expect("mock component"));
    let ps: Arc<dyn PubSub> = kafka.clone();
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let warm = keyed(&topic, &unique("warm"), 2, 5);
    publish_all(&ps, warm).await;
    rec.wait_for("events before the fault", |r| r.distinct() == 10)
        .await;
    // Caught up and idle for longer than stallTimeout: not a stall.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        kafka.consumer_restarts(),
        0,
        "an idle, caught-up consumer was restarted"
    );
    // Every fetch fails from now on while offsets stay readable: lag grows,
    // nothing moves, as in daprd's silent stalls.
    let errors = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN; 100_000];
    mock.request_errors(RDKafkaApiKey::Fetch, &errors);
    let events = keyed(&topic, &unique("r"), 2, 5);
    publish_all(&ps, events.clone()).await;
    let end = Instant::now() + Duration::from_secs(45);
    while kafka.consumer_restarts() == 0 {
        assert!(
            Instant::now() < end,
            "the watchdog never restarted the stalled consumer; {} delivered",
            rec.distinct()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mock.clear_request_errors(RDKafkaApiKey::Fetch);
    rec.wait_for("every event after the restart", |r| {
        events.iter().all(|q| r.count(&q.data) >= 1)
    })
    .await;
    sub.stop().await;
    ps.close().await.expect("close");
}
