//! The delivery layer end to end: the in-memory broker, a `DeliveryManager`
//! with the HTTP app channel, and a real axum app on 127.0.0.1.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::oneshot;

use sidebus::broker::in_memory::InMemory;
use sidebus::broker::{
    Ack, Handler, Outcome, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest,
};
use sidebus::config::model::{
    BulkSubscribe, ComponentSpec, RouteRule, SubscriptionKind, SubscriptionSpec,
};
use sidebus::config::Settings;
use sidebus::delivery::{DeliveryManager, HttpAppChannel, SubscriptionStats};
use sidebus::runtime::{ComponentHandle, Runtime};
use support::{free_port, wait_until, Answer, Recorded, Script, TestApp};

const WAIT: Duration = Duration::from_secs(10);
const APP_ID: &str = "delivery-test";

struct Sidecar {
    bus: Arc<InMemory>,
    runtime: Arc<Runtime>,
    manager: DeliveryManager,
}

fn settings(port: u16) -> Settings {
    let mut s = Settings::default();
    s.app_id = APP_ID.into();
    s.app_port = Some(port);
    s
}

fn sidecar_with(settings: Settings, bus: Arc<InMemory>) -> Sidecar {
    let component = ComponentSpec {
        name: "pubsub".into(),
        type_name: "pubsub.in-memory".into(),
        version: "v1".into(),
        metadata: Default::default(),
        scopes: Vec::new(),
        source: "<test>".into(),
    };
    let handle = ComponentHandle::new(component, bus.clone() as Arc<dyn PubSub>, APP_ID);
    let channel = Arc::new(HttpAppChannel::new(&settings));
    let runtime = Arc::new(Runtime::new(settings, vec![handle]));
    let manager = DeliveryManager::new(runtime.clone(), channel);
    Sidecar {
        bus,
        runtime,
        manager,
    }
}

fn sidecar(port: u16) -> Sidecar {
    sidecar_with(settings(port), Arc::new(InMemory::new()))
}

fn spec(
    topic: &str,
    rules: &[(&str, &str)],
    dlq: Option<&str>,
    md: &[(&str, &str)],
) -> SubscriptionSpec {
    SubscriptionSpec {
        name: format!("sub-{topic}"),
        pubsub_name: "pubsub".into(),
        topic: topic.into(),
        rules: rules
            .iter()
            .map(|(m, p)| RouteRule {
                match_expr: m.to_string(),
                path: p.to_string(),
            })
            .collect(),
        dead_letter_topic: dlq.map(str::to_string),
        metadata: md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        bulk: BulkSubscribe::default(),
        scopes: Vec::new(),
        kind: SubscriptionKind::Declarative,
    }
}

/// A CloudEvent as the envelope step would store it.
fn ce(id: &str, topic: &str, kind: &str, data: serde_json::Value) -> Bytes {
    Bytes::from(
        json!({
            "id": id, "specversion": "1.0", "source": "publisher", "type": kind,
            "datacontenttype": "application/json", "topic": topic, "pubsubname": "pubsub",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "vendor=1", "data": data,
        })
        .to_string(),
    )
}

impl Sidecar {
    async fn publish(&self, topic: &str, data: Bytes, key: Option<&str>) {
        let metadata = [("x-origin".to_string(), "test".to_string())].into();
        let req = PublishRequest {
            topic: topic.into(),
            data,
            content_type: "application/cloudevents+json".into(),
            metadata,
            key: key.map(str::to_string),
        };
        self.bus.publish(req).await.unwrap();
    }

    fn stats(&self, topic: &str) -> SubscriptionStats {
        self.manager
            .stats()
            .into_iter()
            .find(|s| s.topic == topic)
            .expect("subscription started")
    }

    async fn wait_stats(&self, topic: &str, cond: impl Fn(&SubscriptionStats) -> bool) {
        wait_until(WAIT, || cond(&self.stats(topic))).await;
    }

    /// Subscribes a collector to `topic` directly on the bus (dead letters).
    async fn collect(&self, topic: &str) -> Arc<Collector> {
        let c = Arc::new(Collector::default());
        let req = SubscribeRequest {
            topic: topic.into(),
            group: "dlq-reader".into(),
            metadata: Default::default(),
        };
        let sub = self.bus.subscribe(req, c.clone()).await.unwrap();
        // Leaked on purpose: the collector reads until the test ends.
        std::mem::forget(sub);
        c
    }
}

#[derive(Default)]
struct Collector {
    got: Mutex<Vec<ReceivedMessage>>,
}

impl Collector {
    fn all(&self) -> Vec<ReceivedMessage> {
        self.got.lock().unwrap().clone()
    }
}

#[async_trait]
impl Handler for Collector {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        self.got.lock().unwrap().push(msg);
        let (tx, rx) = oneshot::channel();
        tx.send(Outcome::Success).unwrap();
        rx
    }
}

