//! What goes on the wire: headers and receive metadata, structured and
//! binary CloudEvents.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::support::{body, brokers, component, publish_all, subscribe};
use crate::broker::conformance::{event, unique, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_receive_metadata_round_trip() {
    let ps = component(&[]);
    let (topic, group, run) = (unique("k-headers"), unique("g"), unique("r"));
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let mut req = event(&topic, Some("order-7"), &body(&run, "order-7", 0));
    req.metadata.insert("tenant".into(), "acme".into());
    req.metadata
        .insert("traceparent".into(), "00-abc-def-01".into());
    publish_all(&ps, vec![req]).await;
    rec.wait_for("the event", |r| r.distinct() == 1).await;
    let m = &rec.deliveries()[0];
    let md = |k: &str| m.metadata.get(k).map(String::as_str);
    assert_eq!(md("tenant"), Some("acme"));
    assert_eq!(md("traceparent"), Some("00-abc-def-01"));
    assert_eq!(md("__key"), Some("order-7"));
    assert_eq!(md("__topic"), Some(topic.as_str()));
    assert_eq!(md("__partition"), Some("0"));
    assert_eq!(md("__offset"), Some("0"));
    let ts: i64 = md("__timestamp").expect("timestamp").parse().expect("ms");
    assert!(ts > 1_600_000_000_000, "timestamp in ms: {ts}");
    assert_eq!(m.key.as_deref(), Some("order-7"));
    assert_eq!(m.partition, Some(0));
    sub.stop().await;
    ps.close().await.expect("close");
}

/// A raw record: value and headers.
type RawRecord = (Vec<u8>, Vec<(String, String)>);

/// Reads the raw records of partition 0 of `topic` from the beginning.
fn raw_records(topic: &str, n: usize) -> Vec<RawRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("raw"))
        .create()
        .expect("raw consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("offset");
    consumer.assign(&tpl).expect("assign");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(std::time::Instant::now() < end, "raw records not readable");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let v = String::from_utf8_lossy(h.value.unwrap_or_default());
                            (h.key.to_string(), v.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_and_binary_events_are_both_received_structured() {
    let binary = component(&[("contentMode", "binary")]);
    let structured = component(&[]);
    let (topic, group, run) = (unique("k-modes"), unique("g"), unique("r"));
    let rec = Recorder::ok();
    let sub = subscribe(&structured, &topic, &group, rec.clone()).await;
    let b_body = body(&run, "bin", 0);
    let s_body = body(&run, "str", 0);
    publish_all(&binary, vec![event(&topic, Some("k"), &b_body)]).await;
    publish_all(&structured, vec![event(&topic, Some("k"), &s_body)]).await;
    rec.wait_for("both events", |r| r.deliveries().len() == 2)
        .await;
    let got: Vec<serde_json::Value> = rec
        .deliveries()
        .iter()
        .map(|m| serde_json::from_slice(&m.data).expect("structured json"))
        .collect();
    for want in [&b_body, &s_body] {
        let want: serde_json::Value = serde_json::from_str(want).expect("json");
        assert!(got.contains(&want), "{want} not received intact: {got:?}");
    }
    assert!(
        rec.deliveries()
            .iter()
            .all(|m| !m.metadata.keys().any(|k| k.starts_with("ce_"))),
        "binding headers leaked into metadata"
    );

    let raw = raw_records(&topic, 2);
    let (value, headers) = &raw[0];
    assert_eq!(
        value.as_slice(),
        br#"{"key":"bin","seq":0}"#,
        "binary value is the data"
    );
    assert!(headers.contains(&("ce_specversion".into(), "1.0".into())));
    assert!(headers.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(raw[1].0, s_body.as_bytes(), "structured value is the event");
    sub.stop().await;
    binary.close().await.expect("close");
    structured.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_topic_is_created_with_the_configured_partitions() {
    let ps = component(&[("partitions", "3")]);
    let (topic, run) = (unique("k-create"), unique("r"));
    // A bulk publish to a topic that does not exist yet.
    publish_all(&ps, super::support::keyed(&topic, &run, 10, 10)).await;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("metadata client");
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata");
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("topic exists");
    assert_eq!(t.partitions().len(), 3, "partitions of the created topic");
    ps.close().await.expect("close");
}
