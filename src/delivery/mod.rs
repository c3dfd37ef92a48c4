//! The delivery layer: from a component subscription to the app and back to
//! an [`Outcome`](crate::broker::Outcome) the component settles. What it
//! promises (answers, retries, dead letters, ordering, in-flight bound,
//! shutdown) is written once, in `docs/delivery.md`.
//!
//! Where things live:
//! - `manager.rs`: one dispatcher per subscription, subscribed on its
//!   component (retried forever in the background), graceful shutdown
//! - `dispatcher.rs`: single-event delivery (in-flight bound, lanes, retries)
//! - `bulk.rs`: bulk-subscribe delivery (batches, one request per path)
//! - `lanes.rs`: ordering modes (`key`, `partition`, `none`)
//! - `retry.rs`: the default retry policy (capped exponential backoff)
//! - `prepare.rs`: decode, expiry and routing of one broker message
//! - `dead_letter.rs`: republishing to the dead-letter topic
//! - `options.rs`: subscription metadata the dispatcher understands
//! - `app_http/`: the HTTP app channel and its answer mapping;
//!   `discovery.rs`: `GET /dapr/subscribe` and the merge with declarative
//!   subscriptions
//! - `app_grpc/`: the gRPC app channel (`AppCallback`) and
//!   `ListTopicSubscriptions`; also builds the `TopicEventRequest` that
//!   streaming subscriptions send

pub mod app_grpc;
mod app_http;
mod bulk;
mod dead_letter;
mod discovery;
mod dispatcher;
mod forward;
pub mod lanes;
mod manager;
mod options;
mod prepare;
pub mod retry;

use async_trait::async_trait;
use bytes::Bytes;

use crate::broker::Metadata;

pub use app_grpc::{discover_grpc, GrpcAppChannel};
pub use app_http::HttpAppChannel;
pub use discovery::{discover_http, merge, parse_subscriptions};
pub use manager::{DeliveryManager, SubscriptionStats};
pub use options::{BadOption, SubscriptionOptions};

/// One event for the app, after decoding and routing.
#[derive(Debug, Clone)]
pub struct AppEvent {
    /// Pub/sub component name.
    pub pubsub_name: String,
    /// Topic the event was read from.
    pub topic: String,
    /// App route chosen by the routing rules.
    pub path: String,
    /// CloudEvent JSON as read from the broker (or the raw-payload CE).
    pub body: Bytes,
    /// The decoded CloudEvent.
    pub event: crate::envelope::Event,
    /// Broker metadata (becomes headers / gRPC metadata).
    pub metadata: Metadata,
}

/// The app's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppResult {
    /// Processed.
    Success,
    /// Try again later; the reason is logged and put in dead letters.
    Retry(String),
    /// Do not try again; dead-lettered when configured.
    Drop(String),
}

/// One entry of a bulk request.
#[derive(Debug, Clone)]
pub struct BulkAppEntry {
    /// Id the app answers with; unique within the request.
    pub entry_id: String,
    /// The event.
    pub event: AppEvent,
    /// The broker bytes when the subscription is `rawPayload`: sent base64
    /// encoded as `application/octet-stream` instead of the CloudEvent.
    pub raw_data: Option<Bytes>,
}

/// One bulk request: the entries of a batch that share a route path.
#[derive(Debug, Clone)]
pub struct BulkAppRequest {
    /// Request id (random UUID).
    pub id: String,
    /// Pub/sub component name.
    pub pubsub_name: String,
    /// Topic.
    pub topic: String,
    /// Route path shared by every entry.
    pub path: String,
    /// Request-level metadata.
    pub metadata: Metadata,
    /// The entries, in broker order.
    pub entries: Vec<BulkAppEntry>,
}

/// A way to reach the app (HTTP, gRPC, or a streaming subscription).
#[async_trait]
pub trait AppChannel: Send + Sync + 'static {
    /// Delivers one event and maps the app's answer.
    async fn deliver(&self, ev: &AppEvent) -> AppResult;
    /// One bulk request per route path; returns a result per entry id.
    async fn deliver_bulk(&self, req: &BulkAppRequest) -> Vec<(String, AppResult)>;
}
