//! Publish side: the envelope daprd's `NewCloudEvent` + `ApplyMetadata` would
//! produce, serialised with sorted keys like Go's map marshalling.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use super::metadata::PublishMetadata;
use super::model::{
    is_base64_content_type, is_cloudevent_content_type, is_json_content_type, Envelope,
    EnvelopeError, PublishInput, CLOUDEVENTS_JSON, DEFAULT_DATA_CONTENT_TYPE, DEFAULT_SOURCE,
    DEFAULT_TYPE, SPEC_VERSION,
};
use super::trace::TraceParent;

/// One attribute value: text we produce, or JSON kept byte for byte.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Attr<'a> {
    Text(Cow<'a, str>),
    Json(&'a RawValue),
    OwnedJson(Box<RawValue>),
}

impl Attr<'_> {
    /// The attribute as a string, when it is one.
    fn to_text(&self) -> Option<String> {
        match self {
            Attr::Text(text) => Some(text.clone().into_owned()),
            Attr::Json(raw) => serde_json::from_str(raw.get()).ok(),
            Attr::OwnedJson(raw) => serde_json::from_str(raw.get()).ok(),
        }
    }
}

/// A CloudEvent under construction; `BTreeMap` gives Go's sorted key order.
type CloudEvent<'a> = BTreeMap<Cow<'a, str>, Attr<'a>>;

fn text(value: impl Into<String>) -> Attr<'static> {
    Attr::Text(Cow::Owned(value.into()))
}

/// Builds what the component publishes for one event:
/// - `rawPayload=true`: the body untouched, with the request content type;
/// - `application/cloudevents+json`: the app's CloudEvent completed as daprd's
///   `FromCloudEvent` does. Like daprd, `cloudevent.*` overrides and extensions
///   do not apply to it: the app's own attributes are authoritative;
/// - anything else: a new CloudEvent (`new_event`).
///
/// Then `expiration` from the TTL unless the component has native TTL, and the
/// partition key. Metadata is validated in full first, whatever the path.
pub fn build(input: &PublishInput<'_>) -> Result<Envelope, EnvelopeError> {
    let meta = PublishMetadata::parse(input.metadata)?;
    let content_type = input
        .content_type
        .filter(|ct| !ct.is_empty())
        .unwrap_or(DEFAULT_DATA_CONTENT_TYPE);
    if meta.raw_payload {
        return Ok(Envelope {
            data: Bytes::copy_from_slice(input.data),
            content_type: content_type.to_owned(),
            key: meta.partition_key,
            id: None,
        });
    }
    let now = Utc::now();
    let span = TraceParent::child_or_fresh(input.traceparent).to_string();
    // The caller's tracestate belongs to its traceparent; without a valid parent it is dropped.
    let tracestate = input
        .tracestate
        .filter(|_| input.traceparent.and_then(TraceParent::parse).is_some())
        .unwrap_or_default();
    let mut event = if is_cloudevent_content_type(content_type) {
        complete_app_event(input, &span, tracestate, now)?
    } else {
        new_event(input, &meta, content_type, &span, tracestate, now)
    };
    if let Some(ttl) = meta.ttl.filter(|_| !input.native_ttl) {
        event.insert("expiration".into(), text(expiration(now, ttl)));
    }
    let key = meta.partition_key.or_else(|| {
        let attribute = input.partition_key_attribute?;
        // Attribute names are lower case; tolerate `tenantId` in component YAML.
        event
            .get(attribute)
            .or_else(|| event.get(attribute.to_ascii_lowercase().as_str()))
            .and_then(Attr::to_text)
            .filter(|k| !k.is_empty())
    });
    let id = event.get("id").and_then(Attr::to_text);
    let data = serde_json::to_vec(&event).map_err(|e| EnvelopeError::CloudEvent(e.to_string()))?;
    Ok(Envelope {
        data: Bytes::from(data),
        content_type: CLOUDEVENTS_JSON.to_owned(),
        key,
        id,
    })
}

