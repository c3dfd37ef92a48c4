//! Restart and replay: committed cursors survive a close/reopen, and new
//! groups start where `initialOffset` says.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::broker::conformance::{await_markers, event, eventually, unique, Recorder};
use crate::broker::embedded::config::EmbeddedConfig;
use crate::broker::{PubSub, SubscribeRequest, Subscription};

/// The keys `publish` spreads events over.
const KEYS: [&str; 5] = ["k0", "k1", "k2", "k3", "k4"];

/// Where `expect_exactly` publishes its markers: `topic` of `ps`, one per
/// key of [`KEYS`].
fn on<'a>(ps: &'a Arc<super::Embedded>, topic: &'a str) -> Target<'a> {
    (ps, topic, &KEYS)
}

/// A component, a topic and the keys its events were published with.
type Target<'a> = (&'a Arc<super::Embedded>, &'a str, &'a [&'a str]);

async fn publish(ps: &Arc<super::Embedded>, topic: &str, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        let key = KEYS[i % KEYS.len()];
        ps.publish(event(topic, Some(key), id))
            .await
            .unwrap_or_else(|e| panic!("publish {id}: {e}"));
    }
}

async fn subscribe(
    ps: &Arc<super::Embedded>,
    topic: &str,
    group: &str,
    initial: Option<&str>,
) -> (Subscription, Arc<Recorder>) {
    let rec = Recorder::ok();
    let mut metadata = BTreeMap::new();
    if let Some(i) = initial {
        metadata.insert("initialOffset".to_string(), i.to_string());
    }
    let req = SubscribeRequest {
        topic: topic.into(),
        group: group.into(),
        metadata,
    };
    let sub = ps.subscribe(req, rec.clone()).await.expect("subscribe");
    (sub, rec)
}

/// Waits for exactly `want` (by payload), then checks nothing else arrives:
/// a marker behind each of `keys` (the keys the events were published with)
/// comes after every earlier event of that key's partition, replayed or not.
async fn expect_exactly(
    (ps, topic, keys): Target<'_>,
    rec: &Recorder,
    want: &[String],
    what: &str,
) {
    rec.wait_for(what, |r| want.iter().all(|id| r.count(id.as_bytes()) >= 1))
        .await;
    let ps: Arc<dyn PubSub> = ps.clone();
    let keys: Vec<Option<&str>> = keys.iter().copied().map(Some).collect();
    await_markers(&ps, topic, &keys, 0, &[rec]).await;
    assert_eq!(
        rec.distinct(),
        want.len(),
        "{what}: unexpected extra events"
    );
}

fn ids(run: &str, from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("{run}-{i}")).collect()
}

