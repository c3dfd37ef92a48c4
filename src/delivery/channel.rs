//! What every way to the app speaks: the event after decoding and routing,
//! bulk requests, the app's verdict, and the [`AppChannel`] trait the HTTP,
//! gRPC and streaming channels implement.

use async_trait::async_trait;
use bytes::Bytes;

use crate::broker::Metadata;

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
