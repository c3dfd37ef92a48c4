//! The fixture of the delivery tests: a sidecar made of the in-memory bus,
//! a `Runtime` and a `Subscriber` with the HTTP app channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use sidebus::delivery::{HttpAppChannel, SubscriptionStats};
use sidebus::runtime::{ComponentHandle, Runtime, Subscriber};

use super::app::{Answer, Recorded, Script};
use super::eventually::assert_eventually;

pub const WAIT: Duration = Duration::from_secs(10);
pub const APP_ID: &str = "delivery-test";

pub struct Sidecar {
    pub bus: Arc<InMemory>,
    pub runtime: Arc<Runtime>,
    pub manager: Subscriber,
}

pub fn settings(port: u16) -> Settings {
    Settings {
        app_id: APP_ID.into(),
        app_port: Some(port),
        ..Settings::default()
    }
}

pub fn sidecar_with(settings: Settings, bus: Arc<InMemory>) -> Sidecar {
    sidecar_with_metadata(settings, bus, &[])
}

pub fn sidecar_with_metadata(
    settings: Settings,
    bus: Arc<InMemory>,
    md: &[(&str, &str)],
) -> Sidecar {
    let component = ComponentSpec {
        name: "pubsub".into(),
        type_name: "pubsub.in-memory".into(),
        version: "v1".into(),
        metadata: md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: "<test>".into(),
    };
    let handle = ComponentHandle::new(component, bus.clone() as Arc<dyn PubSub>, APP_ID);
    let channel = Arc::new(HttpAppChannel::new(&settings));
    let runtime = Arc::new(Runtime::new(settings, vec![handle]));
    let manager = Subscriber::new(runtime.clone(), channel);
    Sidecar {
        bus,
        runtime,
        manager,
    }
}

pub fn sidecar(port: u16) -> Sidecar {
    sidecar_with(settings(port), Arc::new(InMemory::new()))
}

pub fn spec(
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
pub fn ce(id: &str, topic: &str, kind: &str, data: serde_json::Value) -> Bytes {
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
    pub async fn publish(&self, topic: &str, data: Bytes, key: Option<&str>) {
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

    pub fn stats(&self, topic: &str) -> SubscriptionStats {
        self.manager
            .stats()
            .into_iter()
            .find(|s| s.topic == topic)
            .expect("subscription started")
    }

    /// Waits until the counters of `topic` satisfy `cond`; returns them.
    pub async fn wait_stats(
        &self,
        topic: &str,
        cond: impl Fn(&SubscriptionStats) -> bool,
    ) -> SubscriptionStats {
        assert_eventually!(
            format!("the counters of {topic}"),
            WAIT,
            self.stats(topic),
            cond
        )
    }

    /// Subscribes a collector to `topic` directly on the bus (dead letters).
    pub async fn collect(&self, topic: &str) -> Arc<Collector> {
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
pub struct Collector {
    got: Mutex<Vec<ReceivedMessage>>,
}

impl Collector {
    pub fn all(&self) -> Vec<ReceivedMessage> {
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

pub fn script(f: impl Fn(&Recorded, &[Recorded]) -> Answer + Send + Sync + 'static) -> Script {
    Arc::new(f)
}

pub fn data_of(r: &Recorded) -> serde_json::Value {
    r.json()["data"].clone()
}