/// Waits until the wall clock has moved past `ms`, so later appends carry a
/// strictly later time.
async fn clock_past(ms: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while chrono::Utc::now().timestamp_millis() <= ms {
        assert!(
            std::time::Instant::now() < deadline,
            "clock did not advance"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_initial_offsets_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (topic, group, run) = (unique("reopen"), unique("g"), unique("r"));
    let first = ids(&run, 0, 10);
    let second = ids(&run, 10, 15);
    let third = ids(&run, 15, 18);

    let ps = super::open(dir.path(), EmbeddedConfig::default()).await;
    let (sub, rec) = subscribe(&ps, &topic, &group, None).await;
    publish(&ps, &topic, &first).await;
    expect_exactly(on(&ps, &topic), &rec, &first, "the first batch").await;
    sub.stop().await;
    ps.close().await.expect("close");
    // Every first-batch record has a time <= `before` < `between`.
    let before = chrono::Utc::now().timestamp_millis();
    clock_past(before).await;
    let between = chrono::Utc::now().timestamp_millis();
    drop(ps);

    let ps = super::open(dir.path(), EmbeddedConfig::default()).await;
    publish(&ps, &topic, &second).await;
    // A new member of the existing group resumes after its committed cursor.
    let (sub, rec) = subscribe(&ps, &topic, &group, None).await;
    expect_exactly(
        on(&ps, &topic),
        &rec,
        &second,
        "only events after the committed cursor",
    )
    .await;
    sub.stop().await;

    let at = chrono::DateTime::from_timestamp_millis(between)
        .expect("valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (s_old, r_old) = subscribe(&ps, &topic, &unique("g-old"), Some("oldest")).await;
    let (s_new, r_new) = subscribe(&ps, &topic, &unique("g-new"), Some("newest")).await;
    let (s_ts, r_ts) = subscribe(&ps, &topic, &unique("g-ts"), Some(&at)).await;
    // `newest` must be pinned before the next publish: wait until its
    // cursors exist (the group writes them when it starts).
    r_old
        .wait_for("the oldest group to start", |r| r.distinct() >= 15)
        .await;
    wait_for_cursors(&ps, &topic, 4).await;
    publish(&ps, &topic, &third).await;
    let all: Vec<String> = [first, second.clone(), third.clone()].concat();
    expect_exactly(
        on(&ps, &topic),
        &r_old,
        &all,
        "a new oldest group sees everything",
    )
    .await;
    expect_exactly(
        on(&ps, &topic),
        &r_new,
        &third,
        "a new newest group sees only new events",
    )
    .await;
    let from_ts: Vec<String> = [second, third].concat();
    expect_exactly(
        on(&ps, &topic),
        &r_ts,
        &from_ts,
        "a timestamp group starts at that time",
    )
    .await;
    for s in [s_old, s_new, s_ts] {
        s.stop().await;
    }
    ps.close().await.expect("close");
}

/// Waits until every group of `topic` has a cursor file per partition.
async fn wait_for_cursors(ps: &super::Embedded, topic: &str, groups_min: usize) {
    let dir = ps
        .log()
        .cursor_path(topic, "x", 0)
        .parent()
        .and_then(|p| p.parent())
        .map(std::path::Path::to_path_buf)
        .expect("cursor folder");
    let complete = || {
        std::fs::read_dir(&dir)
            .map(|groups| {
                groups
                    .filter_map(Result::ok)
                    .filter(|g| {
                        std::fs::read_dir(g.path())
                            .map(|c| c.count() >= 4)
                            .unwrap_or(false)
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let what = format!(
        "{groups_min} groups with cursors in {} (observed: how many)",
        dir.display()
    );
    eventually(&what, complete, |n| *n >= groups_min).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_events_are_redelivered_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (topic, group, run) = (unique("abandon"), unique("g"), unique("r"));
    let batch = ids(&run, 0, 6);
    let ps = super::open(dir.path(), EmbeddedConfig::default()).await;
    // Finish the first half, abandon the rest (as a shut-down dispatcher would).
    let keep: Vec<String> = batch[..3].to_vec();
    let done = keep.clone();
    let rec = Recorder::scripted(Arc::new(move |m, _| {
        let id = String::from_utf8_lossy(&m.data).into_owned();
        done.contains(&id)
            .then_some(crate::broker::Outcome::Success)
    }));
    let req = SubscribeRequest {
        topic: topic.clone(),
        group: group.clone(),
        metadata: BTreeMap::new(),
    };
    let sub = ps.subscribe(req, rec.clone()).await.expect("subscribe");
    // One key: one partition, so the commit order is the publish order.
    for id in &batch {
        ps.publish(event(&topic, Some("one"), id))
            .await
            .expect("publish");
    }
    rec.wait_for("all six offered", |r| r.distinct() == 6).await;
    sub.stop().await;
    ps.close().await.expect("close");
    drop(ps);

    let ps = super::open(dir.path(), EmbeddedConfig::default()).await;
    let (sub, rec) = subscribe(&ps, &topic, &group, None).await;
    expect_exactly(
        (&ps, &topic, &["one"]),
        &rec,
        &batch[3..],
        "the abandoned events, and only those",
    )
    .await;
    sub.stop().await;
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_holds_back_newer_events_of_its_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (topic, group, run) = (unique("retry-order"), unique("g"), unique("r"));
    let (a, b) = (format!("{run}-a"), format!("{run}-b"));
    let ps = super::open(dir.path(), EmbeddedConfig::default()).await;
    let retried = a.clone();
    let rec = Recorder::scripted(Arc::new(move |m, attempt| {
        let is_a = m.data == retried.as_bytes();
        Some(if is_a && attempt < 3 {
            crate::broker::Outcome::Retry
        } else {
            crate::broker::Outcome::Success
        })
    }));
    let req = SubscribeRequest {
        topic: topic.clone(),
        group,
        metadata: BTreeMap::new(),
    };
    let sub = ps.subscribe(req, rec.clone()).await.expect("subscribe");
    ps.publish(event(&topic, Some("same"), &a))
        .await
        .expect("publish a");
    rec.wait_for("the first attempt of a", |r| r.count(a.as_bytes()) >= 1)
        .await;
    ps.publish(event(&topic, Some("same"), &b))
        .await
        .expect("publish b");
    rec.wait_for("b", |r| r.count(b.as_bytes()) >= 1).await;
    let order: Vec<String> = rec
        .deliveries()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect();
    assert_eq!(order, [a.clone(), a.clone(), a, b], "delivery order");
    let redeliveries: Vec<u32> = rec.deliveries().iter().map(|m| m.redeliveries).collect();
    assert_eq!(redeliveries, [0, 1, 2, 0]);
    sub.stop().await;
    ps.close().await.expect("close");
}
