//! Two component instances in one consumer group, as two sidecars of one
//! app: partitions split, and when one stops the other takes over without
//! losing an acknowledged event.

use super::support::{component, duplicates, keyed, publish_all, subscribe};
use crate::broker::conformance::{unique, Recorder, QUIET_WINDOW};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_and_take_over() {
    let extra = [("partitions", "4")];
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
    tokio::time::sleep(QUIET_WINDOW).await;
    let lost = batch1
        .iter()
        .chain(&batch2)
        .filter(|q| ra.count(&q.data) + rb.count(&q.data) == 0)
        .count();
    assert_eq!(lost, 0, "acknowledged events lost");
    let dups = duplicates(&[&ra, &rb]);
    println!(
        "two members: {} events, {dups} duplicates",
        batch1.len() + batch2.len()
    );
    // Stop commits everything finished, so at most the events in flight
    // during the hand-over may repeat.
    assert!(dups <= 20, "{dups} duplicates after a clean hand-over");
    sa.stop().await;
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}