/// daprd's `NewCloudEventsEnvelope` with the `cloudevent.*` overrides, plus our
/// extension attributes.
fn new_event<'a>(
    input: &PublishInput<'a>,
    meta: &PublishMetadata,
    content_type: &'a str,
    span: &str,
    tracestate: &str,
    now: DateTime<Utc>,
) -> CloudEvent<'a> {
    let o = &meta.overrides;
    let mut event = CloudEvent::new();
    // Extensions first, so the attributes below always win over them.
    for (name, value) in &meta.extensions {
        event.insert(Cow::Owned(name.clone()), text(value.as_str()));
    }
    let id =
        o.id.clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let source = match o.source.as_deref() {
        Some(source) => source,
        None if input.app_id.is_empty() => DEFAULT_SOURCE,
        None => input.app_id,
    };
    let trace = o
        .traceparent
        .as_deref()
        .or(o.traceid.as_deref())
        .unwrap_or(span);
    let tracestate = o.tracestate.as_deref().unwrap_or(tracestate);
    event.insert("id".into(), text(id));
    event.insert("specversion".into(), text(SPEC_VERSION));
    event.insert(
        "datacontenttype".into(),
        Attr::Text(Cow::Borrowed(content_type)),
    );
    event.insert("source".into(), text(source));
    event.insert(
        "type".into(),
        text(o.event_type.as_deref().unwrap_or(DEFAULT_TYPE)),
    );
    event.insert("topic".into(), Attr::Text(Cow::Borrowed(input.topic)));
    event.insert(
        "pubsubname".into(),
        Attr::Text(Cow::Borrowed(input.pubsub_name)),
    );
    event.insert("traceid".into(), text(trace));
    event.insert("traceparent".into(), text(trace));
    event.insert("tracestate".into(), text(tracestate));
    event.insert("time".into(), text(rfc3339(now)));
    if let Some(subject) = &o.subject {
        event.insert("subject".into(), text(subject.as_str()));
    }
    let (field, data) = data_attr(input.data, content_type);
    event.insert(field.into(), data);
    event
}

/// Where the body goes: JSON verbatim in `data` for `application/json`, base64 in
/// `data_base64` for binary types (and bodies that are not UTF-8), else text in `data`.
fn data_attr<'a>(data: &'a [u8], content_type: &str) -> (&'static str, Attr<'a>) {
    let base64 = || {
        Attr::Text(Cow::Owned(
            base64::engine::general_purpose::STANDARD.encode(data),
        ))
    };
    if is_json_content_type(content_type) {
        // RawValue keeps the body exactly, so numbers beyond f64 precision survive.
        // A number beyond f64 *range* (1e400) fails Go's Unmarshal and our `decode`,
        // so such a body is kept as text, as daprd does.
        if serde_json::from_slice::<JsonCheck>(data).is_ok() {
            if let Ok(raw) = serde_json::from_slice::<&RawValue>(data) {
                return ("data", Attr::Json(raw));
            }
        }
    } else if is_base64_content_type(content_type) {
        return ("data_base64", base64());
    }
    match std::str::from_utf8(data) {
        Ok(text) => ("data", Attr::Text(Cow::Borrowed(text))),
        Err(_) => ("data_base64", base64()),
    }
}

/// daprd's `FromCloudEvent`: the app's CloudEvent completed, never validated.
fn complete_app_event<'a>(
    input: &PublishInput<'a>,
    span: &str,
    tracestate: &str,
    now: DateTime<Utc>,
) -> Result<CloudEvent<'a>, EnvelopeError> {
    let parsed: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(input.data)
        .map_err(|e| EnvelopeError::CloudEvent(format!("body is not a JSON object: {e}")))?;
    let mut event: CloudEvent<'a> = parsed
        .into_iter()
        .map(|(k, v)| (Cow::Owned(k), Attr::OwnedJson(v)))
        .collect();
    event
        .entry("time".into())
        .or_insert_with(|| text(rfc3339(now)));
    event.insert("topic".into(), Attr::Text(Cow::Borrowed(input.topic)));
    event.insert(
        "pubsubname".into(),
        Attr::Text(Cow::Borrowed(input.pubsub_name)),
    );
    // An app that set its own traceid keeps its whole trace context.
    if !event.contains_key("traceid") {
        event.insert("traceid".into(), text(span));
        event.insert("traceparent".into(), text(span));
    }
    event
        .entry("tracestate".into())
        .or_insert_with(|| text(tracestate));
    event
        .entry("source".into())
        .or_insert_with(|| text(DEFAULT_SOURCE));
    event
        .entry("type".into())
        .or_insert_with(|| text(DEFAULT_TYPE));
    event
        .entry("specversion".into())
        .or_insert_with(|| text(SPEC_VERSION));
    Ok(event)
}

/// RFC 3339 with second precision, as Go's `time.RFC3339` layout prints.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `now + ttl`; the TTL is capped at Go's largest duration, so overflow would need
/// a clock near year 262000 — saturate rather than fail there.
fn expiration(now: DateTime<Utc>, ttl: Duration) -> String {
    let at = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    rfc3339(at)
}

/// Validates JSON the way a full parse into `serde_json::Value` would (including
/// number range) without building anything: strings are borrowed, nothing is kept.
struct JsonCheck;

impl<'de> serde::Deserialize<'de> for JsonCheck {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonCheckVisitor)
    }
}

struct JsonCheckVisitor;

impl<'de> serde::de::Visitor<'de> for JsonCheckVisitor {
    type Value = JsonCheck;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_str<E>(self, _: &str) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_unit<E>(self) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonCheck, A::Error> {
        while seq.next_element::<JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonCheck, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, JsonCheck>()?
            .is_some()
        {}
        Ok(JsonCheck)
    }
}
