//! The broker closes our connections while events flow both ways: every
//! publish that was acknowledged must still be delivered; duplicates are
//! allowed (at-least-once) and counted.
//!
//! Needs `SIDEBUS_TEST_RABBITMQ_URL` and `rabbitmqctl` for the same node.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use sidebus::broker::conformance::{event, unique, Recorder};
use sidebus::broker::{Ack, Handler, PubSub, ReceivedMessage, SubscribeRequest};
use support::assert_eventually;
use support::rabbitmq::{close_connections, connected};

/// Records like [`Recorder`] but settles each event a little later, so the
/// broker has unacknowledged deliveries in flight when it kills the
/// connection (those come back as duplicates).
struct SlowAck(Arc<Recorder>);

#[async_trait::async_trait]
impl Handler for SlowAck {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        let inner = self.0.submit(msg).await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(outcome) = inner.await {
                let _ = tx.send(outcome);
            }
        });
        rx
    }
}

/// Publishes at least this many events, and keeps publishing until both
/// kills are done so that traffic always flows through them.
const EVENTS: usize = 3000;
/// Hard bound on the events published.
const MAX_EVENTS: usize = 100_000;
const CONCURRENCY: usize = 32;
/// Publishes are paced so that traffic is still flowing when the
/// connections are killed (at least 9 s in all).
const PACE: Duration = Duration::from_millis(3);
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
    let handler = Arc::new(SlowAck(rec.clone()));
    let sub = ps.subscribe(req, handler).await.expect("subscribe");

    let acked = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let acked_bodies = Arc::new(Mutex::new(Vec::<Bytes>::new()));
    let kills_done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (ps, topic, done) = (ps.clone(), topic.clone(), kills_done.clone());
        let (acked, unavailable, acked_bodies) =
            (acked.clone(), unavailable.clone(), acked_bodies.clone());
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            futures_util::stream::iter(0..MAX_EVENTS)
                .take_while(move |i| {
                    std::future::ready(*i < EVENTS || !done.load(Ordering::Relaxed))
                })
                .map(|i| {
                    let (ps, topic) = (ps.clone(), topic.clone());
                    let (acked, unavailable, acked_bodies) =
                        (acked.clone(), unavailable.clone(), acked_bodies.clone());
                    async move {
                        tokio::time::sleep_until(start + PACE * i as u32).await;
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
    let mut kills_at: Vec<usize> = Vec::new();
    for round in 1..=2 {
        let target = EVENTS * round / 4;
        assert_eventually!(
            format!("{target} acknowledged publishes"),
            Duration::from_secs(60),
            acked.load(Ordering::Relaxed),
            |n: &usize| *n >= target
        );
        let closed = close_connections(&name);
        assert!(
            closed >= 2,
            "expected our publish and consume connections, closed {closed}"
        );
        kills_at.push(acked.load(Ordering::Relaxed));
        let t0 = Instant::now();
        let _recovered = assert_eventually!(
            "ping to recover",
            Duration::from_secs(30),
            ps.ping().await,
            |r: &Result<(), _>| r.is_ok()
        );
        recoveries.push(t0.elapsed());
    }
    kills_done.store(true, Ordering::Relaxed);
    publisher.await.expect("publisher task");

    let bodies = acked_bodies.lock().expect("lock").clone();
    let published = bodies.len();
    assert!(
        published >= EVENTS,
        "only {published} publishes acknowledged"
    );
    rec.wait_for("every acknowledged publish", |r| {
        bodies.iter().all(|b| r.count(b) >= 1)
    })
    .await;
    let deliveries = rec.deliveries().len();
    let duplicates = deliveries - rec.distinct();
    let redelivered = rec
        .deliveries()
        .iter()
        .filter(|m| m.redeliveries > 0)
        .count();
    println!(
        "rabbitmq chaos: {published} acknowledged publishes, {} distinct delivered, {duplicates} duplicates ({redelivered} flagged redelivered), \
         {} publish attempts failed with Unavailable and were retried, killed at {kills_at:?} acknowledged, recovery after kill: {recoveries:?}",
        rec.distinct(),
        unavailable.load(Ordering::Relaxed)
    );
    assert_eq!(
        rec.distinct(),
        published,
        "an event nobody published was delivered"
    );
    sub.stop().await;
    ps.close().await.expect("close");
}
