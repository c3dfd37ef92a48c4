//! The publish outbox in front of a real RabbitMQ: the broker is stopped
//! (`rabbitmqctl stop_app`) mid-stream, publishes keep succeeding as
//! buffered, and once it is back every acknowledged event is delivered, in
//! per-key order, none lost. A guard always runs `start_app` again, even
//! when the test fails, because the machine's RabbitMQ is shared.
//!
//! Needs `SIDEBUS_TEST_RABBITMQ_URL` and `rabbitmqctl` for the same node.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sidebus::broker::conformance::{event, unique, Recorder};
use sidebus::broker::SubscribeRequest;
use sidebus::policy::outbox::{Outbox, OutboxConfig};
use support::assert_eventually;
use support::rabbitmq::component;

/// The tests here stop the one broker: they must not overlap.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Restarts the RabbitMQ app when dropped, whatever the test did.
struct StartAppGuard;

impl Drop for StartAppGuard {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

fn rabbitmqctl(cmd: &str) {
    let out = std::process::Command::new("rabbitmqctl")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl not runnable: {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const KEYS: usize = 4;
const PER_KEY_BEFORE: usize = 20;
const PER_KEY_DURING: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_mid_stream_loses_nothing_and_keeps_key_order() {
    let _serial = BROKER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let inner = component(&[]).await;
    let outbox = Arc::new(
        Outbox::open(
            OutboxConfig {
                component: "rmq".into(),
                dir: dir.path().to_path_buf(),
                max_bytes: 16 << 20,
                direct_timeout: Duration::from_secs(2),
            },
            inner.clone(),
        )
        .await
        .expect("open outbox"),
    );
    let (topic, group) = (unique("outbox-rmq"), unique("g"));
    let rec = Recorder::ok();
    let sub = inner
        .subscribe(
            SubscribeRequest {
                topic: topic.clone(),
                group,
                metadata: BTreeMap::new(),
            },
            rec.clone(),
        )
        .await
        .expect("subscribe");

    let body =
        |k: usize, i: usize| format!(r#"{{"specversion":"1.0","id":"k{k}-{i}","data":{i}}}"#);
    let mut published = Vec::new();
    for i in 0..PER_KEY_BEFORE {
        for k in 0..KEYS {
            let r = outbox
                .publish(event(&topic, Some(&format!("k{k}")), &body(k, i)))
                .await
                .expect("publish while up");
            assert!(!r.buffered, "the broker is up: no buffering expected");
            published.push(body(k, i));
        }
    }

    let guard = StartAppGuard;
    rabbitmqctl("stop_app");
    let mut buffered = 0;
    for i in PER_KEY_BEFORE..PER_KEY_BEFORE + PER_KEY_DURING {
        for k in 0..KEYS {
            let r = outbox
                .publish(event(&topic, Some(&format!("k{k}")), &body(k, i)))
                .await
                .expect("publish while the broker is down must be buffered");
            buffered += usize::from(r.buffered);
            published.push(body(k, i));
        }
    }
    assert_eq!(
        buffered,
        KEYS * PER_KEY_DURING,
        "every publish while down must be buffered"
    );
    let depth = outbox.depth();
    assert!(depth.events > 0 && depth.bytes > 0, "{depth:?}");
    drop(guard);

    assert_eventually!(
        "the outbox to drain",
        Duration::from_secs(120),
        outbox.depth().events,
        |n: &u64| *n == 0
    );
    rec.wait_for("every acknowledged publish", |r| {
        published.iter().all(|b| r.count(b.as_bytes()) >= 1)
    })
    .await;
    // Per-key order of first deliveries.
    let deliveries = rec.deliveries();
    for k in 0..KEYS {
        let mut seen = Vec::new();
        for m in deliveries
            .iter()
            .filter(|m| m.key.as_deref() == Some(&format!("k{k}")))
        {
            let b = String::from_utf8_lossy(&m.data).into_owned();
            if !seen.contains(&b) {
                seen.push(b);
            }
        }
        let want: Vec<String> = (0..PER_KEY_BEFORE + PER_KEY_DURING)
            .map(|i| body(k, i))
            .collect();
        assert_eq!(seen, want, "key k{k} out of order");
    }
    println!(
        "outbox rabbitmq: {} published, {buffered} buffered while down, {} deliveries ({} distinct)",
        published.len(),
        deliveries.len(),
        rec.distinct()
    );
    sub.stop().await;
    outbox.close().await;
    inner.close().await.expect("close");
}

/// Through the real binary: publishes while the broker is stopped answer
/// 204 with `sidebus-outbox: buffered` until the tiny outbox is full, then
/// 503 with `Retry-After` and `ERR_PUBSUB_OUTBOX_FULL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_answers_buffered_then_503_when_full() {
    use support::process::{request, SidecarProcess};
    let _serial = BROKER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).expect("mkdir");
    let yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: rmq\nspec:\n  type: pubsub.rabbitmq\n  version: v1\n  metadata:\n  - name: connectionString\n    value: \"{}\"\n  - name: reconnectWaitSeconds\n    value: \"1\"\n  - name: outboxMaxBytes\n    value: \"4096\"\n",
        support::rabbitmq::url()
    );
    std::fs::write(res.join("rmq.yaml"), yaml).expect("write component");
    let data = dir.path().join("data");
    let sc = SidecarProcess::start(&[
        "--app-id",
        "outbox",
        "--resources-path",
        res.to_str().expect("utf-8 path"),
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ]);
    sc.wait_status("/v1.0/healthz/outbound", 204).await;
    let topic = unique("outbox-bin");
    // A bound queue, so the broker routes (and we can count) the events.
    let consumer = component(&[]).await;
    let rec = Recorder::ok();
    let sub = consumer
        .subscribe(
            SubscribeRequest {
                topic: topic.clone(),
                group: unique("g"),
                metadata: BTreeMap::new(),
            },
            rec.clone(),
        )
        .await
        .expect("subscribe");
    let url = sc.url(&format!(
        "/v1.0/publish/rmq/{topic}?metadata.partitionKey=k"
    ));
    let hdr = [("content-type", "application/json")];
    let body = r#"{"n":"0123456789012345678901234567890123456789"}"#;
    let up = request("POST", &url, &hdr, body).await.expect("publish");
    assert_eq!(up.status, 204);
    assert!(
        up.headers.get("sidebus-outbox").is_none(),
        "not buffered while up"
    );

    let guard = StartAppGuard;
    rabbitmqctl("stop_app");
    let mut buffered = 0;
    let full = loop {
        let r = request("POST", &url, &hdr, body).await.expect("publish");
        if r.status != 204 {
            break r;
        }
        assert_eq!(
            r.headers
                .get("sidebus-outbox")
                .and_then(|v| v.to_str().ok()),
            Some("buffered")
        );
        buffered += 1;
        assert!(buffered < 1000, "a 4 KiB outbox never filled");
    };
    assert!(buffered >= 1, "at least one event fits the outbox");
    assert_eq!(full.status, 503, "{}", String::from_utf8_lossy(&full.body));
    assert!(
        full.headers.get("retry-after").is_some(),
        "Retry-After missing"
    );
    assert_eq!(full.json()["errorCode"], "ERR_PUBSUB_OUTBOX_FULL");
    drop(guard);
    rec.wait_for("the buffered events after start_app", |r| {
        r.distinct() > buffered
    })
    .await;
    println!(
        "outbox binary: {buffered} buffered publishes before 503, all delivered after start_app"
    );
    sc.terminate();
    sub.stop().await;
    consumer.close().await.expect("close");
}
