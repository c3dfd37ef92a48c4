//! What can go wrong on the publish path, in the runtime's own terms, with
//! daprd's messages. The edges render it: `api/error.rs` gives each variant
//! daprd's wire error (status, `errorCode`, details), so nothing here knows a
//! transport.

/// Why the runtime did not publish a request. `Display` is daprd's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No pub/sub component is loaded at all.
    #[error("no pubsub is configured")]
    NotConfigured,
    /// The request names no pub/sub component.
    #[error("pubsub name is empty")]
    PubsubEmpty,
    /// The named pub/sub component does not exist.
    #[error("pubsub {0} is not found")]
    PubsubNotFound(String),
    /// The request names no topic.
    #[error("topic is empty in pubsub {pubsub}")]
    TopicEmpty {
        /// Pub/sub component name.
        pubsub: String,
    },
    /// The component's topic scopes do not let this app publish here.
    #[error("topic {topic} is not allowed for app id {app_id}")]
    Forbidden {
        /// Pub/sub component name.
        pubsub: String,
        /// Topic of the request.
        topic: String,
        /// This sidecar's app id.
        app_id: String,
    },
    /// A metadata value is invalid (e.g. `rawPayload=foo`).
    #[error("failed deserializing metadata: {key}={value}: {reason}")]
    BadMetadata {
        /// Pub/sub component name.
        pubsub: String,
        /// Topic of the request.
        topic: String,
        /// Offending metadata key.
        key: String,
        /// Its value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The component's broker does not allow this topic name (too long,
    /// characters it refuses); nothing was stored.
    #[error("topic {topic:.64} is not valid in pubsub {pubsub}: {reason}")]
    BadTopic {
        /// Pub/sub component name.
        pubsub: String,
        /// Topic of the request.
        topic: String,
        /// Why the broker refuses it.
        reason: String,
    },
    /// The CloudEvent envelope could not be built.
    #[error("cannot create cloudevent: {error}")]
    CloudEvent {
        /// Pub/sub component name.
        pubsub: String,
        /// Topic of the request.
        topic: String,
        /// What went wrong.
        error: String,
    },
    /// A bulk request is malformed (missing or duplicate entry id, event not
    /// matching its content type).
    #[error("{0}")]
    BadBulkEvents(String),
    /// The component failed to publish.
    #[error("error when publishing to topic {topic} in pubsub {pubsub}: {error}")]
    Broker {
        /// Pub/sub component name.
        pubsub: String,
        /// Topic of the request.
        topic: String,
        /// The component's error.
        error: String,
    },
    /// The broker is full (a bounded buffer stayed full): nothing was
    /// accepted; retry after `retry_after_secs`.
    #[error("error when publishing to topic {topic} in pubsub {pubsub}: {error}")]
    Busy {
        /// Pub/sub component name.
        pubsub: String,
        /// Topic of the request.
        topic: String,
        /// The broker's explanation.
        error: String,
        /// Seconds the caller should wait before retrying.
        retry_after_secs: u64,
    },
    /// The broker is unreachable and the component's publish outbox is at
    /// `outboxMaxBytes`: the event was not accepted.
    #[error("error when publishing to topic {topic} in pubsub {pubsub}: {error}")]
    OutboxFull {
        /// Pub/sub component name.
        pubsub: String,
        /// Topic of the request.
        topic: String,
        /// The outbox's explanation (used / limit).
        error: String,
        /// Seconds the caller should wait before retrying.
        retry_after_secs: u64,
    },
}
