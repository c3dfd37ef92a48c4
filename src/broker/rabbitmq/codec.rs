//! Between sidebus events and AMQP messages: properties, string headers and
//! the CloudEvents AMQP binding (binary content mode).
//!
//! Structured mode stores the CloudEvent JSON as the body, as daprd does.
//! Binary mode moves every attribute into a `cloudEvents_<name>` header and
//! keeps only `data` in the body. On receive both layouts are recognised
//! automatically and the delivery layer always gets structured CE JSON, so a
//! fleet can switch modes without draining queues.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use serde_json::{Map, Value};

use super::config::{ContentMode, RabbitConfig};
use crate::broker::{BrokerError, Metadata, PublishRequest, Unpublishable};
use crate::config::metadata::get as meta;

/// Header carrying the publish key (RabbitMQ has no record key).
pub const KEY_HEADER: &str = "x-sidebus-key";
/// Publish metadata interpreted rather than copied into headers (daprd's).
const INTERPRETED: &[&str] = &["routingKey", "ttlInSeconds", "priority"];
/// Prefixes of CloudEvents attribute headers: `cloudEvents_` (JMS-safe,
/// what we write) and `cloudEvents:` (the binding's original spelling).
const CE_PREFIXES: &[&str] = &["cloudEvents_", "cloudEvents:"];

/// Longest per-message TTL RabbitMQ accepts, in milliseconds (its expiry
/// timer limit, 2^32 - 1): a larger `expiration` makes the broker close the
/// channel instead of refusing the one message.
pub const MAX_TTL_MS: u64 = u32::MAX as u64;

/// An AMQP short string (exchange, queue, routing key, header name, content
/// type): at most 255 bytes. lapin's `From` conversions panic on longer
/// input, and these values come from requests, so every one is checked
/// here and refused with a reason instead.
pub fn short(value: &str, what: &str) -> Result<ShortString, BrokerError> {
    ShortString::try_new(value).map_err(|_| {
        BrokerError::Rejected(format!(
            "{what} is {} bytes; RabbitMQ allows at most 255",
            value.len()
        ))
    })
}

/// A publish request turned into AMQP terms.
#[derive(Debug)]
pub struct Outgoing {
    /// The exchange: the topic.
    pub exchange: ShortString,
    /// Routing key (`routingKey` metadata, else the component default).
    pub routing_key: ShortString,
    /// Properties and headers.
    pub properties: BasicProperties,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Everything about `req` RabbitMQ would refuse, found without I/O: names
/// over 255 bytes (topic, routing key, metadata keys, content type), a TTL
/// that is not whole seconds or is past the broker's expiry limit, a
/// priority outside 0–255. The runtime runs it before anything is stored.
pub fn check(cfg: &RabbitConfig, req: &PublishRequest) -> Result<(), Unpublishable> {
    if req.topic.len() > 255 {
        return Err(Unpublishable::Topic {
            topic: req.topic.chars().take(64).collect(),
            reason: format!("{} bytes; RabbitMQ allows at most 255", req.topic.len()),
        });
    }
    let too_long = |key: &str, value: &str, what: &str| Unpublishable::Metadata {
        key: key.chars().take(64).collect(),
        value: value.chars().take(64).collect(),
        reason: format!("{what} is over 255 bytes, RabbitMQ's limit"),
    };
    for (k, v) in &req.metadata {
        if k.len() > 255 {
            return Err(too_long(k, v, "the key"));
        }
    }
    if let Some(rk) = meta(&req.metadata, "routingKey") {
        if rk.len() > 255 {
            return Err(too_long("routingKey", rk, "the routing key"));
        }
    }
    if req.content_type.len() > 255 {
        return Err(too_long(
            "contentType",
            &req.content_type,
            "the content type",
        ));
    }
    ttl_ms(cfg, &req.metadata)?;
    priority(&req.metadata)?;
    Ok(())
}

/// The per-message expiration: `ttlInSeconds`, else the component default.
fn ttl_ms(cfg: &RabbitConfig, md: &crate::broker::Metadata) -> Result<Option<u64>, Unpublishable> {
    let bad = |raw: &str, reason: String| Unpublishable::Metadata {
        key: "ttlInSeconds".into(),
        value: raw.chars().take(64).collect(),
        reason,
    };
    let secs = match meta(md, "ttlInSeconds") {
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| bad(raw, "is not a whole number of seconds".into()))?,
        None => match cfg.ttl {
            Some(d) => d.as_secs().max(1),
            None => return Ok(None),
        },
    };
    secs.checked_mul(1000)
        .filter(|ms| *ms <= MAX_TTL_MS)
        .map(Some)
        .ok_or_else(|| {
            bad(
                &secs.to_string(),
                format!(
                    "is more than RabbitMQ accepts ({} seconds)",
                    MAX_TTL_MS / 1000
                ),
            )
        })
}

/// `priority`: 0–255.
fn priority(md: &crate::broker::Metadata) -> Result<Option<u8>, Unpublishable> {
    meta(md, "priority")
        .map(|raw| {
            raw.parse::<u8>().map_err(|_| Unpublishable::Metadata {
                key: "priority".into(),
                value: raw.chars().take(64).collect(),
                reason: "must be a whole number from 0 to 255".into(),
            })
        })
        .transpose()
}

