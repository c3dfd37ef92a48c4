//! Builds the protobuf requests a gRPC app (and a streaming subscriber)
//! receives from an [`AppEvent`], as daprd's gRPC postman does (described in
//! `docs/grpc.md`): the CloudEvent core attributes as fields, `data` as bytes,
//! every other attribute in `extensions`.

use prost_types::value::Kind;
use serde_json::Value;

use crate::delivery::channel::{AppEvent, BulkAppRequest};
use crate::envelope::Event;
use crate::proto::{
    topic_event_bulk_request_entry, TopicEventBulkRequest, TopicEventBulkRequestEntry,
    TopicEventCeRequest, TopicEventRequest,
};

/// CloudEvent attributes carried as fields; everything else is an extension.
const CORE: &[&str] = &[
    "id",
    "source",
    "type",
    "specversion",
    "datacontenttype",
    "data",
    "data_base64",
];

/// `type` of every bulk request (daprd's constant).
pub const BULK_EVENT_TYPE: &str = "com.dapr.event.sent.bulk";

fn text(event: &Event, key: &str) -> String {
    event
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The event's data as bytes. `data_base64` is decoded; a string `data` is
/// sent as its UTF-8 bytes, any other JSON value as its JSON text. daprd
/// leaves `data` empty for content types it does not recognise (e.g.
/// `application/vnd.x+json`); sidebus never drops the payload.
fn data_bytes(event: &Event) -> Vec<u8> {
    use base64::Engine;
    if let Some(b64) = event.get("data_base64").and_then(Value::as_str) {
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|_| b64.as_bytes().to_vec());
    }
    match event.get("data") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
    }
}

/// A JSON value as a protobuf `Value`.
pub fn to_proto_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(to_proto_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), to_proto_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn extensions(event: &Event) -> prost_types::Struct {
    prost_types::Struct {
        fields: event
            .iter()
            .filter(|(k, _)| !CORE.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), to_proto_value(v)))
            .collect(),
    }
}

/// The `TopicEventRequest` for `ev` (`path` = the matched route path).
pub fn topic_event_request(ev: &AppEvent) -> TopicEventRequest {
    let e = &ev.event;
    TopicEventRequest {
        id: text(e, "id"),
        source: text(e, "source"),
        r#type: text(e, "type"),
        spec_version: text(e, "specversion"),
        data_content_type: text(e, "datacontenttype"),
        topic: ev.topic.clone(),
        data: data_bytes(e),
        pubsub_name: ev.pubsub_name.clone(),
        path: ev.path.clone(),
        extensions: Some(extensions(e)),
    }
}

/// The `TopicEventBulkRequest` for `req`: CloudEvents as `cloud_event`
/// entries, raw payloads as `bytes` entries.
pub fn bulk_request(req: &BulkAppRequest) -> TopicEventBulkRequest {
    let entries = req
        .entries
        .iter()
        .map(|entry| {
            let (event, content_type) = match &entry.raw_data {
                Some(raw) => (
                    topic_event_bulk_request_entry::Event::Bytes(raw.to_vec()),
                    "application/octet-stream",
                ),
                None => {
                    let e = &entry.event.event;
                    let ce = TopicEventCeRequest {
                        id: text(e, "id"),
                        source: text(e, "source"),
                        r#type: text(e, "type"),
                        spec_version: text(e, "specversion"),
                        data_content_type: text(e, "datacontenttype"),
                        data: data_bytes(e),
                        extensions: Some(extensions(e)),
                    };
                    (
                        topic_event_bulk_request_entry::Event::CloudEvent(ce),
                        "application/cloudevents+json",
                    )
                }
            };
            TopicEventBulkRequestEntry {
                entry_id: entry.entry_id.clone(),
                event: Some(event),
                content_type: content_type.to_string(),
                metadata: entry.event.metadata.clone().into_iter().collect(),
            }
        })
        .collect();
    TopicEventBulkRequest {
        id: req.id.clone(),
        entries,
        metadata: req.metadata.clone().into_iter().collect(),
        topic: req.topic.clone(),
        pubsub_name: req.pubsub_name.clone(),
        r#type: BULK_EVENT_TYPE.to_string(),
        path: req.path.clone(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;

    fn event(v: Value) -> AppEvent {
        let Value::Object(event) = v else {
            panic!("object")
        };
        AppEvent {
            pubsub_name: "ps".into(),
            topic: "t".into(),
            path: "/orders".into(),
            body: Bytes::new(),
            event,
            metadata: Default::default(),
        }
    }

    #[test]
    fn core_fields_data_and_extensions() {
        let ev = event(
            json!({"id":"1","source":"app","type":"x","specversion":"1.0",
            "datacontenttype":"application/json","data":{"a":1},"topic":"t","traceid":"tp"}),
        );
        let req = topic_event_request(&ev);
        assert_eq!(req.id, "1");
        assert_eq!(req.spec_version, "1.0");
        assert_eq!(req.data, br#"{"a":1}"#);
        assert_eq!(req.path, "/orders");
        let ext = req.extensions.unwrap().fields;
        assert!(ext.contains_key("traceid") && ext.contains_key("topic"));
        assert!(!ext.contains_key("data") && !ext.contains_key("id"));
    }

    #[test]
    fn text_and_base64_data() {
        let ev = event(json!({"id":"1","datacontenttype":"text/plain","data":"hi"}));
        assert_eq!(topic_event_request(&ev).data, b"hi");
        let ev = event(
            json!({"id":"1","datacontenttype":"application/octet-stream","data_base64":"AAE="}),
        );
        assert_eq!(topic_event_request(&ev).data, vec![0u8, 1]);
    }
}
