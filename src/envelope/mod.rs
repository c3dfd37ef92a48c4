//! The CloudEvents 1.0 envelope, built and read exactly as daprd does.
//!
//! - `build.rs`    publish side: a new envelope, or completion of an app's own CloudEvent
//! - `metadata.rs` the well-known request metadata (`rawPayload`, TTL, partition key,
//!   `cloudevent.*` overrides and extensions)
//! - `bulk.rs`     daprd's conversion of one bulk-publish entry to raw bytes
//! - `decode.rs`   delivery side: decode, expiry, the CloudEvent for `rawPayload` subscriptions
//! - `trace.rs`    W3C `traceparent` parsing and child-span ids
//! - `model.rs`    attribute defaults, content types, the input and output of
//!   building an envelope, and its error
//!
//! The `cloudevents-sdk` crate is deliberately not used: daprd's envelope is not a
//! strict CloudEvent. It carries extra top-level attributes (`topic`, `pubsubname`,
//! `traceid`, `expiration`, …), keeps the app's JSON `data` verbatim (big numbers
//! included), completes an app's CloudEvent without validating it (a missing `id`
//! stays missing), and must serialise with sorted keys like Go's map marshalling.
//! The SDK's typed `Event` would reject or reshape all of that, so the envelope is
//! a sorted JSON object built with `serde_json` (`RawValue` for verbatim JSON).

mod build;
mod bulk;
mod decode;
mod metadata;
mod model;
#[cfg(test)]
mod tests;
mod trace;

pub use build::build;
pub use bulk::bulk_entry_bytes;
pub use decode::{decode, is_expired, raw_payload_event, DecodeError, Event};
pub use metadata::{parse_bool, PublishMetadata};
pub use model::{
    is_binary_content_type, is_cloudevent_content_type, is_json_content_type,
    is_string_content_type, Envelope, EnvelopeError, PublishInput, CLOUDEVENTS_JSON,
    DEFAULT_DATA_CONTENT_TYPE, DEFAULT_SOURCE, DEFAULT_TYPE, SPEC_VERSION,
};
pub use trace::TraceParent;