/// Builds the AMQP message for `req`.
pub fn encode(cfg: &RabbitConfig, req: &PublishRequest) -> Result<Outgoing, BrokerError> {
    // The runtime ran `check` before storing the event; what it checks is
    // refused here again as it is read, for events stored before it (an
    // outbox written by an older version).
    let rejected = |e: Unpublishable| BrokerError::Rejected(e.to_string());
    let mut headers = FieldTable::default();
    for (k, v) in &req.metadata {
        if !INTERPRETED.iter().any(|i| i.eq_ignore_ascii_case(k)) {
            let name = short(k, &format!("metadata key {:.40}…", k))?;
            headers.insert(name, AMQPValue::LongString(v.as_str().into()));
        }
    }
    if let Some(key) = &req.key {
        headers.insert(
            KEY_HEADER.into(),
            AMQPValue::LongString(key.as_str().into()),
        );
    }
    let mut content_type = req.content_type.clone();
    let mut body = req.data.to_vec();
    if cfg.content_mode == ContentMode::Binary && is_cloudevent_json(&req.content_type) {
        if let Ok(Value::Object(ce)) = serde_json::from_slice::<Value>(&req.data) {
            let (ct, data) = to_binary(ce, &mut headers)?;
            content_type = ct;
            body = data;
        }
    }
    let mut props = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(cfg.delivery_mode)
        .with_message_id(uuid::Uuid::new_v4().simple().to_string().into());
    if !content_type.is_empty() {
        props = props.with_content_type(short(&content_type, "the content type")?);
    }
    if let Some(ms) = ttl_ms(cfg, &req.metadata).map_err(rejected)? {
        // A decimal number of at most 10 digits: always a valid short string.
        props = props.with_expiration(ms.to_string().into());
    }
    if let Some(p) = priority(&req.metadata).map_err(rejected)? {
        props = props.with_priority(p);
    }
    let routing_key = meta(&req.metadata, "routingKey").unwrap_or(&cfg.routing_key);
    Ok(Outgoing {
        exchange: short(&req.topic, "the topic")?,
        routing_key: short(routing_key, "the routing key")?,
        properties: props,
        body,
    })
}

fn is_cloudevent_json(content_type: &str) -> bool {
    content_type
        .to_ascii_lowercase()
        .starts_with("application/cloudevents+json")
}

fn is_json(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json")
                || ct.contains("+json")
                || ct.starts_with("text/json")
        }
    }
}

/// Splits a structured CloudEvent into headers and body; returns the body's
/// content type and bytes.
fn to_binary(
    mut ce: Map<String, Value>,
    headers: &mut FieldTable,
) -> Result<(String, Vec<u8>), BrokerError> {
    let data = ce.remove("data");
    let data_b64 = ce.remove("data_base64");
    let dct = match ce.remove("datacontenttype") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    for (name, value) in ce {
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let header = format!("{}{name}", CE_PREFIXES[0]);
        let header = short(&header, "a CloudEvent attribute name")?;
        headers.insert(header, AMQPValue::LongString(text.into()));
    }
    let body = match (data, data_b64) {
        (_, Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .unwrap_or_else(|_| b64.into_bytes()),
        (Some(Value::String(s)), _) if !is_json(dct.as_deref()) => s.into_bytes(),
        (Some(v), _) => v.to_string().into_bytes(),
        (None, _) => Vec::new(),
    };
    Ok((dct.unwrap_or_default(), body))
}

/// What a received AMQP message becomes: the structured bytes, metadata and key.
pub fn decode(properties: &BasicProperties, body: Vec<u8>) -> (Bytes, Metadata, Option<String>) {
    let mut metadata = BTreeMap::new();
    let mut ce = Map::new();
    let mut key = None;
    if let Some(headers) = properties.headers() {
        for (name, value) in headers.inner() {
            let name = name.as_str();
            if name == "x-death" {
                flatten_death(value, &mut metadata);
                continue;
            }
            let Some(text) = scalar(value) else { continue };
            if let Some(attr) = CE_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
                ce.insert(attr.to_string(), Value::String(text));
            } else if name == KEY_HEADER {
                key = Some(text);
            } else {
                metadata.insert(name.to_string(), text);
            }
        }
    }
    if ce.is_empty() {
        return (Bytes::from(body), metadata, key);
    }
    let ct = properties
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_string());
    if let Some(ct) = &ct {
        ce.insert("datacontenttype".into(), Value::String(ct.clone()));
    }
    if !body.is_empty() {
        let parsed = is_json(ct.as_deref())
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten();
        match parsed {
            Some(v) => {
                ce.insert("data".into(), v);
            }
            None => match String::from_utf8(body) {
                Ok(s) => {
                    ce.insert("data".into(), Value::String(s));
                }
                Err(e) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                    ce.insert("data_base64".into(), Value::String(b64));
                }
            },
        }
    }
    let json = serde_json::to_vec(&Value::Object(ce)).unwrap_or_default();
    (Bytes::from(json), metadata, key)
}

fn scalar(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        _ => return None,
    })
}

/// RabbitMQ's `x-death` is an array of tables, newest first; the delivery
/// layer and apps get its head as flat `x-death-*` string metadata.
fn flatten_death(value: &AMQPValue, metadata: &mut Metadata) {
    let AMQPValue::FieldArray(entries) = value else {
        return;
    };
    let Some(AMQPValue::FieldTable(first)) = entries.as_slice().first() else {
        return;
    };
    for (field, v) in first.inner() {
        if let Some(text) = scalar(v) {
            metadata.insert(format!("x-death-{}", field.as_str()), text);
        }
    }
}

/// A long string header value (used when tests build messages by hand).
pub fn long(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
