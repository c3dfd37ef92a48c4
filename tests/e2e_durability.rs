//! Durability of the default (embedded) broker through the real binary:
//! SIGKILL during concurrent publishing loses no acknowledged event, and a
//! graceful shutdown leaves unfinished deliveries for redelivery instead of
//! dropping them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::process::{events, request, subscriber, wait_events, SidecarProcess as Sidecar};
use support::{assert_eventually, Answer, Script, TestApp};

fn orders() -> serde_json::Value {
    json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
}

fn id_of(r: &support::Recorded) -> String {
    r.json()["data"]["id"]
        .as_str()
        .expect("event id")
        .to_string()
}

/// 8 publishers hammer the sidecar; it is SIGKILLed mid-stream; after a
/// restart every publish that was answered 204 reaches the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_publishing_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = Sidecar::start_in(&["--app-id", "crash"], Some(dir.path()));
    sc.wait_status("/v1.0/healthz/outbound", 204).await;

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let url = sc.url("/v1.0/publish/pubsub/orders");
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (acked, url) = (acked.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for seq in 0.. {
                let id = format!("w{worker}-{seq}");
                let body = json!({ "id": id }).to_string();
                match request("POST", &url, &[("content-type", "application/json")], body).await {
                    Ok(r) if r.status == 204 => {
                        acked.lock().unwrap().insert(id);
                    }
                    _ => return, // the sidecar is gone
                }
            }
        }));
    }
    assert_eventually!(
        "400 acknowledged publishes",
        acked.lock().unwrap().len(),
        |n: &usize| *n >= 400
    );
    sc.child.kill().expect("SIGKILL the sidecar");
    sc.child.wait().expect("reap");
    for t in tasks {
        t.await.unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().clone();

    let app = TestApp::start(subscriber(orders(), Arc::new(|_, _| Answer::success()))).await;
    let port = app.port.to_string();
    let sc = Sidecar::start_in(
        &["--app-id", "crash", "--app-port", &port],
        Some(dir.path()),
    );
    sc.wait_status("/v1.0/healthz", 204).await;
    assert_eventually!(
        "every acknowledged publish after the restart (observed: how many missing)",
        {
            let got: BTreeSet<String> = events(app.requests()).iter().map(id_of).collect();
            acked.difference(&got).count()
        },
        |missing: &usize| *missing == 0
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in events(app.requests()) {
        *counts.entry(id_of(&r)).or_default() += 1;
    }
    let lost = acked.iter().filter(|id| !counts.contains_key(*id)).count();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "sigkill: acknowledged={} delivered={} lost={lost} duplicates={duplicates}",
        acked.len(),
        counts.len()
    );
    assert_eq!(lost, 0);
}

/// A delivery finished before SIGTERM is acknowledged (not redelivered after
/// a restart); one still running when the grace period ends is left
/// unacknowledged and redelivered after the restart — never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_acks_finished_work_and_redelivers_unfinished_work() {
    let dir = tempfile::tempdir().unwrap();
    // "slow" events take 4 s, longer than the 1 s grace period.
    let script: Script = Arc::new(|req, _| {
        if req.body.windows(4).any(|w| w == b"slow") {
            Answer::success().after(Duration::from_secs(4))
        } else {
            Answer::success()
        }
    });
    let app = TestApp::start(subscriber(orders(), script.clone())).await;
    let port = app.port.to_string();
    let args = [
        "--app-id",
        "graceful",
        "--app-port",
        &port,
        "--dapr-graceful-shutdown-seconds",
        "1",
    ];
    let mut sc = Sidecar::start_in(&args, Some(dir.path()));
    sc.wait_status("/v1.0/healthz", 204).await;
    let publish = |sc: &Sidecar, id: &str| {
        let url = sc.url("/v1.0/publish/pubsub/orders");
        let body = json!({ "id": id }).to_string();
        async move {
            let r = request("POST", &url, &[("content-type", "application/json")], body)
                .await
                .unwrap();
            assert_eq!(r.status, 204);
        }
    };
    publish(&sc, "fast").await;
    wait_events(&app, 1).await;
    publish(&sc, "slow").await;
    wait_events(&app, 2).await;
    sc.terminate();
    assert_eq!(sc.wait_exit(Duration::from_secs(10)).await.code(), Some(0));
    drop(app);

    let app = TestApp::start(subscriber(orders(), Arc::new(|_, _| Answer::success()))).await;
    let port = app.port.to_string();
    let args = ["--app-id", "graceful", "--app-port", &port];
    let sc = Sidecar::start_in(&args, Some(dir.path()));
    sc.wait_status("/v1.0/healthz", 204).await;
    publish(&sc, "marker").await;
    assert_eventually!(
        "the marker and the slow event (observed: event ids)",
        events(app.requests())
            .iter()
            .map(id_of)
            .collect::<Vec<String>>(),
        |ids: &Vec<String>| ids.iter().any(|i| i == "marker") && ids.iter().any(|i| i == "slow")
    );
    let ids: Vec<String> = events(app.requests()).iter().map(id_of).collect();
    assert!(
        !ids.contains(&"fast".to_string()),
        "a finished event was redelivered: {ids:?}"
    );
}
