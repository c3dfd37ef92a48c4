//! The CloudEvents Kafka protocol binding: structured mode (the CloudEvent
//! JSON is the record value, as daprd writes it) and binary mode (attributes
//! in `ce_*` headers, the data as the value). Receiving detects the mode by
//! the `ce_specversion` header and always yields structured JSON, so the
//! delivery layer sees one format.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::config::ContentMode;

/// Header prefix of binary-mode attributes.
const CE_PREFIX: &str = "ce_";
/// Header carrying `datacontenttype` in binary mode.
const CONTENT_TYPE: &str = "content-type";
/// Media type of a structured CloudEvent.
const CE_JSON: &str = "application/cloudevents+json";

/// A record as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRecord {
    /// Record value.
    pub value: Bytes,
    /// Headers added by the binding (before the request's metadata headers).
    pub headers: Vec<(String, String)>,
}

/// Encodes one event for `mode`. Payloads that are not CloudEvent JSON
/// (`rawPayload`) are written untouched in either mode.
pub fn encode(data: &Bytes, content_type: &str, mode: ContentMode) -> WireRecord {
    let untouched = WireRecord {
        value: data.clone(),
        headers: Vec::new(),
    };
    if mode == ContentMode::Structured || !content_type.starts_with(CE_JSON) {
        return untouched;
    }
    let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(data) else {
        return untouched;
    };
    if !event.contains_key("specversion") {
        return untouched;
    }
    let ct = match event.remove("datacontenttype") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let value = match (event.remove("data_base64"), event.remove("data")) {
        (Some(Value::String(b64)), _) => {
            match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
                Ok(raw) => Bytes::from(raw),
                // Not valid base64: keep the event whole rather than corrupt it.
                Err(_) => return untouched,
            }
        }
        (_, Some(Value::String(s))) if !is_json(ct.as_deref()) => Bytes::from(s),
        (_, Some(v)) => Bytes::from(v.to_string()),
        (_, None) => Bytes::new(),
    };
    let mut headers = Vec::with_capacity(event.len() + 1);
    for (name, attr) in event {
        let text = match attr {
            Value::String(s) => s,
            other => other.to_string(),
        };
        headers.push((format!("{CE_PREFIX}{name}"), text));
    }
    if let Some(ct) = ct {
        headers.push((CONTENT_TYPE.to_string(), ct));
    }
    WireRecord { value, headers }
}

/// Decodes a received record. Returns the structured bytes and the headers
/// that are not part of the event (binary-mode `ce_*` / `content-type`
/// headers are folded into the event).
pub fn decode(value: Bytes, headers: Vec<(String, String)>) -> (Bytes, Vec<(String, String)>) {
    let binary = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("ce_specversion"));
    if !binary {
        return (value, headers);
    }
    let mut event = Map::new();
    let mut rest = Vec::new();
    let mut ct = None;
    for (k, v) in headers {
        let lower = k.to_ascii_lowercase();
        if let Some(attr) = lower.strip_prefix(CE_PREFIX) {
            event.insert(attr.to_string(), Value::String(v));
        } else if lower == CONTENT_TYPE {
            ct = Some(v);
        } else {
            rest.push((k, v));
        }
    }
    if !value.is_empty() {
        let (name, data) = data_member(&value, ct.as_deref());
        event.insert(name.to_string(), data);
    }
    if let Some(ct) = ct {
        event.insert("datacontenttype".into(), Value::String(ct));
    }
    let json = Value::Object(event).to_string();
    (Bytes::from(json), rest)
}

/// Chooses how binary data goes back into a structured event: JSON as JSON,
/// text as a string, anything else as `data_base64`.
fn data_member(value: &[u8], ct: Option<&str>) -> (&'static str, Value) {
    if is_json(ct) {
        if let Ok(v) = serde_json::from_slice::<Value>(value) {
            return ("data", v);
        }
    }
    let texty = ct.is_some_and(|c| c.starts_with("text/") || c.contains("xml"));
    if texty || is_json(ct) {
        if let Ok(s) = std::str::from_utf8(value) {
            return ("data", Value::String(s.to_string()));
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    ("data_base64", Value::String(b64))
}

/// CloudEvents: an absent `datacontenttype` means JSON.
fn is_json(ct: Option<&str>) -> bool {
    match ct {
        None => true,
        Some(c) => {
            let c = c.split(';').next().unwrap_or(c).trim();
            c == "application/json" || c == "text/json" || c.ends_with("+json")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ce(extra: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"specversion":"1.0","id":"1","source":"app","type":"t","tenantid":"acme"{extra}}}"#
        ))
    }

    fn roundtrip(data: Bytes) -> Value {
        let wire = encode(&data, CE_JSON, ContentMode::Binary);
        assert!(wire.headers.iter().any(|(k, _)| k == "ce_specversion"));
        let (back, rest) = decode(wire.value, wire.headers);
        assert!(rest.is_empty(), "binding headers leaked: {rest:?}");
        serde_json::from_slice(&back).expect("structured json")
    }

    #[test]
    fn binary_json_data_round_trips() {
        let data = ce(r#","datacontenttype":"application/json","data":{"a":[1,2]}"#);
        let orig: Value = serde_json::from_slice(&data).expect("json");
        assert_eq!(roundtrip(data), orig);
    }

    #[test]
    fn binary_text_and_base64_round_trip() {
        let text = ce(r#","datacontenttype":"text/plain","data":"hello""#);
        assert_eq!(
            roundtrip(text.clone()),
            serde_json::from_slice::<Value>(&text).expect("json")
        );
        let bin = ce(r#","datacontenttype":"application/octet-stream","data_base64":"AAEC/w==""#);
        assert_eq!(
            roundtrip(bin.clone()),
            serde_json::from_slice::<Value>(&bin).expect("json")
        );
    }

    #[test]
    fn binary_value_is_the_data() {
        let data = ce(r#","datacontenttype":"text/plain","data":"hello""#);
        let wire = encode(&data, CE_JSON, ContentMode::Binary);
        assert_eq!(wire.value, Bytes::from("hello"));
        assert!(wire
            .headers
            .contains(&("ce_tenantid".into(), "acme".into())));
        assert!(wire
            .headers
            .contains(&("content-type".into(), "text/plain".into())));
    }

    #[test]
    fn raw_and_structured_are_untouched() {
        let raw = Bytes::from_static(b"\x00not json");
        assert_eq!(
            encode(&raw, "application/octet-stream", ContentMode::Binary).value,
            raw
        );
        let data = ce("");
        let wire = encode(&data, CE_JSON, ContentMode::Structured);
        assert_eq!(wire.value, data);
        assert!(wire.headers.is_empty());
        let (back, rest) = decode(data.clone(), vec![("x".into(), "y".into())]);
        assert_eq!(back, data);
        assert_eq!(rest, vec![("x".to_string(), "y".to_string())]);
    }
}
