//! Delivery guarantees on a real broker: per-key order across partitions,
//! isolation of a slow partition, commits that never pass a retried event,
//! restart from committed offsets, new groups from the oldest record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::support::{body, component, duplicates, key_seq, keyed, publish_all, subscribe};
use crate::broker::conformance::{await_markers, event, unique, Recorder};
use crate::broker::{Ack, Handler, Outcome, ReceivedMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_across_many_keys_and_partitions() {
    let ps = component(&[("partitions", "4")]);
    let (topic, group, run) = (unique("k-order"), unique("g"), unique("r"));
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let (keys, per_key) = (40, 25);
    publish_all(&ps, keyed(&topic, &run, keys, per_key)).await;
    rec.wait_for("all events", |r| r.distinct() == keys * per_key)
        .await;
    let mut next: HashMap<String, u64> = HashMap::new();
    let mut partitions = std::collections::HashSet::new();
    for m in rec.deliveries() {
        let (key, seq) = key_seq(&m.data);
        partitions.insert(m.partition.expect("partition set"));
        let want = next.entry(key.clone()).or_insert(0);
        assert_eq!(seq, *want, "key {key} out of order");
        *want += 1;
    }
    assert!(
        partitions.len() >= 2,
        "keys spread over partitions: {partitions:?}"
    );
    sub.stop().await;
    ps.close().await.expect("close");
}

/// Blocks `submit` forever for one partition, as a full in-flight bound would.
struct StuckPartition {
    stuck: i32,
    inner: Arc<Recorder>,
}

#[async_trait]
impl Handler for StuckPartition {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        let stuck = msg.partition == Some(self.stuck);
        let ack = self.inner.submit(msg).await;
        if stuck {
            std::future::pending::<()>().await;
        }
        ack
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_partition_does_not_stall_the_others() {
    let ps = component(&[("partitions", "2"), ("channelBufferSize", "4")]);
    let (topic, group, run) = (unique("k-slow"), unique("g"), unique("r"));
    let rec = Recorder::ok();
    let handler = Arc::new(StuckPartition {
        stuck: 0,
        inner: rec.clone(),
    });
    let sub = subscribe(&ps, &topic, &group, handler).await;
    let mut reqs = Vec::new();
    for i in 0..200 {
        let mut r = event(&topic, None, &body(&run, "p0", i));
        r.metadata.insert("partitionNumber".into(), "0".into());
        reqs.push(r);
    }
    for i in 0..50 {
        let mut r = event(&topic, None, &body(&run, "p1", i));
        r.metadata.insert("partitionNumber".into(), "1".into());
        reqs.push(r);
    }
    publish_all(&ps, reqs).await;
    rec.wait_for("partition 1's events", |r| {
        r.deliveries()
            .iter()
            .filter(|m| m.partition == Some(1))
            .count()
            == 50
    })
    .await;
    let p0 = rec
        .deliveries()
        .iter()
        .filter(|m| m.partition == Some(0))
        .count();
    assert_eq!(p0, 1, "the blocked partition got past its stuck event");
    // Stopping must not hang on the blocked submit.
    tokio::time::timeout(Duration::from_secs(30), sub.stop())
        .await
        .expect("stop returned");
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_holds_the_commit_back() {
    let ps = component(&[
        ("consumeRetryInterval", "200ms"),
        ("consumeRetryMaxInterval", "400ms"),
    ]);
    let (topic, group, run) = (unique("k-hold"), unique("g"), unique("r"));
    let poison = body(&run, "a", 0);
    let p = poison.clone();
    let first = Recorder::scripted(Arc::new(move |m: &ReceivedMessage, _| {
        Some(if m.data == p.as_bytes() {
            Outcome::Retry
        } else {
            Outcome::Success
        })
    }));
    let sub = subscribe(&ps, &topic, &group, first.clone()).await;
    let reqs: Vec<_> = (0..10)
        .map(|i| event(&topic, Some("a"), &body(&run, "a", i)))
        .collect();
    publish_all(&ps, reqs).await;
    first
        .wait_for("later events and redeliveries of the first", |r| {
            r.distinct() == 10 && r.count(poison.as_bytes()) >= 3
        })
        .await;
    assert!(
        first.deliveries().iter().any(|m| m.redeliveries > 0),
        "redeliveries are counted"
    );
    sub.stop().await;
    let second = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, second.clone()).await;
    second
        .wait_for("the retried event after a restart", |r| {
            r.count(poison.as_bytes()) >= 1 && r.distinct() == 10
        })
        .await;
    sub.stop().await;
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_committed_offsets() {
    let (topic, group, run) = (unique("k-restart"), unique("g"), unique("r"));
    let ps = component(&[]);
    let first = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, first.clone()).await;
    publish_all(&ps, keyed(&topic, &run, 3, 10)).await;
    first.wait_for("first batch", |r| r.distinct() == 30).await;
    sub.stop().await;
    ps.close().await.expect("close");

    let ps = component(&[]);
    let later = unique("later");
    publish_all(&ps, keyed(&topic, &later, 3, 5)).await;
    let second = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, second.clone()).await;
    second
        .wait_for("second batch", |r| r.distinct() >= 15)
        .await;
    // A marker behind each key: a replay of the first batch (or a second
    // copy of the second) sits before it in the key's partition.
    await_markers(
        &ps,
        &topic,
        &[Some("k0"), Some("k1"), Some("k2")],
        0,
        &[&second],
    )
    .await;
    let old = second
        .deliveries()
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.data).contains(&run))
        .count();
    assert_eq!(old, 0, "events acknowledged before the restart came back");
    assert_eq!(second.distinct(), 15);
    assert_eq!(duplicates(&[&second]), 0);
    sub.stop().await;
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_starts_at_the_oldest_record() {
    let ps = component(&[]);
    let (topic, run) = (unique("k-oldest"), unique("r"));
    publish_all(&ps, keyed(&topic, &run, 2, 10)).await;
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &unique("fresh"), rec.clone()).await;
    rec.wait_for("records published before the group existed", |r| {
        r.distinct() == 20
    })
    .await;
    sub.stop().await;
    ps.close().await.expect("close");
}
