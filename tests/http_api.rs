//! HTTP API tests against daprd's behaviour (`docs/http-api.md`): every route
//! and error case, driven through `router(...)` with
//! `tower::ServiceExt::oneshot`, on runtimes built over `pubsub.in-memory`.
//! What reached the broker is read back by subscribing on the component
//! itself with the conformance `Recorder`.

#[path = "http_api/admin.rs"]
mod admin;
#[path = "http_api/bulk.rs"]
mod bulk;
#[path = "http_api/publish.rs"]
mod publish;
#[path = "http_api/serve.rs"]
mod serve;

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sidebus::broker::conformance::{unique, Recorder};
use sidebus::broker::in_memory::InMemory;
use sidebus::broker::{
    BrokerError, Feature, Handler, Metadata, PubSub, PublishRequest, ReceivedMessage,
    SubscribeRequest, Subscription,
};
use sidebus::config::model::ComponentSpec;
use sidebus::config::Settings;
use sidebus::runtime::{ComponentHandle, Runtime};
use tower::ServiceExt;

/// App id of every test runtime.
pub const APP_ID: &str = "checkout";

/// A component spec named `name` with `metadata`.
pub fn spec(name: &str, metadata: &[(&str, &str)]) -> ComponentSpec {
    ComponentSpec {
        name: name.to_string(),
        type_name: "pubsub.in-memory".into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: "<test>".into(),
    }
}

/// Default settings with the test app id.
pub fn settings() -> Settings {
    Settings {
        app_id: APP_ID.into(),
        ..Settings::default()
    }
}

/// An in-memory component that refuses events whose metadata has
/// `fail=yes`, and declares whatever features a test asks for.
pub struct Flaky {
    inner: InMemory,
    features: Vec<Feature>,
}

impl Flaky {
    /// A flaky bus declaring `features`.
    pub fn new(features: Vec<Feature>) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemory::new(),
            features,
        })
    }
}

#[async_trait]
impl PubSub for Flaky {
    fn features(&self) -> &[Feature] {
        &self.features
    }
    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        if req.metadata.get("fail").map(String::as_str) == Some("yes") {
            return Err(BrokerError::Rejected(format!("refused {}", req.topic)));
        }
        self.inner.publish(req).await
    }
    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        self.inner.subscribe(req, handler).await
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        self.inner.ping().await
    }
    async fn close(&self) -> Result<(), BrokerError> {
        self.inner.close().await
    }
}

/// A RabbitMQ component pointed at a port with no broker (9, discard): its
/// connection never comes up, and its request checks need no I/O.
#[cfg(feature = "rabbitmq")]
pub fn unreachable_rabbitmq() -> Arc<dyn PubSub> {
    use sidebus::broker::rabbitmq::{RabbitConfig, RabbitMq};
    let md = [(
        "connectionString".to_string(),
        "amqp://guest:guest@127.0.0.1:9/".to_string(),
    )]
    .into_iter()
    .collect();
    let cfg = RabbitConfig::parse(&md).expect("valid").config;
    Arc::new(RabbitMq::start(cfg))
}

/// A runtime plus the component behind pubsub `ps`.
pub struct Harness {
    /// The runtime under test.
    pub rt: Arc<Runtime>,
    /// The component registered as `ps`.
    pub bus: Arc<dyn PubSub>,
}

impl Harness {
    /// One in-memory component `ps` (metadata `md`) with `settings`.
    pub fn with(settings: Settings, md: &[(&str, &str)]) -> Self {
        Self::with_bus(settings, md, Arc::new(InMemory::new()))
    }

    /// Component `ps` backed by `bus`.
    pub fn with_bus(settings: Settings, md: &[(&str, &str)], bus: Arc<dyn PubSub>) -> Self {
        let handle = ComponentHandle::new(spec("ps", md), bus.clone(), &settings.app_id);
        let rt = Arc::new(Runtime::new(settings, vec![handle]));
        rt.readiness.set_outbound(true);
        rt.readiness.set_app(true);
        Self { rt, bus }
    }

    /// The usual setup: component `ps`, default settings.
    pub fn plain() -> Self {
        Self::with(settings(), &[])
    }

    /// A fresh router over the runtime.
    pub fn app(&self) -> Router {
        sidebus::api::http::router(self.rt.clone())
    }

    /// Subscribes a recorder to `topic` on the component.
    pub async fn listen(&self, topic: &str) -> (Arc<Recorder>, Subscription) {
        let rec = Recorder::ok();
        let sub = self
            .bus
            .subscribe(
                SubscribeRequest {
                    topic: topic.to_string(),
                    group: unique("g"),
                    metadata: Metadata::new(),
                },
                rec.clone(),
            )
            .await
            .expect("subscribe on the test component");
        (rec, sub)
    }

    /// Sends `req` and returns status, headers and body.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        send(self.app(), req).await
    }
}

/// A response read in full.
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics with the body text when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a daprd error: status, errorCode, JSON content type, details.
    pub fn assert_error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.headers.get("content-type").unwrap(),
            "application/json"
        );
        let body = self.json();
        assert_eq!(body["errorCode"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let info = &body["details"][0];
        assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
        assert_eq!(info["domain"], "dapr.io");
        assert!(info["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("DAPR_")));
        body
    }
}

/// Sends `req` through `app`.
pub async fn send(app: Router, req: Request<Body>) -> Reply {
    let resp = app.oneshot(req).await.expect("router is infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("read response body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// A request with a body and optional content type.
pub fn request(
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).expect("valid request")
}

/// The single event the recorder saw, as JSON.
pub async fn only_event(rec: &Recorder) -> (ReceivedMessage, Value) {
    rec.wait_for("one event", |r| r.distinct() >= 1).await;
    let got = rec.deliveries();
    assert_eq!(got.len(), 1, "exactly one event expected");
    let msg = got[0].clone();
    let json = serde_json::from_slice(&msg.data).unwrap_or(Value::Null);
    (msg, json)
}
