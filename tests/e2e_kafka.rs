//! Two real `sidebus` processes in one Kafka consumer group (as two replicas
//! of an app): the partitions split between them; when one stops, the other
//! takes over; no acknowledged event is lost and duplicates stay bounded.
//! Needs `SIDEBUS_TEST_KAFKA_BROKERS` (set by `scripts/brokers/tansu.sh env`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::process::{events, request, subscriber, SidecarProcess as Sidecar, DEADLINE};
use support::{assert_eventually, Answer, Recorded, TestApp};

fn brokers() -> String {
    std::env::var("SIDEBUS_TEST_KAFKA_BROKERS").expect(
        "SIDEBUS_TEST_KAFKA_BROKERS is not set: run scripts/brokers/tansu.sh start and eval its env",
    )
}

fn resources(dir: &std::path::Path, group: &str) {
    let yaml = format!(
        r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: kafka
spec:
  type: pubsub.kafka
  version: v1
  metadata:
    - {{name: brokers, value: "{}"}}
    - {{name: consumerGroup, value: "{group}"}}
    - {{name: sessionTimeout, value: 6s}}
    - {{name: heartbeatInterval, value: 1s}}
    - {{name: partitions, value: "4"}}
    - {{name: fetchMaxWait, value: 10ms}}
"#,
        brokers()
    );
    std::fs::write(dir.join("kafka.yaml"), yaml).unwrap();
}

fn ids(reqs: Vec<Recorded>) -> Vec<String> {
    events(reqs)
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().expect("id").to_string())
        .collect()
}

async fn publish(sc: &Sidecar, topic: &str, id: &str) {
    let url = sc.url(&format!(
        "/v1.0/publish/kafka/{topic}?metadata.partitionKey={id}"
    ));
    let body = json!({ "id": id }).to_string();
    let r = request("POST", &url, &[("content-type", "application/json")], body)
        .await
        .unwrap();
    assert_eq!(r.status, 204, "publish {id}: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_split_partitions_and_take_over() {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (topic, group) = (format!("e2e-{}", &run[..10]), format!("g-{}", &run[..10]));
    let dir = tempfile::tempdir().unwrap();
    resources(dir.path(), &group);
    let subs = json!([{"pubsubname": "kafka", "topic": topic, "route": "/events"}]);
    let ok = || subscriber(subs.clone(), Arc::new(|_, _| Answer::success()));
    let (app_a, app_b) = (TestApp::start(ok()).await, TestApp::start(ok()).await);
    let res = dir.path().to_str().unwrap();
    let start = |port: u16| {
        let p = port.to_string();
        let data = tempfile::tempdir().unwrap();
        let sc = Sidecar::start_in(
            &[
                "--app-id",
                "replicas",
                "--app-port",
                &p,
                "--resources-path",
                res,
            ],
            Some(data.path()),
        );
        (sc, data)
    };
    let (mut a, _da) = start(app_a.port);
    a.wait_status("/v1.0/healthz", 204).await;
    let (b, _db) = start(app_b.port);
    b.wait_status("/v1.0/healthz", 204).await;

    let first: Vec<String> = (0..200).map(|i| format!("a{i}")).collect();
    for id in &first {
        publish(&a, &topic, id).await;
    }
    let seen = || -> BTreeSet<String> {
        ids(app_a.requests())
            .into_iter()
            .chain(ids(app_b.requests()))
            .collect()
    };
    assert_eventually!(
        "the first batch on either sidecar (observed: how many missing)",
        DEADLINE * 2,
        {
            let seen = seen();
            first.iter().filter(|id| !seen.contains(*id)).count()
        },
        |missing: &usize| *missing == 0
    );
    let (on_a, on_b) = (ids(app_a.requests()).len(), ids(app_b.requests()).len());
    assert!(
        on_a > 0 && on_b > 0,
        "partitions did not split: a={on_a} b={on_b}"
    );

    a.terminate();
    assert_eq!(a.wait_exit(Duration::from_secs(20)).await.code(), Some(0));
    let second: Vec<String> = (0..200).map(|i| format!("b{i}")).collect();
    for id in &second {
        publish(&b, &topic, id).await;
    }
    assert_eventually!(
        "the second batch on the remaining sidecar (observed: how many missing)",
        DEADLINE * 2,
        {
            let on_b = ids(app_b.requests());
            second.iter().filter(|id| !on_b.contains(*id)).count()
        },
        |missing: &usize| *missing == 0
    );

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for id in ids(app_a.requests())
        .into_iter()
        .chain(ids(app_b.requests()))
    {
        *counts.entry(id).or_default() += 1;
    }
    let acked: Vec<&String> = first.iter().chain(&second).collect();
    let lost = acked.iter().filter(|id| !counts.contains_key(**id)).count();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!("kafka two sidecars: acknowledged={} split a={on_a} b={on_b} lost={lost} duplicates={duplicates}", acked.len());
    assert_eq!(lost, 0);
    assert!(
        duplicates <= first.len(),
        "duplicates unbounded: {duplicates}"
    );
}
