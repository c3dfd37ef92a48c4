//! daprd's `ConvertEventToBytes` (`pkg/api/http/util.go`): one bulk-publish entry's
//! `event` JSON value, read according to its `contentType`, becomes the raw body
//! that is then enveloped like a single publish.

use base64::Engine as _;
use bytes::Bytes;

use super::model::{
    is_binary_content_type, is_cloudevent_content_type, is_json_content_type,
    is_string_content_type, EnvelopeError,
};

/// Converts one bulk entry: `application/octet-stream` → the event must be a base64
/// string (decoded); `text/*` and `*/xml` → the event must be a JSON string (its
/// text); `application/json` and `application/cloudevents+json` → the event
/// re-serialised as JSON; any other content type is rejected.
pub fn bulk_entry_bytes(
    event: &serde_json::Value,
    content_type: &str,
) -> Result<Bytes, EnvelopeError> {
    if is_binary_content_type(content_type) {
        let encoded = event.as_str().ok_or_else(|| {
            bad(format!(
                "expected a base64 encoded string for binary data, got {}",
                json_kind(event)
            ))
        })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| bad(format!("error decoding base64 string: {e}")))?;
        return Ok(Bytes::from(decoded));
    }
    if is_string_content_type(content_type) {
        let text = event.as_str().ok_or_else(|| {
            bad(format!(
                "expected a string for content type {content_type}, got {}",
                json_kind(event)
            ))
        })?;
        return Ok(Bytes::copy_from_slice(text.as_bytes()));
    }
    if is_json_content_type(content_type) || is_cloudevent_content_type(content_type) {
        let json = serde_json::to_vec(event).map_err(|e| bad(e.to_string()))?;
        return Ok(Bytes::from(json));
    }
    Err(bad(format!(
        "content type {content_type:?} does not match any supported event type"
    )))
}

fn bad(reason: String) -> EnvelopeError {
    EnvelopeError::BadBulkEvent(reason)
}

/// Name of the JSON type, for error messages.
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binary_is_base64_decoded() {
        let bytes = bulk_entry_bytes(&json!("AAEC/w=="), "application/octet-stream").unwrap();
        assert_eq!(&bytes[..], &[0, 1, 2, 255]);
    }

    #[test]
    fn binary_rejects_non_strings_and_bad_base64() {
        for (event, needle) in [(json!(12), "a number"), (json!("not base64!"), "base64")] {
            let err = bulk_entry_bytes(&event, "application/octet-stream").unwrap_err();
            assert!(
                matches!(&err, EnvelopeError::BadBulkEvent(m) if m.contains(needle)),
                "{err}"
            );
        }
    }

    #[test]
    fn text_and_xml_take_the_string() {
        for ct in ["text/plain", "text/csv; charset=utf-8", "application/xml"] {
            let bytes = bulk_entry_bytes(&json!("a,b <x/>"), ct).unwrap();
            assert_eq!(&bytes[..], b"a,b <x/>", "{ct}");
        }
        let err = bulk_entry_bytes(&json!({"a": 1}), "text/plain").unwrap_err();
        assert!(matches!(err, EnvelopeError::BadBulkEvent(m) if m.contains("an object")));
    }

    #[test]
    fn json_and_cloudevents_are_reserialised() {
        let event = json!({"b": [1, 2.5, "x"], "a": null});
        for ct in [
            "application/json",
            "application/cloudevents+json; charset=utf-8",
        ] {
            let bytes = bulk_entry_bytes(&event, ct).unwrap();
            assert_eq!(&bytes[..], br#"{"a":null,"b":[1,2.5,"x"]}"#, "{ct}");
        }
        let bytes = bulk_entry_bytes(&json!("just a string"), "application/json").unwrap();
        assert_eq!(&bytes[..], br#""just a string""#);
    }

    #[test]
    fn other_content_types_are_rejected() {
        for ct in ["application/vnd.x+json", "image/png", ""] {
            let err = bulk_entry_bytes(&json!("x"), ct).unwrap_err();
            assert!(matches!(err, EnvelopeError::BadBulkEvent(_)), "{ct}");
        }
    }
}