fn script(f: impl Fn(&Recorded, &[Recorded]) -> Answer + Send + Sync + 'static) -> Script {
    Arc::new(f)
}

fn data_of(r: &Recorded) -> serde_json::Value {
    r.json()["data"].clone()
}

/// Answers `first` to the first request and SUCCESS afterwards.
async fn answer_case(
    status: u16,
    body: &'static str,
) -> (Vec<Recorded>, SubscriptionStats, TestApp) {
    let app = TestApp::start(script(move |_, prev| {
        if prev.is_empty() {
            Answer::new(status, body)
        } else {
            Answer::success()
        }
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/orders")],
            None,
            &[("retryInitialInterval", "10ms")],
        )])
        .await;
    sc.publish("t", ce("e1", "t", "order", json!({"n": 1})), None)
        .await;
    sc.wait_stats("t", |s| s.delivered + s.dropped == 1).await;
    // Nothing may follow a settled event: give a redelivery a chance to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = sc.stats("t");
    sc.manager.shutdown(Duration::from_secs(1)).await;
    (app.requests(), stats, app)
}

#[tokio::test]
async fn success_answers_ack_once_with_headers_and_verbatim_body() {
    for (status, body) in [
        (200, r#"{"status":"SUCCESS"}"#),
        (200, ""),
        (200, "not json"),
        (204, ""),
        (200, r#"{"status":""}"#),
    ] {
        let (reqs, stats, _app) = answer_case(status, body).await;
        assert_eq!(reqs.len(), 1, "{status} {body:?}");
        assert_eq!(
            (stats.delivered, stats.retries),
            (1, 0),
            "{status} {body:?}"
        );
        let r = &reqs[0];
        assert_eq!(r.path, "/orders");
        assert_eq!(
            r.body,
            ce("e1", "t", "order", json!({"n": 1})),
            "body is the broker bytes"
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/cloudevents+json")
        );
        assert_eq!(r.header("pubsubname"), Some("pubsub"));
        assert_eq!(r.header("x-origin"), Some("test"));
        assert_eq!(
            r.header("traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(r.header("tracestate"), Some("vendor=1"));
        assert_eq!(r.header("dapr-api-token"), None);
    }
}

#[tokio::test]
async fn retry_answers_are_retried_in_process() {
    for (status, body) in [
        (200, r#"{"status":"RETRY"}"#),
        (200, r#"{"status":"success"}"#),
        (200, r#"{"status":"MAYBE"}"#),
        (500, ""),
        (503, r#"{"status":"SUCCESS"}"#),
    ] {
        let (reqs, stats, _app) = answer_case(status, body).await;
        assert_eq!(reqs.len(), 2, "{status} {body:?}");
        assert_eq!(
            (stats.delivered, stats.retries, stats.dropped),
            (1, 1, 0),
            "{status} {body:?}"
        );
    }
}

#[tokio::test]
async fn drop_answers_ack_without_redelivery() {
    for (status, body) in [
        (200, r#"{"status":"DROP"}"#),
        (404, ""),
        (404, r#"{"status":"SUCCESS"}"#),
    ] {
        let (reqs, stats, _app) = answer_case(status, body).await;
        assert_eq!(reqs.len(), 1, "{status} {body:?}");
        assert_eq!(
            (stats.delivered, stats.dropped, stats.retries),
            (0, 1, 0),
            "{status} {body:?}"
        );
    }
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_app_appears() {
    let port = free_port().await;
    let mut s = settings(port);
    s.app_api_token = Some("app-secret".into());
    let sc = sidecar_with(s, Arc::new(InMemory::new()));
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/late")],
            None,
            &[
                ("retryInitialInterval", "10ms"),
                ("retryMaxInterval", "50ms"),
            ],
        )])
        .await;
    sc.publish("t", ce("e1", "t", "order", json!(1)), None)
        .await;
    sc.wait_stats("t", |s| s.retries >= 3).await;
    assert_eq!(sc.stats("t").delivered, 0);
    let app = TestApp::start_on(port, script(|_, _| Answer::success())).await;
    sc.wait_stats("t", |s| s.delivered == 1).await;
    let reqs = app.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("dapr-api-token"), Some("app-secret"));
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn dead_letters_carry_original_bytes_and_reason_headers() {
    let app = TestApp::start(script(|r, _| match data_of(r)["mode"].as_str() {
        Some("drop") => Answer::new(200, r#"{"status":"DROP"}"#),
        _ => Answer::new(500, "boom"),
    }))
    .await;
    let sc = sidecar(app.port);
    let dlq = sc.collect("poison").await;
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/x")],
            Some("poison"),
            &[("maxRetries", "2"), ("retryInitialInterval", "5ms")],
        )])
        .await;
    let dropped = ce("d1", "t", "order", json!({"mode": "drop"}));
    let failing = ce("f1", "t", "order", json!({"mode": "fail"}));
    sc.publish("t", dropped.clone(), Some("k1")).await;
    sc.publish("t", failing.clone(), Some("k2")).await;
    wait_until(WAIT, || dlq.all().len() == 2).await;
    let letters = dlq.all();
    let find = |data: &Bytes| {
        letters
            .iter()
            .find(|m| &m.data == data)
            .expect("dead letter with original bytes")
    };
    let d = find(&dropped);
    assert_eq!(d.metadata["deadLetterReason"], "dropped");
    assert_eq!(d.metadata["deadLetterAttempts"], "1");
    assert_eq!(d.metadata["deadLetterSourceTopic"], "t");
    assert!(d.metadata["deadLetterError"].contains("DROP"));
    assert_eq!(d.metadata["x-origin"], "test", "original metadata kept");
    assert_eq!(d.key.as_deref(), Some("k1"));
    let f = find(&failing);
    assert_eq!(f.metadata["deadLetterReason"], "retries-exhausted");
    assert_eq!(f.metadata["deadLetterAttempts"], "3");
    assert!(f.metadata["deadLetterError"].contains("500"));
    sc.wait_stats("t", |s| s.dead_lettered == 2).await;
    assert_eq!(
        app.count(),
        1 + 3,
        "one DROP attempt, three failing attempts"
    );
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn routing_rules_default_and_no_match() {
    let app = TestApp::start(script(|_, _| Answer::success())).await;
    let sc = sidecar(app.port);
    let dlq = sc.collect("unrouted").await;
    sc.manager
        .start(vec![
            spec(
                "a",
                &[(r#"event.type == "widget""#, "/widgets"), ("", "/other")],
                None,
                &[],
            ),
            spec(
                "b",
                &[(r#"event.type == "gadget""#, "gadgets")],
                Some("unrouted"),
                &[],
            ),
        ])
        .await;
    sc.publish("a", ce("1", "a", "widget", json!(1)), None)
        .await;
    sc.publish("a", ce("2", "a", "thing", json!(2)), None).await;
    sc.publish("b", ce("3", "b", "gadget", json!(3)), None)
        .await;
    let unrouted = ce("4", "b", "thing", json!(4));
    sc.publish("b", unrouted.clone(), None).await;
    wait_until(WAIT, || dlq.all().len() == 1).await;
    let reqs = app.wait_for(3, WAIT).await;
    let mut paths: Vec<(String, String)> = reqs
        .iter()
        .map(|r| (r.json()["id"].as_str().unwrap().to_string(), r.path.clone()))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            ("1".into(), "/widgets".into()),
            ("2".into(), "/other".into()),
            ("3".into(), "/gadgets".into())
        ]
    );
    let letter = &dlq.all()[0];
    assert_eq!(letter.data, unrouted);
    assert_eq!(letter.metadata["deadLetterReason"], "no-route");
    assert_eq!(letter.metadata["deadLetterAttempts"], "0");
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn undecodable_and_expired_events_are_dropped_and_counted() {
    let app = TestApp::start(script(|_, _| Answer::success())).await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec("t", &[("", "/x")], None, &[])])
        .await;
    sc.publish("t", Bytes::from_static(b"not a cloudevent"), None)
        .await;
    let mut expired: serde_json::Value =
        serde_json::from_slice(&ce("old", "t", "x", json!(1))).unwrap();
    expired["expiration"] = json!("2001-01-01T00:00:00Z");
    sc.publish("t", Bytes::from(expired.to_string()), None)
        .await;
    sc.publish("t", ce("ok", "t", "x", json!(1)), None).await;
    sc.wait_stats("t", |s| s.dropped == 2 && s.delivered == 1)
        .await;
    assert_eq!(app.count(), 1);
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn raw_payload_subscription_gets_a_synthesized_cloudevent() {
    let app = TestApp::start(script(|_, _| Answer::success())).await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec(
            "raw",
            &[("", "/raw")],
            None,
            &[("rawPayload", "true")],
        )])
        .await;
    sc.publish("raw", Bytes::from_static(b"\x00hello"), None)
        .await;
    let reqs = app.wait_for(1, WAIT).await;
    let ev = reqs[0].json();
    assert_eq!(
        reqs[0].header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(ev["data_base64"], "AGhlbGxv");
    assert_eq!(ev["datacontenttype"], "application/octet-stream");
    assert_eq!(ev["topic"], "raw");
    assert_eq!(ev["pubsubname"], "pubsub");
    assert_eq!(ev["source"], "Dapr");
    sc.manager.shutdown(Duration::from_secs(1)).await;
}
