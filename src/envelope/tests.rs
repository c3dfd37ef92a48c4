//! Publish-side envelope rules (`build.rs`), one test per rule, checked on the bytes a
//! component would receive.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::*;
use crate::broker::Metadata;

const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A publish with sensible defaults; tests override what they exercise.
struct Case<'a> {
    content_type: Option<&'a str>,
    data: &'a [u8],
    metadata: Vec<(&'a str, &'a str)>,
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
    native_ttl: bool,
    partition_key_attribute: Option<&'a str>,
    app_id: &'a str,
}

impl<'a> Case<'a> {
    fn new(content_type: Option<&'a str>, data: &'a [u8]) -> Self {
        Case {
            content_type,
            data,
            metadata: Vec::new(),
            traceparent: None,
            tracestate: None,
            native_ttl: false,
            partition_key_attribute: None,
            app_id: "checkout",
        }
    }

    fn meta(mut self, key: &'a str, value: &'a str) -> Self {
        self.metadata.push((key, value));
        self
    }

    fn try_build(&self) -> Result<Envelope, EnvelopeError> {
        let metadata: Metadata = self
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        build(&PublishInput {
            app_id: self.app_id,
            pubsub_name: "pubsub",
            topic: "orders",
            data: self.data,
            content_type: self.content_type,
            metadata: &metadata,
            traceparent: self.traceparent,
            tracestate: self.tracestate,
            native_ttl: self.native_ttl,
            partition_key_attribute: self.partition_key_attribute,
        })
    }

    fn build(&self) -> (Envelope, Event) {
        let envelope = self.try_build().expect("envelope builds");
        let event = decode(&envelope.data).expect("envelope decodes");
        (envelope, event)
    }
}

fn bad_metadata_key(err: EnvelopeError) -> String {
    match err {
        EnvelopeError::BadMetadata { key, .. } => key,
        other => panic!("expected BadMetadata, got {other:?}"),
    }
}

fn seconds_from_now(at: &Value) -> i64 {
    let at = DateTime::parse_from_rfc3339(at.as_str().expect("time is a string")).expect("rfc3339");
    (at.with_timezone(&Utc) - Utc::now()).num_seconds()
}

#[test]
fn new_envelope_has_every_daprd_attribute() {
    let (envelope, event) = Case::new(None, b"hello").build();
    assert_eq!(envelope.content_type, "application/cloudevents+json");
    assert_eq!(envelope.key, None);
    let id = event["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(envelope.id.as_deref(), Some(id));
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["datacontenttype"], "text/plain");
    assert_eq!(event["source"], "checkout");
    assert_eq!(event["type"], "com.dapr.event.sent");
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["pubsubname"], "pubsub");
    assert_eq!(event["data"], "hello");
    assert_eq!(event["tracestate"], "");
    assert_eq!(event["traceid"], event["traceparent"]);
    assert!(TraceParent::parse(event["traceid"].as_str().unwrap()).is_some());
    let time = event["time"].as_str().unwrap();
    assert_eq!(
        time.len(),
        "2026-01-01T00:00:00Z".len(),
        "second precision: {time}"
    );
    assert!(seconds_from_now(&event["time"]).abs() <= 2);
    for absent in ["subject", "expiration", "data_base64"] {
        assert!(!event.contains_key(absent), "{absent}");
    }
}

