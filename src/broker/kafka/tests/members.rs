//! Two component instances in one consumer group, as two sidecars of one
//! app: partitions split, and when one stops the other takes over without
//! losing an acknowledged event.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::support::{component, duplicates, keyed, publish_all, subscribe};
use crate::broker::conformance::{await_markers, unique, Recorder};
use crate::broker::{Ack, Handler, Outcome, ReceivedMessage};

/// Accepts each event only after `delay` (as a full in-flight bound would)
/// and acknowledges it `delay` later, so events are queued and in flight
/// when a rebalance happens.
struct SlowAck {
    inner: Arc<Recorder>,
    delay: Duration,
}

#[async_trait]
impl Handler for SlowAck {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        tokio::time::sleep(self.delay).await;
        drop(self.inner.submit(msg).await);
        let (tx, rx) = oneshot::channel();
        let delay = self.delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Outcome::Success);
        });
        rx
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_waits_for_in_flight_events() {
    let extra = [("partitions", "4")];
    let (a, b) = (component(&extra), component(&extra));
    let (topic, group) = (unique("k-inflight"), unique("g"));
    let (ra, rb) = (Recorder::scripted(Arc::new(|_, _| None)), Recorder::ok());
    let slow = Arc::new(SlowAck {
        inner: ra.clone(),
        delay: Duration::from_millis(200),
    });
    let sa = subscribe(&a, &topic, &group, slow).await;
    let events = keyed(&topic, &unique("r"), 40, 5);
    publish_all(&a, events.clone()).await;
    ra.wait_for("the first member to be busy", |r| r.distinct() >= 20)
        .await;
    // The second member joins while the first has events in flight.
    let sb = subscribe(&b, &topic, &group, rb.clone()).await;
    ra.wait_for("every event on one member or the other", |r| {
        events
            .iter()
            .all(|q| r.count(&q.data) + rb.count(&q.data) >= 1)
    })
    .await;
    // A marker behind every key: an event handed out twice around the
    // rebalance (replayed from the committed offset by the new owner) comes
    // before its key's marker in the partition.
    await_markers(&a, &topic, &key_refs(&keys(40)), 0, &[&ra, &rb]).await;
    let dups = duplicates(&[&ra, &rb]);
    println!(
        "rebalance with in-flight events: {} events, a={} b={}, {dups} duplicates",
        events.len(),
        ra.distinct(),
        rb.distinct()
    );
    assert_eq!(
        dups, 0,
        "events in flight during the rebalance were handed out twice"
    );
    for s in [sa, sb] {
        s.stop().await;
    }
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_and_take_over_cooperative() {
    two_members_split_and_take_over("cooperative-sticky").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_and_take_over_eager() {
    two_members_split_and_take_over("range").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_members_receive() {
    let ps = component(&[("groupInstanceId", &unique("pod"))]);
    let (topic, group) = (unique("k-static"), unique("g"));
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let events = keyed(&topic, &unique("r"), 2, 5);
    publish_all(&ps, events).await;
    rec.wait_for("events with static membership", |r| r.distinct() == 10)
        .await;
    sub.stop().await;
    ps.close().await.expect("close");
}

async fn two_members_split_and_take_over(strategy: &str) {
    let extra = [("partitions", "4"), ("rebalanceStrategy", strategy)];
    let (a, b) = (component(&extra), component(&extra));
    let (topic, group) = (unique("k-members"), unique("g"));
    let (ra, rb) = (Recorder::ok(), Recorder::ok());
    let sa = subscribe(&a, &topic, &group, ra.clone()).await;
    let sb = subscribe(&b, &topic, &group, rb.clone()).await;

    let first = unique("r1");
    let batch1 = keyed(&topic, &first, 40, 5);
    publish_all(&a, batch1.clone()).await;
    ra.wait_for("the first batch across both members", |r| {
        batch1
            .iter()
            .all(|q| r.count(&q.data) + rb.count(&q.data) >= 1)
    })
    .await;
    assert!(
        ra.distinct() > 0 && rb.distinct() > 0,
        "partitions were not split: a={} b={}",
        ra.distinct(),
        rb.distinct()
    );

    sb.stop().await;
    let second = unique("r2");
    let batch2 = keyed(&topic, &second, 40, 5);
    publish_all(&a, batch2.clone()).await;
    ra.wait_for("the second batch on the remaining member", |r| {
        batch2.iter().all(|q| r.count(&q.data) >= 1)
    })
    .await;
    // A marker behind every key: whatever the remaining member replays or
    // still gets of either batch comes before its key's marker.
    await_markers(&a, &topic, &key_refs(&keys(40)), 0, &[&ra]).await;
    let lost = batch1
        .iter()
        .chain(&batch2)
        .filter(|q| ra.count(&q.data) + rb.count(&q.data) == 0)
        .count();
    assert_eq!(lost, 0, "acknowledged events lost");
    let dups = duplicates(&[&ra, &rb]);
    println!(
        "two members ({strategy}): {} events, {dups} duplicates",
        batch1.len() + batch2.len()
    );
    // Stop commits everything finished, so at most the events in flight
    // during the hand-over may repeat.
    assert!(dups <= 20, "{dups} duplicates after a clean hand-over");
    sa.stop().await;
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

/// The keys `keyed` uses for `n` keys.
fn keys(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("k{k}")).collect()
}

/// `keys` in the form `await_markers` takes.
fn key_refs(keys: &[String]) -> Vec<Option<&str>> {
    keys.iter().map(|k| Some(k.as_str())).collect()
}
