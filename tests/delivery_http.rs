//! The delivery layer end to end: the in-memory broker, a `DeliveryManager`
//! with the HTTP app channel, and a real axum app on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;

use sidebus::broker::in_memory::InMemory;
use sidebus::config::model::{BulkSubscribe, RouteRule, SubscriptionKind, SubscriptionSpec};
use sidebus::delivery::{discover_http, merge, SubscriptionStats};
use support::*;

/// Waits until `dlq` holds `n` dead letters, failing if it got more.
async fn dead_letters(dlq: &Collector, n: usize) {
    let got = assert_eventually!(
        format!("{n} dead letters (observed: how many)"),
        WAIT,
        dlq.all().len(),
        |got: &usize| *got >= n
    );
    assert_eq!(got, n, "dead letters");
}

/// Answers `first` to the first request and SUCCESS afterwards.
async fn answer_case(
    status: u16,
    body: &'static str,
) -> (Vec<Recorded>, SubscriptionStats, TestApp) {
    let app = TestApp::start(script(move |_, prev| {
        if prev.is_empty() {
            Answer::new(status, body)
        } else {
            Answer::success()
        }
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/orders")],
            None,
            &[("retryInitialInterval", "10ms")],
        )])
        .await;
    sc.publish("t", ce("e1", "t", "order", json!({"n": 1})), None)
        .await;
    let stats = sc.wait_stats("t", |s| s.delivered + s.dropped == 1).await;
    // Nothing may follow a settled event. The dispatcher retries only before
    // it settles, and the broker redelivers only what was handed back to it
    // (`handed_back`); a marker behind the event shows the counters are
    // final: it is settled after everything the subscription did for e1.
    sc.publish("t", ce("marker", "t", "marker", json!(null)), None)
        .await;
    let after = sc.wait_stats("t", |s| s.delivered + s.dropped == 2).await;
    assert_eq!(after.handed_back, 0, "e1 was handed back for redelivery");
    assert_eq!(
        (after.retries, after.dropped, after.delivered),
        (stats.retries, stats.dropped, stats.delivered + 1),
        "only the marker was processed after e1 settled"
    );
    sc.manager.shutdown(Duration::from_secs(1)).await;
    let reqs = app
        .requests()
        .into_iter()
        .filter(|r| r.json()["id"] != "marker")
        .collect();
    (reqs, stats, app)
}

