//! The pub/sub component contract every broker implements, and the registry
//! that builds components from their `spec.type`.
//!
//! The contract is deliberately small (publish, subscribe with a handler,
//! ping, close, declared features). Everything about *how* an event reaches
//! the app — ordering, in-flight bounds, retries, dead letters — lives in
//! `delivery/`, so every broker gets the same semantics for free. A component
//! only has to:
//!
//! 1. hand each received message to [`Handler::submit`], which applies
//!    backpressure (it waits while the subscription's in-flight bound is full)
//!    and returns an [`Ack`];
//! 2. settle the message when the [`Ack`] resolves: [`Outcome::Success`] and
//!    [`Outcome::Drop`] acknowledge it (commit / ack / advance), and
//!    [`Outcome::Retry`] leaves it for redelivery later (nack, seek back, or
//!    re-queue after a delay). An [`Ack`] that resolves to `Err` means the
//!    dispatcher shut down before finishing: leave the message
//!    unacknowledged so it is redelivered after a restart.

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod factory;
pub mod in_memory;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod registry;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use crate::config::metadata::Metadata;

/// One event to publish. `data` is what goes on the wire: the CloudEvent JSON
/// built by `envelope`, or the caller's bytes untouched for `rawPayload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// Destination topic (may contain `/`).
    pub topic: String,
    /// Bytes to store on the broker.
    pub data: Bytes,
    /// Content type of `data` (`application/cloudevents+json` for envelopes).
    pub content_type: String,
    /// Request metadata (the `metadata.*` query parameters, without prefix).
    pub metadata: Metadata,
    /// Partition / ordering key, already resolved by the envelope step.
    pub key: Option<String>,
}

/// One event received from the broker, handed to the delivery layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Topic the event was read from.
    pub topic: String,
    /// The bytes exactly as stored on the broker.
    pub data: Bytes,
    /// Broker metadata (headers, `__key`, `__offset`, …); becomes HTTP headers
    /// on delivery to the app.
    pub metadata: Metadata,
    /// Ordering key, if the broker kept one (Kafka record key, …).
    pub key: Option<String>,
    /// Partition (or queue shard) the event came from, when the broker has one.
    pub partition: Option<i32>,
    /// How many times the broker has handed this event out before (0 = first).
    pub redeliveries: u32,
}

/// What became of one delivered event, as the component must settle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: acknowledge.
    Success,
    /// Deliberately not processed (DROP, 404, expired, dead-lettered): acknowledge.
    Drop,
    /// Not processed and should be tried again later: do not acknowledge.
    Retry,
}

impl Outcome {
    /// True when the broker should consider the event done.
    pub fn is_ack(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Drop)
    }
}

/// Resolves once the delivery layer has finished with an event. `Err` means
/// the delivery layer was shut down first: leave the event unacknowledged.
pub type Ack = oneshot::Receiver<Outcome>;

/// The delivery layer's side of a subscription, called by components.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Hands one event over. Waits while the subscription is at its in-flight
    /// bound, which is how backpressure reaches the broker consumer.
    async fn submit(&self, msg: ReceivedMessage) -> Ack;
}

/// What a subscription asks of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// Topic to consume.
    pub topic: String,
    /// Consumer group: subscribers sharing it compete for events, each group
    /// gets its own copy. Defaults to the app id.
    pub group: String,
    /// Subscription metadata (from the Subscription resource or app).
    pub metadata: Metadata,
}

/// A running subscription. Dropping it does not stop it; call [`stop`].
///
/// [`stop`]: Subscription::stop
#[derive(Debug)]
pub struct Subscription {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Subscription {
    /// Wraps a consumer task that watches `cancel` and returns once it has
    /// stopped fetching and settled what it could.
    pub fn new(cancel: CancellationToken, task: tokio::task::JoinHandle<()>) -> Self {
        Self { cancel, task }
    }

    /// Stops fetching and waits for the consumer task to finish.
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "Subscription task ended abnormally.");
        }
    }
}

/// Optional abilities a component declares (daprd's capability strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Native message TTL (`MESSAGE_TTL`): no `expiration` in the envelope.
    MessageTtl,
    /// Wildcard topic subscriptions (`SUBSCRIBE_WILDCARDS`).
    SubscribeWildcards,
    /// Native bulk publish (`BULK_PUBSUB`).
    BulkPublish,
}

impl Feature {
    /// daprd's capability string, reported by the metadata API.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::MessageTtl => "MESSAGE_TTL",
            Feature::SubscribeWildcards => "SUBSCRIBE_WILDCARDS",
            Feature::BulkPublish => "BULK_PUBSUB",
        }
    }
}

/// Errors a component reports. `retriable` separates "the broker is away,
/// try again" from "this request can never succeed".
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Transient: connection lost, timeout, broker unavailable.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Permanent for this request: too large, unknown topic, rejected.
    #[error("rejected by broker: {0}")]
    Rejected(String),
    /// The component has been closed.
    #[error("component is closed")]
    Closed,
    /// The broker holds as much as it may for now (a bounded buffer is
    /// full and stayed full for a bounded wait): nothing of the request
    /// was accepted; the caller should retry after `retry_after_secs`.
    #[error("broker is full: {reason}; retry after {retry_after_secs}s")]
    Full {
        /// What is full, with its bound.
        reason: String,
        /// Seconds a caller should wait before retrying.
        retry_after_secs: u64,
    },
}

impl BrokerError {
    /// True when the same request may succeed later.
    pub fn is_retriable(&self) -> bool {
        matches!(self, BrokerError::Unavailable(_))
    }
}

/// A request a component can never publish, found without I/O: a topic
/// name or a metadata value the broker refuses. Checked before anything is
/// stored, so an event the outbox buffers is one the broker will take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unpublishable {
    /// The topic name is not one this broker allows.
    #[error("topic {topic:?} is not valid here: {reason}")]
    Topic {
        /// The topic (bounded in the message by the caller).
        topic: String,
        /// Why, as a short sentence.
        reason: String,
    },
    /// A metadata key or value the broker refuses.
    #[error("metadata {key}={value:?}: {reason}")]
    Metadata {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// Why, as a short sentence.
        reason: String,
    },
}

/// A pub/sub broker component. Implementations live in one folder each.
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// The abilities this component has.
    fn features(&self) -> &[Feature];

    /// Checks, without I/O, that the broker could take `req`: names within
    /// its limits, metadata values it accepts. The runtime calls it before
    /// the event is stored anywhere (the outbox included); `publish` may
    /// assume it passed. The default accepts everything.
    fn check(&self, _req: &PublishRequest) -> Result<(), Unpublishable> {
        Ok(())
    }

    /// Publishes one event. Returns only once the broker has it (acks=all,
    /// publisher confirm, fsync…).
    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError>;

    /// Publishes several events; the result has one entry per request, in
    /// order. The default publishes them concurrently one by one.
    async fn publish_bulk(&self, reqs: Vec<PublishRequest>) -> Vec<Result<(), BrokerError>> {
        let futs = reqs.into_iter().map(|r| self.publish(r));
        futures_util::future::join_all(futs).await
    }

    /// Starts consuming `req.topic` for `req.group`, handing events to
    /// `handler` until the returned [`Subscription`] is stopped.
    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError>;

    /// Checks the broker is reachable (readiness).
    async fn ping(&self) -> Result<(), BrokerError>;

    /// Flushes and releases the broker connection.
    async fn close(&self) -> Result<(), BrokerError>;
}

pub use crate::config::metadata::common_key as common_metadata_key;
