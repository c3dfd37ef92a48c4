//! `POST|PUT /v1.0/publish/...`: envelopes that reach the broker, and every
//! error case of the publish route (`docs/http-api.md`).

use std::sync::Arc;

use http::StatusCode;
use sidebus::broker::conformance::unique;
use sidebus::broker::Feature;
use sidebus::runtime::Runtime;

use super::{only_event, request, send, settings, Flaky, Harness, APP_ID};

fn url(topic: &str, query: &str) -> String {
    format!("/v1.0/publish/ps/{topic}{query}")
}

#[tokio::test]
async fn json_is_wrapped_in_a_cloudevent() {
    let h = Harness::plain();
    let topic = unique("orders");
    let (rec, _sub) = h.listen(&topic).await;
    let r = h
        .send(request(
            "POST",
            &url(&topic, ""),
            Some("application/json"),
            r#"{"a":1,"b":[true]}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty(), "204 has an empty body");
    let (_, ce) = only_event(&rec).await;
    assert_eq!(ce["data"], serde_json::json!({"a":1,"b":[true]}));
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["source"], APP_ID);
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["topic"], topic.as_str());
    assert_eq!(ce["pubsubname"], "ps");
    assert!(ce["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(ce["time"].as_str().is_some());
}

#[tokio::test]
async fn text_and_binary_bodies_are_placed_as_daprd_does() {
    let h = Harness::plain();
    let topic = unique("t");
    let (rec, _sub) = h.listen(&topic).await;
    let r = h
        .send(request(
            "POST",
            &url(&topic, ""),
            Some("text/plain"),
            "hello",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_, ce) = only_event(&rec).await;
    assert_eq!(ce["data"], "hello");
    assert_eq!(ce["datacontenttype"], "text/plain");

    let topic = unique("b");
    let (rec, _sub) = h.listen(&topic).await;
    let bytes: Vec<u8> = vec![0, 1, 2, 255];
    let r = h
        .send(request(
            "POST",
            &url(&topic, ""),
            Some("application/octet-stream"),
            bytes,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_, ce) = only_event(&rec).await;
    assert_eq!(ce["data_base64"], "AAEC/w==");
    assert!(ce.get("data").is_none());
}

#[tokio::test]
async fn an_app_cloudevent_is_completed_not_wrapped() {
    let h = Harness::plain();
    let topic = unique("ce");
    let (rec, _sub) = h.listen(&topic).await;
    let body = r#"{"specversion":"1.0","id":"my-id","source":"my-app","type":"my.type","topic":"wrong","data":{"x":1}}"#;
    let r = h
        .send(request(
            "POST",
            &url(&topic, ""),
            Some("application/cloudevents+json"),
            body,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_, ce) = only_event(&rec).await;
    assert_eq!(ce["id"], "my-id");
    assert_eq!(ce["source"], "my-app");
    assert_eq!(ce["type"], "my.type");
    assert_eq!(ce["topic"], topic.as_str(), "topic is overwritten");
    assert_eq!(ce["pubsubname"], "ps");
    assert_eq!(ce["data"], serde_json::json!({"x":1}));
    assert!(ce.get("data").and_then(|d| d.get("specversion")).is_none());
}

#[tokio::test]
async fn raw_payload_goes_untouched_and_metadata_reaches_the_component() {
    let h = Harness::plain();
    let topic = unique("raw");
    let (rec, _sub) = h.listen(&topic).await;
    let q = "?metadata.rawPayload=true&metadata.custom=v1&metadata.custom=v2&other=x";
    let r = h
        .send(request(
            "POST",
            &url(&topic, q),
            Some("text/plain"),
            "raw bytes",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (msg, _) = only_event(&rec).await;
    assert_eq!(&msg.data[..], b"raw bytes");
    assert_eq!(
        msg.metadata.get("rawPayload").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        msg.metadata.get("custom").map(String::as_str),
        Some("v1"),
        "first value wins"
    );
    assert!(!msg.metadata.contains_key("other"));
}

#[tokio::test]
async fn cloudevent_overrides_and_extensions_apply() {
    let h = Harness::plain();
    let topic = unique("ovr");
    let (rec, _sub) = h.listen(&topic).await;
    let q = "?metadata.cloudevent.id=fixed-id&metadata.cloudevent.type=order.created\
             &metadata.cloudevent.subject=order-7&metadata.cloudevent.tenantid=acme";
    let r = h
        .send(request(
            "POST",
            &url(&topic, q),
            Some("application/json"),
            "{}",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_, ce) = only_event(&rec).await;
    assert_eq!(ce["id"], "fixed-id");
    assert_eq!(ce["type"], "order.created");
    assert_eq!(ce["subject"], "order-7");
    assert_eq!(ce["tenantid"], "acme");
}

#[tokio::test]
async fn ttl_sets_expiration_only_without_native_ttl() {
    let h = Harness::plain();
    let topic = unique("ttl");
    let (rec, _sub) = h.listen(&topic).await;
    let r = h
        .send(request(
            "POST",
            &url(&topic, "?metadata.ttlInSeconds=60"),
            Some("text/plain"),
            "x",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (msg, ce) = only_event(&rec).await;
    assert!(ce["expiration"].as_str().is_some(), "{ce}");
    assert_eq!(
        msg.metadata.get("ttlInSeconds").map(String::as_str),
        Some("60")
    );

    let native = Harness::with_bus(settings(), &[], Flaky::new(vec![Feature::MessageTtl]));
    let topic = unique("ttl");
    let (rec, _sub) = native.listen(&topic).await;
    let r = native
        .send(request(
            "POST",
            &url(&topic, "?metadata.ttlInSeconds=60"),
            Some("text/plain"),
            "x",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (msg, ce) = only_event(&rec).await;
    assert!(ce.get("expiration").is_none(), "broker enforces TTL: {ce}");
    assert_eq!(
        msg.metadata.get("ttlInSeconds").map(String::as_str),
        Some("60")
    );
}

#[tokio::test]
async fn partition_key_comes_from_metadata_or_the_component_attribute() {
    let h = Harness::plain();
    let topic = unique("key");
    let (rec, _sub) = h.listen(&topic).await;
    let r = h
        .send(request(
            "POST",
            &url(&topic, "?metadata.partitionKey=k1"),
            Some("text/plain"),
            "x",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (msg, _) = only_event(&rec).await;
    assert_eq!(msg.key.as_deref(), Some("k1"));

    let h = Harness::with(settings(), &[("partitionKeyAttribute", "tenantid")]);
    let topic = unique("key");
    let (rec, _sub) = h.listen(&topic).await;
    let q = "?metadata.cloudevent.tenantid=acme";
    let r = h
        .send(request("POST", &url(&topic, q), Some("text/plain"), "x"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (msg, _) = only_event(&rec).await;
    assert_eq!(msg.key.as_deref(), Some("acme"));
}

#[tokio::test]
async fn trace_context_headers_reach_the_envelope() {
    let h = Harness::plain();
    let topic = unique("trace");
    let (rec, _sub) = h.listen(&topic).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let req = http::Request::builder()
        .method("POST")
        .uri(url(&topic, ""))
        .header("content-type", "text/plain")
        .header("traceparent", tp)
        .header("tracestate", "vendor=1")
        .body(axum::body::Body::from("x"))
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::NO_CONTENT);
    let (_, ce) = only_event(&rec).await;
    // The envelope carries a child span of the caller's trace.
    let got = ce["traceparent"].as_str().unwrap();
    assert_eq!(&got[..36], &tp[..36], "same version and trace id: {got}");
    assert_ne!(got, tp, "a new span id");
    assert_eq!(ce["traceid"], got);
    assert_eq!(ce["tracestate"], "vendor=1");
}

#[tokio::test]
async fn topics_may_contain_slashes_and_put_is_accepted() {
    let h = Harness::plain();
    let topic = format!("{}/eu/west", unique("orders"));
    let (rec, _sub) = h.listen(&topic).await;
    let r = h
        .send(request("PUT", &url(&topic, ""), Some("text/plain"), "x"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (msg, ce) = only_event(&rec).await;
    assert_eq!(msg.topic, topic);
    assert_eq!(ce["topic"], topic.as_str());
}

#[tokio::test]
async fn request_errors_follow_daprd_order_and_codes() {
    let none = Arc::new(Runtime::new(settings(), Vec::new()));
    let r = send(
        sidebus::api::http::router(none),
        request("POST", "/v1.0/publish/ps/t", None, "x"),
    )
    .await;
    let body = r.assert_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_NOT_CONFIGURED");
    assert_eq!(body["details"].as_array().unwrap().len(), 1);

    let h = Harness::plain();
    let r = h
        .send(request("POST", "/v1.0/publish/nope/t", None, "x"))
        .await;
    let body = r.assert_error(StatusCode::NOT_FOUND, "ERR_PUBSUB_NOT_FOUND");
    assert_eq!(body["message"], "pubsub nope is not found");
    assert_eq!(body["details"][0]["reason"], "DAPR_PUBSUB_NOT_FOUND");
    assert_eq!(
        body["details"].as_array().unwrap().len(),
        1,
        "no ResourceInfo"
    );

    let r = h
        .send(request("POST", "/v1.0/publish/ps/", None, "x"))
        .await;
    r.assert_error(StatusCode::NOT_FOUND, "ERR_TOPIC_NAME_EMPTY");
    let r = h.send(request("POST", "/v1.0/publish//t", None, "x")).await;
    r.assert_error(StatusCode::NOT_FOUND, "ERR_PUBSUB_EMPTY");
    let r = h.send(request("POST", "/v1.0/publish/", None, "x")).await;
    r.assert_error(StatusCode::NOT_FOUND, "ERR_PUBSUB_EMPTY");

    let r = h
        .send(request(
            "POST",
            "/v1.0/publish/ps/t?metadata.rawPayload=foo",
            None,
            "x",
        ))
        .await;
    let body = r.assert_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_REQUEST_METADATA");
    assert_eq!(
        body["details"][0]["reason"],
        "DAPR_PUBSUB_METADATA_DESERIALIZATION"
    );
}

#[tokio::test]
async fn scopes_forbid_with_resource_info() {
    let h = Harness::with(settings(), &[("publishingScopes", "checkout=allowed")]);
    let r = h
        .send(request("POST", "/v1.0/publish/ps/secret", None, "x"))
        .await;
    let body = r.assert_error(StatusCode::FORBIDDEN, "ERR_PUBSUB_FORBIDDEN");
    assert_eq!(
        body["message"],
        "topic secret is not allowed for app id checkout"
    );
    assert_eq!(body["details"][0]["reason"], "DAPR_PUBSUB_FORBIDDEN");
    let res = &body["details"][1];
    assert_eq!(res["@type"], "type.googleapis.com/google.rpc.ResourceInfo");
    assert_eq!(res["resource_type"], "pubsub");
    assert_eq!(res["resource_name"], "ps");
    assert_eq!(res["owner"], "");
    let r = h
        .send(request("POST", "/v1.0/publish/ps/allowed", None, "x"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn component_failure_is_500_with_daprd_message() {
    let h = Harness::with_bus(settings(), &[], Flaky::new(Vec::new()));
    let r = h
        .send(request(
            "POST",
            "/v1.0/publish/ps/t?metadata.fail=yes",
            Some("text/plain"),
            "x",
        ))
        .await;
    let body = r.assert_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_PUBSUB_PUBLISH_MESSAGE",
    );
    assert_eq!(
        body["message"],
        "error when publishing to topic t in pubsub ps: rejected by broker: refused t"
    );
    assert_eq!(body["details"][0]["metadata"]["topic"], "t");
    assert_eq!(body["details"][1]["resource_name"], "ps");
}

#[tokio::test]
async fn an_invalid_app_cloudevent_is_a_cloudevent_error() {
    let h = Harness::plain();
    let r = h
        .send(request(
            "POST",
            "/v1.0/publish/ps/t",
            Some("application/cloudevents+json"),
            "not json",
        ))
        .await;
    r.assert_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_PUBSUB_CLOUD_EVENTS_SER",
    );
}

#[tokio::test]
async fn body_limit_is_enforced_at_the_byte() {
    let limit = 1024;
    let h = Harness::with(
        sidebus::config::Settings {
            max_body_size: limit,
            ..settings()
        },
        &[],
    );
    let topic = unique("size");
    let (rec, _sub) = h.listen(&topic).await;
    let r = h
        .send(request(
            "POST",
            &url(&topic, ""),
            Some("text/plain"),
            vec![b'a'; limit],
        ))
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "exactly the limit is fine"
    );
    let r = h
        .send(request(
            "POST",
            &url(&topic, ""),
            Some("text/plain"),
            vec![b'a'; limit + 1],
        ))
        .await;
    let body = r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "ERR_BODY_TOO_LARGE");
    assert!(body["message"].as_str().unwrap().contains("1024"), "{body}");
    rec.wait_for("the event under the limit", |r| r.distinct() == 1)
        .await;
    assert_eq!(
        rec.deliveries().len(),
        1,
        "the oversized event never reached the broker"
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let h = Harness::plain();
    let r = h.send(request("GET", "/v1.0/nothing", None, "")).await;
    r.assert_error(StatusCode::NOT_FOUND, "ERR_ROUTE_NOT_FOUND");
    let r = h.send(request("GET", "/v1.0/publish/ps/t", None, "")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_default_limit_is_daprd_4_mib_not_axum_2_mib() {
    let h = Harness::plain();
    let r = h
        .send(request(
            "POST",
            "/v1.0/publish/ps/big",
            Some("text/plain"),
            vec![b'a'; 3 << 20],
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .send(request(
            "POST",
            "/v1.0/publish/ps/big",
            Some("text/plain"),
            vec![b'a'; (4 << 20) + 1],
        ))
        .await;
    r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "ERR_BODY_TOO_LARGE");
}

/// What the broker would refuse is refused before anything is stored, as
/// 400 with daprd's metadata error (or a topic error), never a 500 after
/// the fact — and, with an outbox in front, never a 204 for an event the
/// forwarder would then have to drop. RabbitMQ's checks need no I/O, so no
/// broker has to be reachable for these answers.
#[cfg(feature = "rabbitmq")]
#[tokio::test]
async fn what_the_broker_would_refuse_is_a_400_before_anything_is_stored() {
    let h = Harness::with_bus(settings(), &[], super::unreachable_rabbitmq());
    let long_key = "k".repeat(300);
    for query in [
        "?metadata.priority=999".to_string(),
        "?metadata.ttlInSeconds=9223372036854775807".to_string(),
        format!("?metadata.{long_key}=1"),
    ] {
        let r = h
            .send(request(
                "POST",
                &url("orders", &query),
                Some("text/plain"),
                "x",
            ))
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_REQUEST_METADATA");
    }
    let r = h
        .send(request(
            "POST",
            &url(&"t".repeat(300), ""),
            Some("text/plain"),
            "x",
        ))
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_TOPIC_INVALID");
}
