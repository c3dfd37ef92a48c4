//! Health, metadata, shutdown and the API token.

use http::StatusCode;
use serde_json::json;
use sidebus::config::model::{RouteRule, SubscriptionKind, SubscriptionSpec};
use sidebus::config::Settings;

use super::{request, settings, Flaky, Harness, APP_ID};

#[tokio::test]
async fn healthz_follows_readiness_and_app_id() {
    let h = Harness::plain();
    h.rt.readiness.set_app(false);
    h.rt.readiness.set_outbound(false);
    let r = h.send(request("GET", "/v1.0/healthz", None, "")).await;
    r.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_HEALTH_NOT_READY");
    let r = h
        .send(request("GET", "/v1.0/healthz/outbound", None, ""))
        .await;
    r.assert_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_OUTBOUND_HEALTH_NOT_READY",
    );

    h.rt.readiness.set_outbound(true);
    let r = h
        .send(request("GET", "/v1.0/healthz/outbound", None, ""))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h.send(request("GET", "/v1.0/healthz", None, "")).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "outbound alone is not full health"
    );

    h.rt.readiness.set_app(true);
    let r = h.send(request("GET", "/v1.0/healthz", None, "")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    let r = h
        .send(request(
            "GET",
            &format!("/v1.0/healthz?appid={APP_ID}"),
            None,
            "",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .send(request("GET", "/v1.0/healthz?appid=someone-else", None, ""))
        .await;
    r.assert_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_HEALTH_APPID_NOT_MATCH",
    );
}

#[tokio::test]
async fn metadata_has_daprd_shape_and_keeps_put_attributes() {
    let s = Settings {
        app_port: Some(6002),
        app_max_concurrency: 8,
        ..settings()
    };
    let h = Harness::with_bus(
        s,
        &[],
        Flaky::new(vec![sidebus::broker::Feature::BulkPublish]),
    );
    h.rt.subscriptions.write().unwrap().push(SubscriptionSpec {
        name: "orders-sub".into(),
        pubsub_name: "ps".into(),
        topic: "orders".into(),
        rules: vec![
            RouteRule {
                match_expr: "event.type == \"x\"".into(),
                path: "/x".into(),
            },
            RouteRule {
                match_expr: String::new(),
                path: "/orders".into(),
            },
        ],
        dead_letter_topic: Some("poison".into()),
        metadata: [("rawPayload".to_string(), "true".to_string())].into(),
        bulk: Default::default(),
        scopes: Vec::new(),
        kind: SubscriptionKind::Declarative,
    });
    let r = h
        .send(request(
            "PUT",
            "/v1.0/metadata/team",
            Some("text/plain"),
            "payments",
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let r = h.send(request("GET", "/v1.0/metadata", None, "")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    let md = r.json();
    let expected = json!({
        "id": APP_ID,
        "runtimeVersion": format!("sidebus {}", env!("CARGO_PKG_VERSION")),
        "extended": {"daprRuntimeVersion": "1.18.3", "team": "payments"},
        "components": [{"name": "ps", "type": "pubsub.in-memory", "version": "v1",
                        "capabilities": ["BULK_PUBSUB"]}],
        "subscriptions": [{
            "pubsubname": "ps", "topic": "orders", "metadata": {"rawPayload": "true"},
            "rules": [{"match": "event.type == \"x\"", "path": "/x"}, {"path": "/orders"}],
            "deadLetterTopic": "poison", "type": "DECLARATIVE"
        }],
        "appConnectionProperties": {"port": 6002, "protocol": "http",
                                    "channelAddress": "127.0.0.1", "maxConcurrency": 8},
    });
    assert_eq!(md, expected);
}

#[tokio::test]
async fn metadata_omits_empty_fields() {
    let h = Harness::plain();
    let md = h
        .send(request("GET", "/v1.0/metadata", None, ""))
        .await
        .json();
    assert!(md.get("subscriptions").is_none());
    assert!(md.get("enabledFeatures").is_none());
    assert!(md["components"][0].get("capabilities").is_none());
    let app = &md["appConnectionProperties"];
    assert!(app.get("port").is_none(), "no app port configured");
    assert!(app.get("maxConcurrency").is_none(), "unlimited is omitted");
    assert_eq!(app["protocol"], "http");
}

#[tokio::test]
async fn shutdown_cancels_the_right_token() {
    let h = Harness::plain();
    let r = h.send(request("POST", "/v1.0/shutdown", None, "")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(h.rt.shutdown.is_cancelled());
    assert!(!h.rt.force_shutdown.is_cancelled());

    let h = Harness::plain();
    let req = http::Request::builder()
        .method("POST")
        .uri("/v1.0/shutdown")
        .header("dapr-force-shutdown", "true")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::NO_CONTENT);
    assert!(h.rt.force_shutdown.is_cancelled());
    assert!(!h.rt.shutdown.is_cancelled());
}

fn with_token(method: &str, uri: &str, token: Option<&str>) -> http::Request<axum::body::Body> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "text/plain");
    if let Some(t) = token {
        b = b.header("dapr-api-token", t);
    }
    b.body(axum::body::Body::from("x")).unwrap()
}

#[tokio::test]
async fn api_token_guards_everything_but_healthz() {
    let h = Harness::with(
        Settings {
            api_token: Some("s3cret".into()),
            ..settings()
        },
        &[],
    );
    for uri in ["/v1.0/publish/ps/t", "/v1.0/shutdown"] {
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret ")] {
            let r = h.send(with_token("POST", uri, token)).await;
            let body = r.assert_error(StatusCode::UNAUTHORIZED, "ERR_UNAUTHORIZED");
            assert_eq!(body["error"], "invalid api token");
        }
    }
    let r = h.send(with_token("GET", "/v1.0/metadata", None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        !h.rt.shutdown.is_cancelled(),
        "refused shutdown did nothing"
    );

    let r = h
        .send(with_token("POST", "/v1.0/publish/ps/t", Some("s3cret")))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .send(with_token("GET", "/v1.0/metadata", Some("s3cret")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for uri in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let r = h.send(with_token("GET", uri, None)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{uri} is exempt");
    }
}

/// `/v1.0/healthz/outbound` answered 204 while the broker was unreachable,
/// and the first publish then waited seconds: outbound health now asks each
/// component (a component with an outbox accepts publishes anyway).
#[cfg(feature = "rabbitmq")]
#[tokio::test]
async fn outbound_health_is_not_ready_while_the_broker_is_unreachable() {
    let h = Harness::with_bus(settings(), &[], super::unreachable_rabbitmq());
    let r = h
        .send(request("GET", "/v1.0/healthz/outbound", None, ""))
        .await;
    let body = r.assert_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_OUTBOUND_HEALTH_NOT_READY",
    );
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("ps")),
        "{body}"
    );
    // A reachable component is outbound-ready, as before.
    let plain = Harness::plain();
    let r = plain
        .send(request("GET", "/v1.0/healthz/outbound", None, ""))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// Token coverage: every route of the HTTP API but the two health probes
/// is refused without the token, and a refused call changed nothing. A new
/// route belongs in this list.
#[tokio::test]
async fn every_route_is_refused_without_the_token() {
    let h = Harness::with(
        Settings {
            api_token: Some("s3cret".into()),
            ..settings()
        },
        &[],
    );
    let routes = [
        ("POST", "/v1.0/publish/ps/t"),
        ("PUT", "/v1.0/publish/ps/t"),
        ("POST", "/v1.0-alpha1/publish/bulk/ps/t"),
        ("PUT", "/v1.0-alpha1/publish/bulk/ps/t"),
        ("POST", "/v1.0/publish/bulk/ps/t"),
        ("PUT", "/v1.0/publish/bulk/ps/t"),
        ("GET", "/v1.0/metadata"),
        ("PUT", "/v1.0/metadata/k"),
        ("POST", "/v1.0/shutdown"),
        ("GET", "/v1.0/no-such-route"),
    ];
    for (method, uri) in routes {
        let r = h.send(with_token(method, uri, None)).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "ERR_UNAUTHORIZED");
    }
    assert!(
        !h.rt.shutdown.is_cancelled(),
        "a refused shutdown did nothing"
    );
    assert!(
        h.rt.extended_metadata.read().unwrap().is_empty(),
        "a refused PUT /v1.0/metadata did nothing"
    );
}
