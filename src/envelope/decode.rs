//! Delivery side: the broker's bytes read back as a CloudEvent map, daprd's
//! expiry check, and the CloudEvent daprd synthesizes for `rawPayload`
//! subscriptions.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::model::{DEFAULT_SOURCE, DEFAULT_TYPE, SPEC_VERSION};
use crate::broker::Metadata;

/// A decoded CloudEvent: the top-level JSON object (sorted keys).
pub type Event = serde_json::Map<String, Value>;

/// Why broker bytes are not a CloudEvent (daprd dead-letters or NACKs these).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not JSON.
    #[error("event is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is valid but not an object.
    #[error("event is JSON {0}, not an object")]
    NotObject(&'static str),
}

/// Parses broker bytes as a CloudEvent; a JSON object is required.
pub fn decode(data: &[u8]) -> Result<Event, DecodeError> {
    match serde_json::from_slice(data)? {
        Value::Object(event) => Ok(event),
        Value::Null => Err(DecodeError::NotObject("null")),
        Value::Bool(_) => Err(DecodeError::NotObject("a boolean")),
        Value::Number(_) => Err(DecodeError::NotObject("a number")),
        Value::String(_) => Err(DecodeError::NotObject("a string")),
        Value::Array(_) => Err(DecodeError::NotObject("an array")),
    }
}

/// daprd's `HasExpired`: `expiration` is an RFC 3339 time before `now`. A missing,
/// empty or unparseable `expiration` never expires.
pub fn is_expired(event: &Event, now: DateTime<Utc>) -> bool {
    event
        .get("expiration")
        .and_then(Value::as_str)
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| at < now)
}

/// Trace attributes daprd copies from broker metadata into a raw-payload event.
const TRACE_KEYS: [&str; 3] = ["traceparent", "traceid", "tracestate"];

/// The CloudEvent daprd synthesizes for a `rawPayload: "true"` subscription
/// (`FromRawPayload`): random `id`, `source` `Dapr`, the body in `data_base64`
/// as `application/octet-stream`, plus trace attributes found in broker metadata.
pub fn raw_payload_event(
    data: &[u8],
    topic: &str,
    pubsub_name: &str,
    metadata: &Metadata,
) -> Bytes {
    let text = |s: &str| Value::String(s.to_owned());
    let mut event = Event::new();
    event.insert("id".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    event.insert("specversion".into(), text(SPEC_VERSION));
    event.insert("datacontenttype".into(), text("application/octet-stream"));
    event.insert("source".into(), text(DEFAULT_SOURCE));
    event.insert("type".into(), text(DEFAULT_TYPE));
    event.insert("topic".into(), text(topic));
    event.insert("pubsubname".into(), text(pubsub_name));
    event.insert(
        "data_base64".into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
    );
    for key in TRACE_KEYS {
        if let Some(value) = metadata.get(key) {
            event.insert(key.into(), text(value));
        }
    }
    // Serialising a map of strings cannot fail; `Display` for `Value` is infallible.
    Bytes::from(Value::Object(event).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn decode_requires_a_json_object() {
        let event = decode(br#"{"id":"1","data":{"n":1}}"#).unwrap();
        assert_eq!(event["id"], "1");
        assert!(matches!(decode(b"not json"), Err(DecodeError::Json(_))));
        assert!(matches!(
            decode(b"[1]"),
            Err(DecodeError::NotObject("an array"))
        ));
        assert!(matches!(
            decode(b"\"x\""),
            Err(DecodeError::NotObject("a string"))
        ));
    }

    fn event_expiring(at: &str) -> Event {
        decode(format!(r#"{{"expiration":"{at}"}}"#).as_bytes()).unwrap()
    }

    #[test]
    fn expiry_compares_with_now() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert!(is_expired(&event_expiring("2026-01-02T03:04:04Z"), now));
        assert!(is_expired(
            &event_expiring("2026-01-02T04:04:04+01:00"),
            now
        ));
        assert!(!is_expired(&event_expiring("2026-01-02T03:04:05Z"), now));
        assert!(!is_expired(&event_expiring("2026-01-02T03:04:06Z"), now));
        assert!(!is_expired(&event_expiring("yesterday"), now));
        assert!(!is_expired(&event_expiring(""), now));
        assert!(!is_expired(&Event::new(), now));
    }

    #[test]
    fn raw_payload_event_wraps_bytes_as_base64() {
        let mut metadata = Metadata::new();
        metadata.insert("traceparent".into(), "00-aa-bb-01".into());
        metadata.insert("tracestate".into(), "k=v".into());
        metadata.insert("__key".into(), "ignored".into());
        let bytes = raw_payload_event(&[0, 159, 146, 150], "orders", "ps", &metadata);
        let event = decode(&bytes).unwrap();
        assert_eq!(event["data_base64"], "AJ+Slg==");
        assert_eq!(event["datacontenttype"], "application/octet-stream");
        assert_eq!(event["source"], "Dapr");
        assert_eq!(event["type"], "com.dapr.event.sent");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["topic"], "orders");
        assert_eq!(event["pubsubname"], "ps");
        assert_eq!(event["traceparent"], "00-aa-bb-01");
        assert_eq!(event["tracestate"], "k=v");
        assert!(!event.contains_key("traceid"));
        assert!(!event.contains_key("__key"));
        let id = event["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        let other = decode(&raw_payload_event(b"x", "t", "p", &Metadata::new())).unwrap();
        assert_ne!(other["id"], event["id"]);
    }
}