#[tokio::test]
async fn success_answers_ack_once_with_headers_and_verbatim_body() {
    for (status, body) in [
        (200, r#"{"status":"SUCCESS"}"#),
        (200, ""),
        (200, "not json"),
        (204, ""),
        (200, r#"{"status":""}"#),
    ] {
        let (reqs, stats, _app) = answer_case(status, body).await;
        assert_eq!(reqs.len(), 1, "{status} {body:?}");
        assert_eq!(
            (stats.delivered, stats.retries),
            (1, 0),
            "{status} {body:?}"
        );
        let r = &reqs[0];
        assert_eq!(r.path, "/orders");
        assert_eq!(
            r.body,
            ce("e1", "t", "order", json!({"n": 1})),
            "body is the broker bytes"
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/cloudevents+json")
        );
        assert_eq!(r.header("pubsubname"), Some("pubsub"));
        assert_eq!(r.header("x-origin"), Some("test"));
        assert_eq!(
            r.header("traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(r.header("tracestate"), Some("vendor=1"));
        assert_eq!(r.header("dapr-api-token"), None);
    }
}

#[tokio::test]
async fn retry_answers_are_retried_in_process() {
    for (status, body) in [
        (200, r#"{"status":"RETRY"}"#),
        (200, r#"{"status":"success"}"#),
        (200, r#"{"status":"MAYBE"}"#),
        (500, ""),
        (503, r#"{"status":"SUCCESS"}"#),
    ] {
        let (reqs, stats, _app) = answer_case(status, body).await;
        assert_eq!(reqs.len(), 2, "{status} {body:?}");
        assert_eq!(
            (stats.delivered, stats.retries, stats.dropped),
            (1, 1, 0),
            "{status} {body:?}"
        );
    }
}

#[tokio::test]
async fn drop_answers_ack_without_redelivery() {
    for (status, body) in [
        (200, r#"{"status":"DROP"}"#),
        (404, ""),
        (404, r#"{"status":"SUCCESS"}"#),
    ] {
        let (reqs, stats, _app) = answer_case(status, body).await;
        assert_eq!(reqs.len(), 1, "{status} {body:?}");
        assert_eq!(
            (stats.delivered, stats.dropped, stats.retries),
            (0, 1, 0),
            "{status} {body:?}"
        );
    }
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_app_appears() {
    let port = free_port().await;
    let mut s = settings(port);
    s.app_api_token = Some("app-secret".into());
    let sc = sidecar_with(s, Arc::new(InMemory::new()));
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/late")],
            None,
            &[
                ("retryInitialInterval", "10ms"),
                ("retryMaxInterval", "50ms"),
            ],
        )])
        .await;
    sc.publish("t", ce("e1", "t", "order", json!(1)), None)
        .await;
    sc.wait_stats("t", |s| s.retries >= 3).await;
    assert_eq!(sc.stats("t").delivered, 0);
    let app = TestApp::start_on(port, script(|_, _| Answer::success())).await;
    sc.wait_stats("t", |s| s.delivered == 1).await;
    let reqs = app.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("dapr-api-token"), Some("app-secret"));
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn dead_letters_carry_original_bytes_and_reason_headers() {
    let app = TestApp::start(script(|r, _| match data_of(r)["mode"].as_str() {
        Some("drop") => Answer::new(200, r#"{"status":"DROP"}"#),
        _ => Answer::new(500, "boom"),
    }))
    .await;
    let sc = sidecar(app.port);
    let dlq = sc.collect("poison").await;
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/x")],
            Some("poison"),
            &[("maxRetries", "2"), ("retryInitialInterval", "5ms")],
        )])
        .await;
    let dropped = ce("d1", "t", "order", json!({"mode": "drop"}));
    let failing = ce("f1", "t", "order", json!({"mode": "fail"}));
    sc.publish("t", dropped.clone(), Some("k1")).await;
    sc.publish("t", failing.clone(), Some("k2")).await;
    dead_letters(&dlq, 2).await;
    let letters = dlq.all();
    let find = |data: &Bytes| {
        letters
            .iter()
            .find(|m| m.data == *data)
            .expect("dead letter with original bytes")
    };
    let d = find(&dropped);
    assert_eq!(d.metadata["deadLetterReason"], "dropped");
    assert_eq!(d.metadata["deadLetterAttempts"], "1");
    assert_eq!(d.metadata["deadLetterSourceTopic"], "t");
    assert!(d.metadata["deadLetterError"].contains("DROP"));
    assert_eq!(d.metadata["x-origin"], "test", "original metadata kept");
    assert_eq!(d.key.as_deref(), Some("k1"));
    let f = find(&failing);
    assert_eq!(f.metadata["deadLetterReason"], "retries-exhausted");
    assert_eq!(f.metadata["deadLetterAttempts"], "3");
    assert!(f.metadata["deadLetterError"].contains("500"));
    sc.wait_stats("t", |s| s.dead_lettered == 2).await;
    assert_eq!(
        app.count(),
        1 + 3,
        "one DROP attempt, three failing attempts"
    );
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn routing_rules_default_and_no_match() {
    let app = TestApp::start(script(|_, _| Answer::success())).await;
    let sc = sidecar(app.port);
    let dlq = sc.collect("unrouted").await;
    sc.manager
        .start(vec![
            spec(
                "a",
                &[(r#"event.type == "widget""#, "/widgets"), ("", "/other")],
                None,
                &[],
            ),
            spec(
                "b",
                &[(r#"event.type == "gadget""#, "gadgets")],
                Some("unrouted"),
                &[],
            ),
        ])
        .await;
    sc.publish("a", ce("1", "a", "widget", json!(1)), None)
        .await;
    sc.publish("a", ce("2", "a", "thing", json!(2)), None).await;
    sc.publish("b", ce("3", "b", "gadget", json!(3)), None)
        .await;
    let unrouted = ce("4", "b", "thing", json!(4));
    sc.publish("b", unrouted.clone(), None).await;
    dead_letters(&dlq, 1).await;
    let reqs = app.wait_for(3, WAIT).await;
    let mut paths: Vec<(String, String)> = reqs
        .iter()
        .map(|r| (r.json()["id"].as_str().unwrap().to_string(), r.path.clone()))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            ("1".into(), "/widgets".into()),
            ("2".into(), "/other".into()),
            ("3".into(), "/gadgets".into())
        ]
    );
    let letter = &dlq.all()[0];
    assert_eq!(letter.data, unrouted);
    assert_eq!(letter.metadata["deadLetterReason"], "no-route");
    assert_eq!(letter.metadata["deadLetterAttempts"], "0");
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn undecodable_and_expired_events_are_dropped_and_counted() {
    let app = TestApp::start(script(|_, _| Answer::success())).await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec("t", &[("", "/x")], None, &[])])
        .await;
    sc.publish("t", Bytes::from_static(b"not a cloudevent"), None)
        .await;
    let mut expired: serde_json::Value =
        serde_json::from_slice(&ce("old", "t", "x", json!(1))).unwrap();
    expired["expiration"] = json!("2001-01-01T00:00:00Z");
    sc.publish("t", Bytes::from(expired.to_string()), None)
        .await;
    sc.publish("t", ce("ok", "t", "x", json!(1)), None).await;
    sc.wait_stats("t", |s| s.dropped == 2 && s.delivered == 1)
        .await;
    assert_eq!(app.count(), 1);
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn raw_payload_subscription_gets_a_synthesized_cloudevent() {
    let app = TestApp::start(script(|_, _| Answer::success())).await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec(
            "raw",
            &[("", "/raw")],
            None,
            &[("rawPayload", "true")],
        )])
        .await;
    sc.publish("raw", Bytes::from_static(b"\x00hello"), None)
        .await;
    let reqs = app.wait_for(1, WAIT).await;
    let ev = reqs[0].json();
    assert_eq!(
        reqs[0].header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(ev["data_base64"], "AGhlbGxv");
    assert_eq!(ev["datacontenttype"], "application/octet-stream");
    assert_eq!(ev["topic"], "raw");
    assert_eq!(ev["pubsubname"], "pubsub");
    assert_eq!(ev["source"], "Dapr");
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

fn bulk_spec(topic: &str, count: u32, await_ms: u64, md: &[(&str, &str)]) -> SubscriptionSpec {
    let mut s = spec(
        topic,
        &[(r#"event.type == "b""#, "/bulk-b"), ("", "/bulk")],
        None,
        md,
    );
    s.bulk = BulkSubscribe {
        enabled: true,
        max_messages_count: count,
        max_await_duration_ms: await_ms,
    };
    s
}

/// The entries of a bulk request as (entryId, CE id).
fn entries(r: &Recorded) -> Vec<(String, String)> {
    r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entryId"].as_str().unwrap().to_string(),
                e["event"]["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn bulk_groups_by_path_and_maps_entry_statuses() {
    // e-ok SUCCESS, e-drop DROP, e-retry RETRY once, e-missing no status once.
    let app = TestApp::start(script(|r, prev| {
        let first = prev.is_empty();
        let statuses: Vec<_> = entries(r)
            .into_iter()
            .filter_map(|(entry, id)| {
                let status = match id.as_str() {
                    "e-drop" => "DROP",
                    "e-retry" if first => "RETRY",
                    "e-missing" if first => return None,
                    "e-empty" if first => "",
                    _ => "SUCCESS",
                };
                Some(json!({"entryId": entry, "status": status}))
            })
            .collect();
        Answer::new(200, &json!({ "statuses": statuses }).to_string())
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![bulk_spec(
            "t",
            5,
            2_000,
            &[("retryInitialInterval", "10ms")],
        )])
        .await;
    for id in ["e-ok", "e-drop", "e-retry", "e-missing", "e-empty"] {
        sc.publish("t", ce(id, "t", "a", json!(id)), None).await;
    }
    sc.wait_stats("t", |s| s.delivered == 4 && s.dropped == 1)
        .await;
    let reqs = app.requests();
    assert_eq!(
        reqs.len(),
        2,
        "one batch, then one retry of the pending entries"
    );
    let first = reqs[0].json();
    assert_eq!(reqs[0].path, "/bulk");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(first["type"], "com.dapr.event.sent.bulk");
    assert_eq!(first["topic"], "t");
    assert_eq!(first["pubsubname"], "pubsub");
    assert_eq!(
        first["entries"][0]["contentType"],
        "application/cloudevents+json"
    );
    assert_eq!(first["entries"][0]["metadata"]["x-origin"], "test");
    let ids = |r: &Recorded| entries(r).into_iter().map(|(_, id)| id).collect::<Vec<_>>();
    assert_eq!(
        ids(&reqs[0]),
        ["e-ok", "e-drop", "e-retry", "e-missing", "e-empty"]
    );
    assert_eq!(ids(&reqs[1]), ["e-retry", "e-missing", "e-empty"]);
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bulk_whole_request_answers_and_paths() {
    // Path /bulk-b answers 404 (all dropped); /bulk answers garbage once
    // (all retried), then SUCCESS for everything.
    let app = TestApp::start(script(|r, prev| {
        if r.path == "/bulk-b" {
            return Answer::new(404, "");
        }
        if prev.iter().all(|p| p.path != "/bulk") {
            return Answer::new(200, "garbage");
        }
        let statuses: Vec<_> = entries(r)
            .into_iter()
            .map(|(e, _)| json!({"entryId": e, "status": "SUCCESS"}))
            .collect();
        Answer::new(200, &json!({ "statuses": statuses }).to_string())
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![bulk_spec(
            "t",
            100,
            100,
            &[("retryInitialInterval", "10ms")],
        )])
        .await;
    for (id, kind) in [("1", "a"), ("2", "b"), ("3", "a"), ("4", "b")] {
        sc.publish("t", ce(id, "t", kind, json!(id)), None).await;
    }
    sc.wait_stats("t", |s| s.delivered == 2 && s.dropped == 2)
        .await;
    let reqs = app.requests();
    let b: Vec<_> = reqs.iter().filter(|r| r.path == "/bulk-b").collect();
    let a: Vec<_> = reqs.iter().filter(|r| r.path == "/bulk").collect();
    assert_eq!(b.len(), 1, "404 drops every entry at once");
    assert_eq!(entries(b[0]).len(), 2);
    assert_eq!(a.len(), 2, "unparseable 2xx retries every entry");
    assert_eq!(entries(a[1]).len(), 2);
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bulk_raw_payload_entries_are_base64() {
    let app = TestApp::start(script(|r, _| {
        let statuses: Vec<_> = entries(r)
            .into_iter()
            .map(|(e, _)| json!({"entryId": e, "status": "SUCCESS"}))
            .collect();
        Answer::new(200, &json!({ "statuses": statuses }).to_string())
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![bulk_spec("t", 2, 2_000, &[("rawPayload", "true")])])
        .await;
    sc.publish("t", Bytes::from_static(b"one"), None).await;
    sc.publish("t", Bytes::from_static(b"two"), None).await;
    sc.wait_stats("t", |s| s.delivered == 2).await;
    let body = app.requests()[0].json();
    assert_eq!(body["entries"][0]["event"], "b25l");
    assert_eq!(body["entries"][1]["event"], "dHdv");
    assert_eq!(
        body["entries"][0]["contentType"],
        "application/octet-stream"
    );
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn same_key_in_order_even_across_retries_different_keys_in_parallel() {
    // Every request takes 40 ms; the first attempt of a-0 is answered RETRY.
    let app = TestApp::start(script(|r, prev| {
        let d = data_of(r);
        let seen_before = prev.iter().any(|p| data_of(p) == d);
        if d == json!("a-0") && !seen_before {
            return Answer::new(200, r#"{"status":"RETRY"}"#).after(Duration::from_millis(40));
        }
        Answer::success().after(Duration::from_millis(40))
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/o")],
            None,
            &[("retryInitialInterval", "30ms")],
        )])
        .await;
    for i in 0..5 {
        for key in ["a", "b", "c"] {
            let id = format!("{key}-{i}");
            sc.publish("t", ce(&id, "t", "x", json!(id)), Some(key))
                .await;
        }
    }
    sc.wait_stats("t", |s| s.delivered == 15).await;
    let reqs = app.requests();
    for key in ["a", "b", "c"] {
        let order: Vec<String> = reqs
            .iter()
            .map(|r| data_of(r).as_str().unwrap().to_string())
            .filter(|d| d.starts_with(key))
            .collect();
        let mut expected: Vec<String> = (0..5).map(|i| format!("{key}-{i}")).collect();
        if key == "a" {
            expected.insert(0, "a-0".into());
        }
        assert_eq!(order, expected, "lane {key}");
    }
    assert!(
        app.peak() >= 2,
        "different keys run in parallel (peak {})",
        app.peak()
    );
    assert!(
        app.peak() <= 3,
        "one at a time per key (peak {})",
        app.peak()
    );
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn slow_app_never_sees_more_than_max_in_flight() {
    let app = TestApp::start(script(|_, _| {
        Answer::success().after(Duration::from_millis(30))
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec(
            "t",
            &[("", "/slow")],
            None,
            &[("maxInFlight", "3"), ("ordering", "none")],
        )])
        .await;
    for i in 0..30 {
        sc.publish("t", ce(&i.to_string(), "t", "x", json!(i)), None)
            .await;
    }
    sc.wait_stats("t", |s| s.delivered == 30).await;
    assert_eq!(app.peak(), 3, "bound reached and never exceeded");
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn app_max_concurrency_caps_all_subscriptions_together() {
    let app = TestApp::start(script(|_, _| {
        Answer::success().after(Duration::from_millis(30))
    }))
    .await;
    let mut s = settings(app.port);
    s.app_max_concurrency = 2;
    let sc = sidecar_with(s, Arc::new(InMemory::new()));
    let md = [("maxInFlight", "10"), ("ordering", "none")];
    sc.manager
        .start(vec![
            spec("t1", &[("", "/1")], None, &md),
            spec("t2", &[("", "/2")], None, &md),
        ])
        .await;
    for i in 0..10 {
        sc.publish("t1", ce(&i.to_string(), "t1", "x", json!(i)), None)
            .await;
        sc.publish("t2", ce(&i.to_string(), "t2", "x", json!(i)), None)
            .await;
    }
    sc.wait_stats("t1", |s| s.delivered == 10).await;
    sc.wait_stats("t2", |s| s.delivered == 10).await;
    assert_eq!(app.peak(), 2);
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retry_backoff_grows_is_capped_and_is_counted() {
    let app = TestApp::start(script(|_, _| Answer::new(500, ""))).await;
    let sc = sidecar(app.port);
    let md = [
        ("retryInitialInterval", "50ms"),
        ("retryMaxInterval", "100ms"),
        ("maxRetries", "4"),
    ];
    sc.manager
        .start(vec![spec("t", &[("", "/fail")], None, &md)])
        .await;
    sc.publish("t", ce("e", "t", "x", json!(1)), None).await;
    // Snapshot the moment the event is handed back: the broker then
    // redelivers it and the counters move on.
    let stats = sc.wait_stats("t", |s| s.handed_back == 1).await;
    let reqs = app.requests();
    assert!(reqs.len() >= 5);
    let gaps: Vec<Duration> = reqs.windows(2).take(4).map(|w| w[1].at - w[0].at).collect();
    assert_eq!(
        (stats.retries, stats.delivered, stats.dead_lettered),
        (4, 0, 0)
    );
    // 50 ms ±20%, then 100 ms ±20% (capped; uncapped would reach 400 ms).
    assert!(gaps[0] >= Duration::from_millis(40), "{gaps:?}");
    for g in &gaps[1..] {
        assert!(*g >= Duration::from_millis(80), "{gaps:?}");
        assert!(
            *g < Duration::from_millis(300),
            "capped at 100 ms: {gaps:?}"
        );
    }
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_abandons_retries_without_dead_letters() {
    // "slow" is at the app when shutdown starts and finishes within grace;
    // "flaky" is between retries and must be abandoned, not dead-lettered.
    let app = TestApp::start(script(|r, _| match data_of(r).as_str() {
        Some("slow") => Answer::success().after(Duration::from_millis(800)),
        _ => Answer::new(500, ""),
    }))
    .await;
    let bus = Arc::new(InMemory::new());
    let sc = sidecar_with(settings(app.port), bus.clone());
    let dlq = sc.collect("dlq").await;
    let md = [("retryInitialInterval", "200ms"), ("maxRetries", "100")];
    sc.manager
        .start(vec![spec("t", &[("", "/s")], Some("dlq"), &md)])
        .await;
    sc.publish("t", ce("slow", "t", "x", json!("slow")), Some("1"))
        .await;
    sc.publish("t", ce("flaky", "t", "x", json!("flaky")), Some("2"))
        .await;
    sc.wait_stats("t", |s| s.retries >= 1).await;
    app.wait_for(2, WAIT).await;
    let started = Instant::now();
    sc.manager.shutdown(Duration::from_secs(3)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "waited for the slow delivery: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "backoff cancelled, grace not used up: {took:?}"
    );
    let stats = sc.stats("t");
    assert_eq!(stats.delivered, 1, "in-flight delivery finished");
    assert_eq!(
        (stats.dead_lettered, stats.dropped, stats.handed_back),
        (0, 0, 0)
    );
    assert!(dlq.all().is_empty());

    // The abandoned event is redelivered to the next sidecar on the same bus.
    let app2 = TestApp::start(script(|_, _| Answer::success())).await;
    let next = sidecar_with(settings(app2.port), bus);
    next.manager
        .start(vec![spec("t", &[("", "/s")], Some("dlq"), &md)])
        .await;
    let reqs = app2.wait_for(1, WAIT).await;
    assert_eq!(data_of(&reqs[0]), json!("flaky"));
    next.manager.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_grace_bounds_a_stuck_app() {
    let app = TestApp::start(script(|_, _| {
        Answer::success().after(Duration::from_secs(30))
    }))
    .await;
    let sc = sidecar(app.port);
    sc.manager
        .start(vec![spec("t", &[("", "/stuck")], Some("dlq"), &[])])
        .await;
    let dlq = sc.collect("dlq").await;
    sc.publish("t", ce("e", "t", "x", json!(1)), None).await;
    app.wait_for(1, WAIT).await;
    let started = Instant::now();
    sc.manager.shutdown(Duration::from_millis(200)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let stats = sc.stats("t");
    assert_eq!(
        (stats.delivered, stats.dead_lettered, stats.dropped),
        (0, 0, 0)
    );
    assert!(dlq.all().is_empty());
}

#[tokio::test]
async fn start_records_allowed_subscriptions_and_skips_the_rest() {
    let app = TestApp::start(script(|_, _| Answer::success())).await;
    let md = [("subscriptionScopes", "delivery-test=ok,also")];
    let sc = sidecar_with_metadata(settings(app.port), Arc::new(InMemory::new()), &md);
    let mut other_app = spec("also", &[("", "/x")], None, &[]);
    other_app.scopes = vec!["someone-else".into()];
    let mut unknown = spec("ok", &[("", "/x")], None, &[]);
    unknown.pubsub_name = "nope".into();
    sc.manager
        .start(vec![
            spec("ok", &[("", "/ok")], None, &[]),
            spec("forbidden", &[("", "/x")], None, &[]),
            other_app,
            unknown,
            spec("also", &[("", "/x")], None, &[("maxInFlight", "zero")]),
        ])
        .await;
    let recorded: Vec<String> = sc
        .runtime
        .subscriptions
        .read()
        .unwrap()
        .iter()
        .map(|s| format!("{}/{}", s.pubsub_name, s.topic))
        .collect();
    assert_eq!(recorded, ["pubsub/ok"]);
    sc.publish("ok", ce("1", "ok", "x", json!(1)), None).await;
    sc.publish("forbidden", ce("2", "forbidden", "x", json!(2)), None)
        .await;
    sc.wait_stats("ok", |s| s.delivered == 1).await;
    assert_eq!(sc.manager.stats().len(), 1);
    assert_eq!(app.count(), 1);
    sc.manager.shutdown(Duration::from_secs(1)).await;
}

const SUBSCRIBE_JSON: &str = r#"[
  {"pubsubname":"pubsub","topic":"v1","route":"/v1-orders","metadata":{"rawPayload":"true"}},
  {"pubsubname":"pubsub","topic":"v2","routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}],"default":"/d"},
   "deadLetterTopic":"dlq","bulkSubscribe":{"enabled":true,"maxMessagesCount":7,"maxAwaitDurationMs":40}},
  {"pubsubname":"pubsub","topic":"noroute"}
]"#;

#[tokio::test]
async fn discovery_reads_v1_and_v2_subscriptions() {
    let app = TestApp::start(script(|r, _| {
        if r.path == "/dapr/subscribe" {
            Answer::new(200, SUBSCRIBE_JSON)
        } else {
            Answer::new(500, "")
        }
    }))
    .await;
    let subs = discover_http(&settings(app.port), &Default::default()).await;
    assert_eq!(app.requests()[0].header("dapr-app-id"), Some(APP_ID));
    assert_eq!(subs.len(), 2, "the entry without a route is ignored");
    let v1 = &subs[0];
    assert_eq!(
        (v1.topic.as_str(), v1.kind),
        ("v1", SubscriptionKind::Programmatic)
    );
    assert_eq!(
        v1.rules,
        vec![RouteRule {
            match_expr: String::new(),
            path: "/v1-orders".into()
        }]
    );
    assert_eq!(v1.metadata["rawPayload"], "true");
    assert!(!v1.bulk.enabled && v1.dead_letter_topic.is_none());
    let v2 = &subs[1];
    assert_eq!(
        v2.rules,
        vec![
            RouteRule {
                match_expr: r#"event.type == "x""#.into(),
                path: "/x".into()
            },
            RouteRule {
                match_expr: String::new(),
                path: "/d".into()
            },
        ]
    );
    assert_eq!(v2.dead_letter_topic.as_deref(), Some("dlq"));
    assert_eq!(
        v2.bulk,
        BulkSubscribe {
            enabled: true,
            max_messages_count: 7,
            max_await_duration_ms: 40
        }
    );
}

#[tokio::test]
async fn discovery_404_means_none_and_5xx_is_retried() {
    let app = TestApp::start(script(|_, _| Answer::new(404, ""))).await;
    assert!(discover_http(&settings(app.port), &Default::default())
        .await
        .is_empty());
    assert_eq!(app.count(), 1, "404 is an answer, not retried");

    let app = TestApp::start(script(|_, prev| {
        if prev.is_empty() {
            Answer::new(503, "")
        } else {
            Answer::new(200, SUBSCRIBE_JSON)
        }
    }))
    .await;
    assert_eq!(
        discover_http(&settings(app.port), &Default::default())
            .await
            .len(),
        2
    );
    assert_eq!(app.count(), 2);
}

#[tokio::test]
async fn discovery_waits_for_a_late_app_port_and_can_be_cancelled() {
    let port = free_port().await;
    let task =
        tokio::spawn(async move { discover_http(&settings(port), &Default::default()).await });
    // The app comes up late (this delay is the scenario, not a wait for
    // anything). Discovery returns once, so getting the app's subscriptions
    // proves it kept waiting for the port instead of giving up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _app = TestApp::start_on(port, script(|_, _| Answer::new(200, SUBSCRIBE_JSON))).await;
    let subs = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert_eq!(subs.len(), 2);

    let cancel = tokio_util::sync::CancellationToken::new();
    let waiting = {
        let cancel = cancel.clone();
        let port = free_port().await;
        tokio::spawn(async move { discover_http(&settings(port), &cancel).await })
    };
    cancel.cancel();
    assert!(tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .is_empty());
}

#[test]
fn merge_programmatic_replaces_declarative_for_the_same_topic() {
    let mut prog_a = spec("a", &[("", "/prog-a")], None, &[]);
    prog_a.kind = SubscriptionKind::Programmatic;
    let mut prog_c = spec("c", &[("", "/prog-c")], None, &[]);
    prog_c.kind = SubscriptionKind::Programmatic;
    let decl_a = spec("a", &[("", "/decl-a")], None, &[]);
    let decl_b = spec("b", &[("", "/decl-b")], None, &[]);
    let decl_b_again = spec("b", &[("", "/decl-b2")], None, &[]);
    let mut other_pubsub_a = spec("a", &[("", "/other")], None, &[]);
    other_pubsub_a.pubsub_name = "other".into();
    let merged = merge(
        vec![decl_a, decl_b, decl_b_again, other_pubsub_a],
        vec![prog_a, prog_c],
    );
    let paths: Vec<&str> = merged.iter().map(|s| s.rules[0].path.as_str()).collect();
    assert_eq!(paths, ["/decl-b", "/other", "/prog-a", "/prog-c"]);
}
