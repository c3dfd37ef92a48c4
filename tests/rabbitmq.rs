//! `pubsub.rabbitmq` against a real RabbitMQ beyond the conformance suite:
//! dead letters, TTL, content modes, unroutable publishes, competing
//! consumers, and connections killed by the broker mid-traffic.
//!
//! Needs `SIDEBUS_TEST_RABBITMQ_URL` (`scripts/brokers/rabbitmq.sh env`) and,
//! for the reconnect test, `rabbitmqctl` talking to that broker's node (root).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use sidebus::broker::conformance::{await_markers, event, unique, Recorder};
use sidebus::broker::{BrokerError, Feature, Outcome, PubSub, PublishRequest, SubscribeRequest};
use support::assert_eventually;
use support::rabbitmq::{component, raw_channel};

fn subscribe_req(topic: &str, group: &str) -> SubscribeRequest {
    SubscribeRequest {
        topic: topic.into(),
        group: group.into(),
        metadata: BTreeMap::new(),
    }
}

fn ce(id: &str, data: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"test","type":"t","datacontenttype":"application/json","data":{data}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_publish_is_rejected() {
    let ps = component(&[("unroutable", "error")]).await;
    assert_eq!(ps.features(), &[Feature::MessageTtl]);
    let topic = unique("rmq-unroutable");
    let err = ps
        .publish(event(&topic, None, &ce("u1", "1")))
        .await
        .expect_err("no queue is bound, so the broker returns the event");
    assert!(matches!(err, BrokerError::Rejected(_)), "got {err:?}");
    ps.ping()
        .await
        .expect("the publish channel survives a return");
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_share_and_each_group_gets_a_copy() {
    let ps = component(&[]).await;
    let topic = unique("rmq-compete");
    let (g1, g2) = (unique("g1"), unique("g2"));
    let (a, b, other) = (Recorder::ok(), Recorder::ok(), Recorder::ok());
    let sa = ps
        .subscribe(subscribe_req(&topic, &g1), a.clone())
        .await
        .expect("sub");
    let sb = ps
        .subscribe(subscribe_req(&topic, &g1), b.clone())
        .await
        .expect("sub");
    let so = ps
        .subscribe(subscribe_req(&topic, &g2), other.clone())
        .await
        .expect("sub");
    let n = 200;
    for i in 0..n {
        ps.publish(event(&topic, None, &ce(&format!("c{i}"), &i.to_string())))
            .await
            .expect("publish");
    }
    other
        .wait_for("group 2's copy", |r| r.distinct() == n)
        .await;
    a.wait_for("group 1's copy", |r| r.distinct() + b.distinct() == n)
        .await;
    assert!(
        a.distinct() > 0 && b.distinct() > 0,
        "both members of group 1 got work: {} / {}",
        a.distinct(),
        b.distinct()
    );
    // A marker behind the events in the group's queue: a second copy of any
    // of them (requeued or redelivered) is handed out before it.
    await_markers(&ps, &topic, &[None], 0, &[&a, &b]).await;
    assert_eq!(
        a.deliveries().len() + b.deliveries().len(),
        n,
        "no duplicates within group 1"
    );
    for s in [sa, sb, so] {
        s.stop().await;
    }
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_events_are_dead_lettered_with_reason_and_count() {
    let ps = component(&[("enableDeadLetter", "true"), ("ttlInSeconds", "1")]).await;
    let (topic, group) = (unique("rmq-dlq"), unique("g"));
    // Subscribing declares the queue with its dead-letter exchange; stopping
    // leaves the queue without consumers so events expire in it.
    let sub = ps
        .subscribe(subscribe_req(&topic, &group), Recorder::ok())
        .await
        .expect("sub");
    sub.stop().await;
    for i in 0..3 {
        ps.publish(event(&topic, Some("k"), &ce(&format!("d{i}"), "1")))
            .await
            .expect("publish");
    }
    let channel = raw_channel().await;
    let dlq = format!("dlq-{group}-{topic}");
    let mut got = Vec::new();
    assert_eventually!(
        format!("3 dead letters in {dlq} (observed: how many)"),
        Duration::from_secs(30),
        {
            let get = channel.basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true });
            match get.await {
                Ok(Some(m)) => got.push(m.delivery.properties.clone()),
                Ok(None) => {}
                Err(e) => panic!("reading {dlq}: {e}"),
            }
            got.len()
        },
        |n: &usize| *n >= 3
    );
    for props in &got {
        let (_, md, key) = sidebus::broker::rabbitmq::codec::decode(props, Vec::new());
        assert_eq!(
            md.get("x-death-reason").map(String::as_str),
            Some("expired"),
            "{md:?}"
        );
        assert_eq!(
            md.get("x-death-count").map(String::as_str),
            Some("1"),
            "{md:?}"
        );
        assert_eq!(
            md.get("x-first-death-reason").map(String::as_str),
            Some("expired")
        );
        assert_eq!(md.get("x-death-queue"), Some(&format!("{group}-{topic}")));
        assert_eq!(
            md.get("conformance").map(String::as_str),
            Some("yes"),
            "original headers kept"
        );
        assert_eq!(key.as_deref(), Some("k"));
    }
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_message_ttl_expires_undelivered_events() {
    let ps = component(&[]).await;
    let (topic, group) = (unique("rmq-ttl"), unique("g"));
    let sub = ps
        .subscribe(subscribe_req(&topic, &group), Recorder::ok())
        .await
        .expect("sub");
    sub.stop().await;
    let mut short = event(&topic, None, &ce("short", "1"));
    short.metadata.insert("ttlInSeconds".into(), "1".into());
    let keep = event(&topic, None, &ce("keep", "2"));
    ps.publish(short.clone()).await.expect("publish");
    ps.publish(keep.clone()).await.expect("publish");
    let channel = raw_channel().await;
    let queue = format!("{group}-{topic}");
    // RabbitMQ drops expired events lazily at the queue head; a passive
    // declare reports the count without consuming.
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    assert_eventually!(
        "the short-lived event to expire (observed: events in the queue)",
        Duration::from_secs(30),
        match channel
            .queue_declare(queue.as_str().into(), opts, FieldTable::default())
            .await
        {
            Ok(q) => q.message_count(),
            Err(e) => panic!("queue vanished: {e}"),
        },
        |n: &u32| *n == 1
    );
    let rec = Recorder::ok();
    let sub = ps
        .subscribe(subscribe_req(&topic, &group), rec.clone())
        .await
        .expect("sub");
    rec.wait_for("the kept event", |r| r.count(&keep.data) == 1)
        .await;
    // The queue is FIFO and `short` was published first: had it survived,
    // it would have been handed out before `keep`, let alone the marker.
    await_markers(&ps, &topic, &[None], 0, &[&rec]).await;
    assert_eq!(rec.count(&short.data), 0, "an expired event was delivered");
    sub.stop().await;
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_and_structured_modes_interoperate() {
    let binary = component(&[("contentMode", "binary")]).await;
    let structured = component(&[]).await;
    let (topic, group) = (unique("rmq-modes"), unique("g"));
    let rec = Recorder::ok();
    let sub = structured
        .subscribe(subscribe_req(&topic, &group), rec.clone())
        .await
        .expect("sub");
    // A raw queue on the same exchange shows what is on the wire.
    let channel = raw_channel().await;
    let wire = unique("wire");
    let opts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(wire.as_str().into(), opts, FieldTable::default())
        .await
        .expect("declare");
    channel
        .queue_bind(
            wire.as_str().into(),
            topic.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let b = ce("bin-1", r#"{"order":7}"#);
    let s = ce("str-1", r#"{"order":8}"#);
    binary
        .publish(event(&topic, None, &b))
        .await
        .expect("publish binary");
    structured
        .publish(event(&topic, None, &s))
        .await
        .expect("publish structured");
    rec.wait_for("both events", |r| r.distinct() == 2).await;
    for (sent, m) in [(&b, 0), (&s, 1)] {
        let got: Value =
            serde_json::from_slice(&rec.deliveries()[m].data).expect("structured JSON");
        let want: Value = serde_json::from_str(sent).expect("json");
        assert_eq!(got, want, "delivered as structured CE JSON");
    }
    let first = channel
        .basic_get(wire.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    let first = first.expect("the binary event on the wire");
    assert_eq!(
        first.delivery.data, br#"{"order":7}"#,
        "binary body is the data only"
    );
    let headers = first
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    assert!(
        headers.inner().contains_key("cloudEvents_id"),
        "{headers:?}"
    );
    let second = channel
        .basic_get(wire.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert_eq!(
        second.expect("structured on the wire").delivery.data,
        s.as_bytes()
    );
    sub.stop().await;
    binary.close().await.expect("close");
    structured.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_keeps_the_event_and_reports_redeliveries() {
    let ps = component(&[]).await;
    let (topic, group) = (unique("rmq-retry"), unique("g"));
    let rec = Recorder::scripted(Arc::new(|_, attempt| {
        Some(if attempt < 4 {
            Outcome::Retry
        } else {
            Outcome::Success
        })
    }));
    let sub = ps
        .subscribe(subscribe_req(&topic, &group), rec.clone())
        .await
        .expect("sub");
    let req: PublishRequest = event(&topic, None, &ce("r1", "1"));
    let started = std::time::Instant::now();
    ps.publish(req.clone()).await.expect("publish");
    rec.wait_for("4 attempts", |r| r.count(&req.data) == 4)
        .await;
    let elapsed = started.elapsed();
    let redeliveries: Vec<u32> = rec.deliveries().iter().map(|m| m.redeliveries).collect();
    assert_eq!(redeliveries, [0, 1, 2, 3]);
    // 200 + 400 + 800 ms of retry delay: never an instant requeue loop.
    assert!(
        elapsed >= Duration::from_millis(1400),
        "retries too fast: {elapsed:?}"
    );
    sub.stop().await;
    let data: Bytes = req.data;
    assert_eq!(rec.count(&data), 4);
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_is_unavailable_and_not_ready() {
    let md: sidebus::broker::Metadata =
        [("connectionString", "amqp://guest:guest@127.0.0.1:1/%2f")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let cfg = sidebus::broker::rabbitmq::RabbitConfig::parse(&md)
        .expect("valid")
        .config;
    let ps = sidebus::broker::rabbitmq::RabbitMq::start(cfg);
    assert!(matches!(ps.ping().await, Err(BrokerError::Unavailable(_))));
    let err = ps
        .publish(event("t", None, "x"))
        .await
        .expect_err("no broker");
    assert!(err.is_retriable(), "got {err:?}");
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_host_in_the_list() {
    let dead_first = format!(
        "amqp://guest:guest@127.0.0.1:1/%2f,{}",
        support::rabbitmq::url()
    );
    let ps = component(&[("connectionString", &dead_first)]).await;
    ps.ping().await.expect("connected through the second host");
    let (topic, group) = (unique("rmq-failover"), unique("g"));
    let rec = Recorder::ok();
    let sub = ps
        .subscribe(subscribe_req(&topic, &group), rec.clone())
        .await
        .expect("sub");
    let req = event(&topic, None, &ce("f1", "1"));
    ps.publish(req.clone()).await.expect("publish");
    rec.wait_for("the event", |r| r.count(&req.data) == 1).await;
    sub.stop().await;
    ps.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_queue_arguments_fail_the_subscribe() {
    let ps = component(&[("maxLen", "5")]).await;
    let topic = unique("rmq-conflict");
    let queue = unique("q");
    // Someone else declared the queue without a length limit.
    let channel = raw_channel().await;
    let opts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.as_str().into(), opts, FieldTable::default())
        .await
        .expect("declare");
    let mut req = subscribe_req(&topic, "g");
    req.metadata.insert("queueName".into(), queue.clone());
    let err = ps
        .subscribe(req, Recorder::ok())
        .await
        .expect_err("PRECONDITION_FAILED from the broker");
    assert!(matches!(err, BrokerError::Rejected(_)), "got {err:?}");
    // A channel error must not take the component down: it is usable again
    // (both of its connections up) within a short deadline.
    let _recovered = assert_eventually!(
        "the component to recover from a channel error",
        Duration::from_secs(15),
        ps.ping().await,
        |r: &Result<(), BrokerError>| r.is_ok()
    );
    ps.close().await.expect("close");
}