#[test]
fn keys_are_serialised_sorted() {
    let (envelope, _) = Case::new(Some("application/json"), br#"{"z":1,"a":2}"#).build();
    let text = std::str::from_utf8(&envelope.data).unwrap();
    let keys: Vec<usize> = [
        "\"data\"",
        "\"datacontenttype\"",
        "\"id\"",
        "\"pubsubname\"",
        "\"source\"",
        "\"specversion\"",
        "\"time\"",
        "\"topic\"",
        "\"traceid\"",
        "\"traceparent\"",
        "\"tracestate\"",
        "\"type\"",
    ]
    .iter()
    .map(|k| {
        text.find(k)
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
    })
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
    // The app's own JSON is embedded as sent, not re-sorted.
    assert!(text.contains(r#""data":{"z":1,"a":2}"#), "{text}");
}

#[test]
fn empty_app_id_falls_back_to_dapr_source() {
    let mut case = Case::new(None, b"x");
    case.app_id = "";
    assert_eq!(case.build().1["source"], "Dapr");
}

#[test]
fn json_content_types_embed_the_value() {
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ] {
        let (_, event) = Case::new(Some(ct), br#"{"a":[1,"b",null]}"#).build();
        assert_eq!(event["data"], json!({"a": [1, "b", null]}), "{ct}");
        assert_eq!(event["datacontenttype"], ct);
    }
}

#[test]
fn plus_json_is_not_json() {
    let (_, event) = Case::new(Some("application/vnd.x+json"), br#"{"a":1}"#).build();
    assert_eq!(event["data"], r#"{"a":1}"#);
}

#[test]
fn big_numbers_survive_byte_exact() {
    let body = br#"{"n":12345678901234567890,"f":0.1000000000000000000001,"big":123456789012345678901234567890}"#;
    let (envelope, _) = Case::new(Some("application/json"), body).build();
    let text = std::str::from_utf8(&envelope.data).unwrap();
    let embedded = format!(r#""data":{}"#, std::str::from_utf8(body).unwrap());
    assert!(text.contains(&embedded), "{text}");
}

#[test]
fn invalid_json_becomes_a_string() {
    let (_, event) = Case::new(Some("application/json"), b"{not json").build();
    assert_eq!(event["data"], "{not json");
    let (_, event) = Case::new(Some("application/json"), b"").build();
    assert_eq!(event["data"], "");
    // Beyond f64 range: Go's Unmarshal fails, so daprd keeps the text.
    let (_, event) = Case::new(Some("application/json"), br#"{"e":1e400}"#).build();
    assert_eq!(event["data"], r#"{"e":1e400}"#);
}

#[test]
fn binary_content_types_use_data_base64() {
    for ct in [
        "application/octet-stream",
        "application/cloudevents+protobuf",
        "application/x-protobuf",
    ] {
        let (_, event) = Case::new(Some(ct), b"\x00\x01hi").build();
        assert_eq!(event["data_base64"], "AAFoaQ==", "{ct}");
        assert!(!event.contains_key("data"), "{ct}");
        assert_eq!(event["datacontenttype"], ct);
    }
}

#[test]
fn invalid_utf8_text_uses_data_base64() {
    let (_, event) = Case::new(Some("text/plain"), b"\xff\xfe").build();
    assert_eq!(event["data_base64"], "//4=");
    assert_eq!(event["datacontenttype"], "text/plain");
    assert!(!event.contains_key("data"));
}

#[test]
fn app_cloudevent_is_completed_not_wrapped() {
    let body = br#"{"id":"app-1","source":"app","type":"t","specversion":"1.0","tenantid":"t1","topic":"wrong","pubsubname":"wrong","data":{"n":12345678901234567890}}"#;
    let mut case = Case::new(Some("application/cloudevents+json; charset=utf-8"), body)
        .meta("cloudevent.source", "ignored-for-app-events");
    case.traceparent = Some(PARENT);
    case.tracestate = Some("k=v");
    let (envelope, event) = case.build();
    assert_eq!(envelope.id.as_deref(), Some("app-1"));
    assert_eq!(event["source"], "app");
    assert_eq!(event["type"], "t");
    assert_eq!(event["tenantid"], "t1");
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["pubsubname"], "pubsub");
    assert!(seconds_from_now(&event["time"]).abs() <= 2);
    let trace = event["traceid"].as_str().unwrap();
    assert_eq!(event["traceparent"], trace);
    assert!(trace.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
    assert_eq!(event["tracestate"], "k=v");
    assert!(!event.contains_key("datacontenttype"));
    let text = std::str::from_utf8(&envelope.data).unwrap();
    assert!(
        text.contains(r#""data":{"n":12345678901234567890}"#),
        "{text}"
    );
}

#[test]
fn app_cloudevent_gets_defaults_but_no_id() {
    let (envelope, event) = Case::new(Some(CLOUDEVENTS_JSON), br#"{"data":"x"}"#).build();
    assert_eq!(envelope.id, None);
    assert!(!event.contains_key("id"));
    assert_eq!(event["source"], "Dapr");
    assert_eq!(event["type"], "com.dapr.event.sent");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["tracestate"], "");
}

#[test]
fn app_cloudevent_keeps_its_time_and_trace() {
    let body = br#"{"id":"1","time":"2020-01-01T00:00:00Z","traceid":"mine","traceparent":"mine-tp","tracestate":"mine-ts"}"#;
    let mut case = Case::new(Some(CLOUDEVENTS_JSON), body);
    case.traceparent = Some(PARENT);
    case.tracestate = Some("k=v");
    let (_, event) = case.build();
    assert_eq!(event["time"], "2020-01-01T00:00:00Z");
    assert_eq!(event["traceid"], "mine");
    assert_eq!(event["traceparent"], "mine-tp");
    assert_eq!(event["tracestate"], "mine-ts");
}

#[test]
fn app_cloudevent_must_be_a_json_object() {
    for body in [&b"not json"[..], b"[1,2]", b"\"x\""] {
        let err = Case::new(Some(CLOUDEVENTS_JSON), body)
            .try_build()
            .unwrap_err();
        assert!(matches!(err, EnvelopeError::CloudEvent(_)), "{err:?}");
    }
}

#[test]
fn every_override_applies_case_insensitively() {
    let (envelope, event) = Case::new(None, b"x")
        .meta("CloudEvent.ID", "my-id")
        .meta("cloudevent.source", "my-source")
        .meta("cloudevent.Type", "my.type")
        .meta("cloudevent.subject", "my-subject")
        .meta("cloudevent.traceid", "my-traceid")
        .meta("cloudevent.tracestate", "my=state")
        .build();
    assert_eq!(envelope.id.as_deref(), Some("my-id"));
    assert_eq!(event["id"], "my-id");
    assert_eq!(event["source"], "my-source");
    assert_eq!(event["type"], "my.type");
    assert_eq!(event["subject"], "my-subject");
    assert_eq!(event["traceid"], "my-traceid");
    assert_eq!(event["traceparent"], "my-traceid");
    assert_eq!(event["tracestate"], "my=state");
}

#[test]
fn traceparent_override_wins_over_traceid() {
    let (_, event) = Case::new(None, b"x")
        .meta("cloudevent.traceid", "from-traceid")
        .meta("cloudevent.traceparent", "from-traceparent")
        .build();
    assert_eq!(event["traceid"], "from-traceparent");
    assert_eq!(event["traceparent"], "from-traceparent");
}

#[test]
fn empty_overrides_are_ignored() {
    let (_, event) = Case::new(None, b"x").meta("cloudevent.source", "").build();
    assert_eq!(event["source"], "checkout");
}

#[test]
fn incoming_trace_context_is_continued() {
    let mut case = Case::new(None, b"x");
    case.traceparent = Some(PARENT);
    case.tracestate = Some("vendor=1");
    let (_, event) = case.build();
    let child = TraceParent::parse(event["traceparent"].as_str().unwrap()).unwrap();
    let parent = TraceParent::parse(PARENT).unwrap();
    assert_eq!(child.trace_id, parent.trace_id);
    assert_ne!(child.span_id, parent.span_id);
    assert_eq!(event["tracestate"], "vendor=1");
}

#[test]
fn invalid_incoming_trace_starts_a_new_one() {
    let mut case = Case::new(None, b"x");
    case.traceparent = Some("garbage");
    case.tracestate = Some("vendor=1");
    let (_, event) = case.build();
    assert!(TraceParent::parse(event["traceparent"].as_str().unwrap()).is_some());
    assert_eq!(event["tracestate"], "");
}

#[test]
fn cloudevent_extensions_are_set() {
    let (_, event) = Case::new(None, b"x")
        .meta("cloudevent.tenantid", "t-42")
        .meta("cloudevent.UserId", "u-7")
        .meta("cloudevent.correlationid", "c-1")
        .meta("other", "not an attribute")
        .build();
    assert_eq!(event["tenantid"], "t-42");
    assert_eq!(event["userid"], "u-7");
    assert_eq!(event["correlationid"], "c-1");
    assert!(!event.contains_key("other"));
}

#[test]
fn invalid_or_reserved_extension_names_are_rejected() {
    for key in [
        "cloudevent.tenant-id",
        "cloudevent.tenant_id",
        "cloudevent.",
        "cloudevent.data",
        "cloudevent.data_base64",
        "cloudevent.specversion",
        "cloudevent.topic",
        "cloudevent.pubsubname",
        "cloudevent.datacontenttype",
        "cloudevent.time",
        "cloudevent.expiration",
        "cloudevent.tenantïd",
    ] {
        let err = Case::new(None, b"x")
            .meta(key, "v")
            .try_build()
            .unwrap_err();
        assert_eq!(bad_metadata_key(err), key);
    }
}

#[test]
fn ttl_sets_expiration_without_native_ttl() {
    let (_, event) = Case::new(None, b"x").meta("ttlInSeconds", "60").build();
    assert!((58..=61).contains(&seconds_from_now(&event["expiration"])));
    let expiration = event["expiration"].as_str().unwrap();
    assert!(
        expiration.ends_with('Z') && !expiration.contains('.'),
        "{expiration}"
    );
    let (_, event) = Case::new(None, b"x").meta("ttl", "1m30s").build();
    assert!((88..=91).contains(&seconds_from_now(&event["expiration"])));
    let (_, event) = Case::new(None, b"x").meta("ttl", "120").build();
    assert!((118..=121).contains(&seconds_from_now(&event["expiration"])));
    // ttlInSeconds wins over ttl.
    let (_, event) = Case::new(None, b"x")
        .meta("ttl", "1h")
        .meta("ttlInSeconds", "10")
        .build();
    assert!((8..=11).contains(&seconds_from_now(&event["expiration"])));
}

#[test]
fn ttl_is_left_to_components_with_native_ttl() {
    let mut case = Case::new(None, b"x").meta("ttlInSeconds", "60");
    case.native_ttl = true;
    assert!(!case.build().1.contains_key("expiration"));
}

#[test]
fn ttl_applies_to_app_cloudevents() {
    let (_, event) = Case::new(Some(CLOUDEVENTS_JSON), br#"{"id":"1"}"#)
        .meta("ttlInSeconds", "30")
        .build();
    assert!((28..=31).contains(&seconds_from_now(&event["expiration"])));
}

#[test]
fn invalid_ttl_is_bad_metadata() {
    for (key, value) in [
        ("ttlInSeconds", "abc"),
        ("ttlInSeconds", "0"),
        ("ttlInSeconds", "-5"),
        ("ttlInSeconds", "1m"),
        ("ttl", "5x"),
        ("ttl", "0s"),
        ("ttl", "-1m"),
    ] {
        let err = Case::new(None, b"x")
            .meta(key, value)
            .try_build()
            .unwrap_err();
        assert_eq!(bad_metadata_key(err), key, "{key}={value}");
    }
}

#[test]
fn raw_payload_sends_the_body_untouched() {
    let (envelope_ct, envelope_default) = (
        Case::new(Some("application/json"), b"\x00raw")
            .meta("rawPayload", "true")
            .meta("ttlInSeconds", "5")
            .try_build()
            .unwrap(),
        Case::new(None, b"raw")
            .meta("rawPayload", "1")
            .try_build()
            .unwrap(),
    );
    assert_eq!(&envelope_ct.data[..], b"\x00raw");
    assert_eq!(envelope_ct.content_type, "application/json");
    assert_eq!(envelope_ct.id, None);
    assert_eq!(envelope_default.content_type, "text/plain");
    let (_, event) = Case::new(None, b"x").meta("rawPayload", "False").build();
    assert_eq!(event["data"], "x");
}

#[test]
fn invalid_raw_payload_is_bad_metadata() {
    let err = Case::new(None, b"x")
        .meta("rawPayload", "yes")
        .try_build()
        .unwrap_err();
    assert_eq!(bad_metadata_key(err), "rawPayload");
}

#[test]
fn partition_key_precedence() {
    let attr = |mut case: Case<'static>, attribute: &'static str| {
        case.partition_key_attribute = Some(attribute);
        case.try_build().unwrap().key
    };
    let with_tenant = || Case::new(None, b"x").meta("cloudevent.tenantid", "t1");
    assert_eq!(
        attr(
            with_tenant().meta("partitionKey", "pk").meta("__key", "k"),
            "tenantid"
        )
        .as_deref(),
        Some("pk")
    );
    assert_eq!(
        attr(with_tenant().meta("__key", "k"), "tenantid").as_deref(),
        Some("k")
    );
    assert_eq!(attr(with_tenant(), "tenantid").as_deref(), Some("t1"));
    assert_eq!(attr(with_tenant(), "tenantId").as_deref(), Some("t1"));
    assert_eq!(
        attr(with_tenant().meta("cloudevent.subject", "s1"), "subject").as_deref(),
        Some("s1")
    );
    assert_eq!(attr(with_tenant(), "correlationid"), None);
    assert_eq!(with_tenant().try_build().unwrap().key, None);
    let app_event = Case::new(Some(CLOUDEVENTS_JSON), br#"{"userid":"u9","n":5}"#);
    assert_eq!(attr(app_event, "userid").as_deref(), Some("u9"));
    let app_event = Case::new(Some(CLOUDEVENTS_JSON), br#"{"userid":"u9","n":5}"#);
    assert_eq!(attr(app_event, "n"), None, "only string attributes key");
    let raw = Case::new(None, b"x")
        .meta("rawPayload", "true")
        .meta("partitionKey", "pk");
    assert_eq!(raw.try_build().unwrap().key.as_deref(), Some("pk"));
}

#[test]
fn built_envelope_decodes_back() {
    let body = br#"{"order":{"id":7,"total":12.5}}"#;
    let mut case = Case::new(Some("application/json"), body)
        .meta("cloudevent.tenantid", "acme")
        .meta("ttlInSeconds", "3600");
    case.partition_key_attribute = Some("tenantid");
    let (envelope, event) = case.build();
    assert_eq!(envelope.key.as_deref(), Some("acme"));
    assert_eq!(event["data"], json!({"order": {"id": 7, "total": 12.5}}));
    assert_eq!(event["tenantid"], "acme");
    assert_eq!(event["id"].as_str(), envelope.id.as_deref());
    assert!(!is_expired(&event, Utc::now()));
    assert!(is_expired(&event, Utc::now() + chrono::Duration::hours(2)));
}

#[test]
fn json_body_whitespace_outside_the_value_is_dropped() {
    let (envelope, event) = Case::new(Some("application/json"), b" \n{ \"a\" : 1 }\n ").build();
    let text = std::str::from_utf8(&envelope.data).unwrap();
    assert!(text.starts_with(r#"{"data":{ "a" : 1 },"#), "{text}");
    assert_eq!(event["data"], json!({"a": 1}));
}
