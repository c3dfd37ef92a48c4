//! End to end, as a user runs it: the real `sidebus` binary, a real HTTP app,
//! publishes over HTTP, and the process lifecycle (validation exit codes,
//! graceful shutdown).

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::process::{
    free_port_now as free_port, request, run_to_end, subscriber, wait_events,
    SidecarProcess as Sidecar,
};
use support::{Answer, Script, TestApp};

fn orders() -> serde_json::Value {
    json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
}

fn always(answer: Answer) -> Script {
    Arc::new(move |_, _| answer.clone())
}

/// The README's quick start: `sidebus --app-port P` and a curl publish; the
/// app receives the CloudEvent daprd would have delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_publish_reaches_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(subscriber(orders(), always(Answer::success()))).await;
    let port = app.port.to_string();
    let sc = Sidecar::start_in(
        &["--app-port", &port, "--app-id", "checkout"],
        Some(dir.path()),
    );
    sc.wait_status("/v1.0/healthz", 204).await;

    let r = request(
        "POST",
        &sc.url("/v1.0/publish/pubsub/orders"),
        &[("content-type", "application/json")],
        r#"{"id":1}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "publish answered {r:?}");
    assert!(r.body.is_empty());

    let got = wait_events(&app, 1).await;
    let ev = &got[0];
    assert_eq!(ev.path, "/orders");
    assert_eq!(ev.headers["content-type"], "application/cloudevents+json");
    let ce = ev.json();
    assert_eq!(ce["data"], json!({"id": 1}));
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["source"], "checkout");
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["topic"], "orders");
    assert_eq!(ce["pubsubname"], "pubsub");
    for field in ["id", "time", "traceid", "traceparent"] {
        assert!(ce[field].is_string(), "CloudEvent lacks {field}: {ce}");
    }
}

/// Declarative subscriptions from a resources folder are delivered, RETRY is
/// redelivered and the app's `/dapr/subscribe` is merged in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarative_subscription_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pubsub.yaml"),
        r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: bus
spec:
  type: pubsub.in-memory
  version: v1
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: widgets
spec:
  pubsubname: bus
  topic: widgets
  routes:
    rules:
      - match: event.data.kind == "big"
        path: /big
    default: /small
"#,
    )
    .unwrap();
    // The first event delivered is answered RETRY, every later one SUCCESS.
    let first_retry: Script = Arc::new(|_, earlier| {
        if support::process::events(earlier.to_vec()).is_empty() {
            Answer::new(200, r#"{"status":"RETRY"}"#)
        } else {
            Answer::success()
        }
    });
    let app = TestApp::start(subscriber(json!([]), first_retry)).await;
    let path = dir.path().to_str().unwrap().to_string();
    let port = app.port.to_string();
    let sc = Sidecar::start(&["--app-port", &port, "--resources-path", &path]);
    sc.wait_status("/v1.0/healthz", 204).await;

    for kind in ["big", "tiny"] {
        let body = json!({ "kind": kind }).to_string();
        let r = request(
            "POST",
            &sc.url("/v1.0/publish/bus/widgets"),
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 204);
    }
    let got = wait_events(&app, 3).await;
    let big: Vec<_> = got.iter().filter(|r| r.path == "/big").collect();
    let small: Vec<_> = got.iter().filter(|r| r.path == "/small").collect();
    assert!(
        !big.is_empty() && !small.is_empty(),
        "routes: {:?}",
        got.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // The first answer was RETRY, so one of the two was delivered twice with
    // the same CloudEvent id.
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 2, "ids {ids:?}");
}

/// `sidebus validate` lists every error and exits 78; valid samples pass.
#[test]
fn validate_lists_every_error_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: one
spec:
  type: pubsub.nosuchbroker
  version: v1
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: two
spec:
  pubsubname: missing
  topic: t
  routes:
    default: /x
"#,
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (status, _out, err) = run_to_end(&["validate", "--resources-path", path]);
    assert_eq!(status.code(), Some(78), "stderr: {err}");
    assert!(err.contains("pubsub.nosuchbroker"), "stderr: {err}");
    assert!(err.contains("missing"), "stderr: {err}");

    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/components");
    let (status, out, err) = run_to_end(&["validate", "--resources-path", samples]);
    assert!(status.success(), "samples invalid: {err}");
    assert!(out.contains("ok: "), "{out}");
}

/// `run` with invalid resources exits 78 before binding any port.
#[test]
fn run_with_invalid_resources_exits_78_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "kind: Component\nmetadata: {name: x}\nspec: {type: pubsub.nope}\n",
    )
    .unwrap();
    let port = free_port();
    let path = dir.path().to_str().unwrap();
    let (status, _, err) = run_to_end(&[
        "--resources-path",
        path,
        "--dapr-http-port",
        &port.to_string(),
    ]);
    assert_eq!(status.code(), Some(78), "stderr: {err}");
    assert!(
        !err.contains("listening"),
        "bound a port before validating: {err}"
    );
}

/// SIGTERM and `/v1.0/shutdown` both end the process with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_by_signal_and_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = Sidecar::start_in(&[], Some(dir.path()));
    sc.wait_status("/v1.0/healthz/outbound", 204).await;
    sc.terminate();
    assert_eq!(sc.wait_exit(Duration::from_secs(10)).await.code(), Some(0));

    let mut sc = Sidecar::start_in(&[], Some(dir.path()));
    sc.wait_status("/v1.0/healthz", 204).await;
    let r = request("POST", &sc.url("/v1.0/shutdown"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(sc.wait_exit(Duration::from_secs(10)).await.code(), Some(0));
}

/// An event being handled when SIGTERM arrives is finished, not dropped or
/// dead-lettered; the process then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(subscriber(
        orders(),
        always(Answer::success().after(Duration::from_millis(1500))),
    ))
    .await;
    let port = app.port.to_string();
    let mut sc = Sidecar::start_in(&["--app-port", &port], Some(dir.path()));
    sc.wait_status("/v1.0/healthz", 204).await;
    let r = request(
        "POST",
        &sc.url("/v1.0/publish/pubsub/orders"),
        &[("content-type", "text/plain")],
        "hello",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204);
    wait_events(&app, 1).await;
    sc.terminate();
    assert_eq!(sc.wait_exit(Duration::from_secs(10)).await.code(), Some(0));
    assert_eq!(support::process::events(app.requests()).len(), 1);
}

/// A token or flag in the shell running the tests does not reach the
/// sidecars they start: the child's environment is cleared of every
/// variable the binary reads as a flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_environment_does_not_reach_test_sidecars() {
    // Only this test in this file sets these; every child is started with
    // them removed, so tests running alongside are not affected either.
    std::env::set_var("DAPR_API_TOKEN", "from-the-shell");
    std::env::set_var("SIDEBUS_APP_ID", "from-the-shell");
    let sc = Sidecar::start(&[]);
    std::env::remove_var("DAPR_API_TOKEN");
    std::env::remove_var("SIDEBUS_APP_ID");
    sc.wait_status("/v1.0/healthz", 204).await;
    let r = request("GET", &sc.url("/v1.0/metadata"), &[], Vec::new())
        .await
        .expect("metadata");
    assert_eq!(r.status, 200, "the API asked for a token: {:?}", r.body);
    assert_eq!(r.json()["id"], "sidebus", "{}", r.json());
}
