//! The envelope's vocabulary: the attribute defaults daprd uses, the content
//! types it tells apart, what the publish edge hands in ([`PublishInput`]),
//! what comes out ([`Envelope`]) and what can go wrong ([`EnvelopeError`]).

/// Content type of a structured-mode CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// `type` of events daprd creates.
pub const DEFAULT_TYPE: &str = "com.dapr.event.sent";
/// `source` daprd uses when it has no app id (and for completed app CloudEvents).
pub const DEFAULT_SOURCE: &str = "Dapr";
/// The only CloudEvents spec version produced.
pub const SPEC_VERSION: &str = "1.0";
/// `datacontenttype` when the publisher sent none.
pub const DEFAULT_DATA_CONTENT_TYPE: &str = "text/plain";

/// What the publish edge knows about one event to publish.
#[derive(Debug, Clone, Copy)]
pub struct PublishInput<'a> {
    /// Our app id; becomes `source` of a new envelope.
    pub app_id: &'a str,
    /// Name of the pub/sub component; becomes `pubsubname`.
    pub pubsub_name: &'a str,
    /// Topic published to; becomes `topic`.
    pub topic: &'a str,
    /// Request body.
    pub data: &'a [u8],
    /// Request Content-Type (None → `text/plain`).
    pub content_type: Option<&'a str>,
    /// Request metadata (`metadata.*` query params with the prefix stripped).
    pub metadata: &'a crate::broker::Metadata,
    /// Incoming W3C `traceparent` header, if any.
    pub traceparent: Option<&'a str>,
    /// Incoming W3C `tracestate` header, if any.
    pub tracestate: Option<&'a str>,
    /// The component has `Feature::MessageTtl`, so no `expiration` is written.
    pub native_ttl: bool,
    /// Component setting `partitionKeyAttribute`: envelope attribute to key by.
    pub partition_key_attribute: Option<&'a str>,
}

/// The bytes to hand to the component, and what the component needs besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Serialized CloudEvent JSON, or the untouched body for `rawPayload=true`.
    pub data: bytes::Bytes,
    /// `application/cloudevents+json`, or the request content type for raw payloads.
    pub content_type: String,
    /// Partition key (metadata `partitionKey`/`__key`, else the configured attribute).
    pub key: Option<String>,
    /// CloudEvent `id` when the envelope has a string one (None for raw payloads).
    pub id: Option<String>,
}

/// Why an envelope could not be built; the API edge maps each to daprd's code.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// A well-known metadata value is invalid (HTTP 400 `ERR_PUBSUB_REQUEST_METADATA`).
    #[error("invalid metadata {key}={value:?}: {reason}")]
    BadMetadata {
        /// Metadata key as sent.
        key: String,
        /// Offending value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The CloudEvent could not be created (HTTP 500 `ERR_PUBSUB_CLOUD_EVENTS_SER`).
    #[error("cannot create cloud event: {0}")]
    CloudEvent(String),
    /// A bulk entry's event does not fit its content type (HTTP 400 `ERR_PUBSUB_EVENTS_SER`).
    #[error("invalid bulk event: {0}")]
    BadBulkEvent(String),
}

/// Lower-cased media type without parameters (`Application/JSON; charset=x` → `application/json`).
fn media_type(content_type: &str) -> String {
    let base = content_type.split(';').next().unwrap_or_default();
    base.trim().to_ascii_lowercase()
}

/// Exactly `application/json` (parameters allowed); `+json` suffixes are not JSON for daprd.
pub fn is_json_content_type(content_type: &str) -> bool {
    media_type(content_type) == "application/json"
}

/// `application/cloudevents+json` (parameters allowed): the app sent its own CloudEvent.
pub fn is_cloudevent_content_type(content_type: &str) -> bool {
    media_type(content_type) == CLOUDEVENTS_JSON
}

/// `application/octet-stream` (parameters allowed).
pub fn is_binary_content_type(content_type: &str) -> bool {
    media_type(content_type) == "application/octet-stream"
}

/// Content types whose payload daprd keeps as text: `text/*` and `*/xml`.
pub fn is_string_content_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    media.starts_with("text/") || media.ends_with("/xml")
}

/// Content types whose body goes into `data_base64` of a new envelope.
pub(crate) fn is_base64_content_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    matches!(
        media.as_str(),
        "application/octet-stream" | "application/cloudevents+protobuf" | "application/x-protobuf"
    )
}
