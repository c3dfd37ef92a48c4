//! Broker faults on librdkafka's in-process mock cluster: the broker goes
//! down while publishing and while consuming. The sleeps here are the
//! faults themselves (how long the broker stays away); nothing concludes
//! from a sleep that something did not happen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use super::support::{duplicates, keyed, metadata, publish_all, subscribe};
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
    let pending = tokio::spawn(async move {
        let results = publisher.publish_bulk(reqs).await;
        (results, Instant::now())
    });
    tokio::time::sleep(OUTAGE).await;
    let up_at = Instant::now();
    mock.broker_up(-1).expect("up");
    let (results, done_at) = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("publishes finished after the broker came back")
        .expect("publish task");
    assert!(
        done_at >= up_at,
        "publishes completed while the broker was down"
    );
    let sent = results.len();
    let acknowledged = results.iter().filter(|r| r.is_ok()).count();
    println!("publish outage: {sent} sent, {acknowledged} acknowledged after the broker came back");
    assert_eq!(sent, 50);
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
    let sent = before.len() + after.len();
    let lost = before
        .iter()
        .chain(&after)
        .filter(|q| rec.count(&q.data) == 0)
        .count();
    println!(
        "consume outage: {sent} sent and acknowledged, {} delivered, {} duplicates, {lost} lost",
        rec.distinct(),
        duplicates(&[&rec])
    );
    assert_eq!(lost, 0, "acknowledged events lost");
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
    // A second component with the same stallTimeout is the marker that
    // enough time passed: it is made to stall below, and its watchdog can
    // only fire after observing lag without progress for stallTimeout.
    let (probe_topic, probe_group) = (unique("m-probe"), unique("g"));
    mock.create_topic(&probe_topic, 1, 1).expect("probe topic");
    let probe = Arc::new(Kafka::from_metadata(&m).expect("probe component"));
    let probe_ps: Arc<dyn PubSub> = probe.clone();
    let probe_rec = Recorder::ok();
    let probe_sub = subscribe(&probe_ps, &probe_topic, &probe_group, probe_rec.clone()).await;
    publish_all(&probe_ps, keyed(&probe_topic, &unique("warm"), 1, 1)).await;
    probe_rec
        .wait_for("the probe's first event", |r| r.distinct() == 1)
        .await;
    // Every fetch fails from now on while offsets stay readable: lag grows,
    // nothing moves, as in daprd's silent stalls.
    let errors = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN; 100_000];
    mock.request_errors(RDKafkaApiKey::Fetch, &errors);
    publish_all(&probe_ps, keyed(&probe_topic, &unique("r"), 1, 3)).await;
    probe_rec
        .wait_for("the watchdog to restart the stalled probe", |_| {
            probe.consumer_restarts() > 0
        })
        .await;
    // The first consumer was caught up and idle (under the same failing
    // fetches) since before the probe's stall began, so for longer than
    // the probe needed to be restarted: idle without lag is not a stall.
    assert_eq!(
        kafka.consumer_restarts(),
        0,
        "an idle, caught-up consumer was restarted"
    );
    // Now it has lag and cannot fetch: it must be restarted too.
    let events = keyed(&topic, &unique("r"), 2, 5);
    publish_all(&ps, events.clone()).await;
    rec.wait_for("the watchdog to restart the stalled consumer", |_| {
        kafka.consumer_restarts() > 0
    })
    .await;
    mock.clear_request_errors(RDKafkaApiKey::Fetch);
    probe_sub.stop().await;
    probe_ps.close().await.expect("close probe");
    rec.wait_for("every event after the restart", |r| {
        events.iter().all(|q| r.count(&q.data) >= 1)
    })
    .await;
    sub.stop().await;
    ps.close().await.expect("close");
}
