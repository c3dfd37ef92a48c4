//! Competing subscribers under churn: a member leaving mid-stream hands its
//! partitions over without losing events.

use std::collections::BTreeMap;

use crate::broker::conformance::{event, unique, Recorder};
use crate::broker::embedded::config::EmbeddedConfig;
use crate::broker::{PubSub, SubscribeRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_member_hands_its_partitions_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (topic, group, run) = (unique("churn"), unique("g"), unique("r"));
    let ps = super::open(dir.path(), EmbeddedConfig::default()).await;
    let req = SubscribeRequest {
        topic: topic.clone(),
        group,
        metadata: BTreeMap::new(),
    };
    let (a, b) = (Recorder::ok(), Recorder::ok());
    let sa = ps
        .subscribe(req.clone(), a.clone())
        .await
        .expect("subscribe a");
    let sb = ps.subscribe(req, b.clone()).await.expect("subscribe b");
    let ids: Vec<String> = (0..400).map(|i| format!("{run}-{i}")).collect();
    let publisher = {
        let (ps, topic, ids) = (ps.clone(), topic.clone(), ids.clone());
        tokio::spawn(async move {
            for (i, id) in ids.iter().enumerate() {
                let key = format!("k{}", i % 16);
                ps.publish(event(&topic, Some(&key), id))
                    .await
                    .expect("publish");
            }
        })
    };
    b.wait_for("b to take part", |r| r.distinct() >= 20).await;
    sb.stop().await;
    publisher.await.expect("publisher");
    a.wait_for("every event by one member or the other", |r| {
        ids.iter()
            .all(|id| r.count(id.as_bytes()) + b.count(id.as_bytes()) >= 1)
    })
    .await;
    assert!(
        a.distinct() > 0 && b.distinct() > 0,
        "both members consumed"
    );
    // The hand-over starts at the leaver's committed cursor, and the leaver
    // settled everything (the recorders answer at once): nothing repeats.
    let delivered_twice = ids
        .iter()
        .filter(|id| a.count(id.as_bytes()) + b.count(id.as_bytes()) > 1)
        .count();
    assert_eq!(
        delivered_twice, 0,
        "events delivered twice across the hand-over"
    );
    for rec in [&a, &b] {
        let mut last: BTreeMap<usize, usize> = BTreeMap::new();
        for m in rec.deliveries() {
            let text = String::from_utf8_lossy(&m.data).into_owned();
            let i: usize = text
                .rsplit('-')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("index");
            if let Some(prev) = last.insert(i % 16, i) {
                assert!(prev < i, "key k{} went from {prev} back to {i}", i % 16);
            }
        }
    }
    sa.stop().await;
    ps.close().await.expect("close");
}
