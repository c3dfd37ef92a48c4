//! The broker closes our connections while events flow both ways: every
//! publish that was acknowledged must still be delivered; duplicates are
//! allowed (at-least-once) and counted.
//!
//! Needs `SIDEBUS_TEST_RABBITMQ_URL` and `rabbitmqctl` for the same node.

mod rabbitmq_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use rabbitmq_support::{close_connections, connected, wait_until};
use sidebus::broker::conformance::{event, unique, Recorder};
use sidebus::broker::{PubSub, SubscribeRequest};

const EVENTS: usize = 3000;
const CONCURRENCY: usize = 32;
/// A single publish gives up (failing the test) after this long.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_closed_connections_lose_no_acknowledged_event() {
    let name = unique("chaos");
    let ps = Arc::new(connected(&[("clientName", &name)]).await);
    let (topic, group) = (unique("rmq-chaos"), unique("g"));
    let rec = Recorder::ok();
    let req = SubscribeRequest {
        topic: topic.clone(),
        group,
        metadata: BTreeMap::new(),
    };
    let sub = ps.subscribe(req, rec.clone()).await.expect("subscribe");

    let acked = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let acked_bodies = Arc::new(Mutex::new(Vec::<Bytes>::new()));
    let publisher = {
        let (ps, topic) = (ps.clone(), topic.clone());
        let (acked, unavailable, acked_bodies) =
            (acked.clone(), unavailable.clone(), acked_bodies.clone());
        tokio::spawn(async move {
            futures_util::stream::iter(0..EVENTS)
                .map(|i| {
                    let (ps, topic) = (ps.clone(), topic.clone());
                    let (acked, unavailable, acked_bodies) =
                        (acked.clone(), unavailable.clone(), acked_bodies.clone());
                    async move {
                        let body = format!(r#"{{"specversion":"1.0","id":"e{i}","data":{i}}}"#);
                        let req = event(&topic, None, &body);
                        let end = Instant::now() + PUBLISH_DEADLINE;
                        loop {
                            match ps.publish(req.clone()).await {
                                Ok(()) => break,
                                Err(e) if e.is_retriable() && Instant::now() < end => {
                                    unavailable.fetch_add(1, Ordering::Relaxed);
                                    // The caller's retry (outbox/resiliency in sidebus).
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                                Err(e) => panic!("publish e{i} failed for good: {e}"),
                            }
                        }
                        acked_bodies.lock().expect("lock").push(req.data);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
        })
    };

    let mut recoveries = Vec::new();
    for round in 1..=2 {
        let target = EVENTS * round / 3;
        wait_until("publishes to progress", Duration::from_secs(60), || {
            let acked = acked.clone();
            async move { acked.load(Ordering::Relaxed) >= target }
        })
        .await;
        let closed = close_connections(&name);
        assert!(
            closed >= 2,
            "expected our publish and consume connections, closed {closed}"
        );
        let t0 = Instant::now();
        wait_until("ping to recover", Duration::from_secs(30), || {
            let ps = ps.clone();
            async move { ps.ping().await.is_ok() }
        })
        .await;
        recoveries.push(t0.elapsed());
    }
    publisher.await.expect("publisher task");

    let bodies = acked_bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), EVENTS);
    rec.wait_for("every acknowledged publish", |r| {
        bodies.iter().all(|b| r.count(b) >= 1)
    })
    .await;
    let deliveries = rec.deliveries().len();
    let duplicates = deliveries - rec.distinct();
    println!(
        "rabbitmq chaos: {EVENTS} acknowledged publishes, {} distinct delivered, {duplicates} duplicates, \
         {} publish attempts failed with Unavailable and were retried, recovery after kill: {recoveries:?}",
        rec.distinct(),
        unavailable.load(Ordering::Relaxed)
    );
    assert_eq!(
        rec.distinct(),
        EVENTS,
        "an event nobody published was delivered"
    );
    sub.stop().await;
    ps.close().await.expect("close");
}
