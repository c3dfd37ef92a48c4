//! The README's quick start, exactly as written: `examples/subscriber.py`,
//! `sidebus --app-id checkout --app-port <port>`, and the curl publish.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::process::{free_port_now as free_port, request, SidecarProcess as Sidecar};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_start_works() {
    let dir = tempfile::tempdir().unwrap();
    let app_port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/subscriber.py");
    let mut sub = Command::new("python3")
        .args([script, &app_port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the example subscriber");
    let stdout = sub.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let sc = Sidecar::start_in(
        &["--app-id", "checkout", "--app-port", &app_port.to_string()],
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
    assert_eq!(r.status, 204);

    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the subscriber printed an event");
    let ce: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ce["data"], serde_json::json!({"id": 1}));
    assert_eq!(ce["topic"], "orders");
    assert_eq!(ce["source"], "checkout");
    let _ = sub.kill();
    let _ = sub.wait();
}
