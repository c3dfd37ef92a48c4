//! Access to the test RabbitMQ: components on it, a raw lapin channel, and
//! closing connections from the broker side.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use sidebus::broker::rabbitmq::{RabbitConfig, RabbitMq};
use sidebus::broker::{Metadata, PubSub};

/// The broker URL; a missing one fails the test loudly instead of skipping.
pub fn url() -> String {
    std::env::var("SIDEBUS_TEST_RABBITMQ_URL").unwrap_or_else(|_| {
        panic!(
            "SIDEBUS_TEST_RABBITMQ_URL is not set: run `scripts/brokers/rabbitmq.sh start` \
             and `eval \"$(scripts/brokers/rabbitmq.sh env)\"` first"
        )
    })
}

/// Metadata for a test component plus `extra`; queues expire after 10 min.
pub fn metadata(extra: &[(&str, &str)]) -> Metadata {
    let mut md: Metadata = [
        ("connectionString".to_string(), url()),
        ("reconnectWaitSeconds".to_string(), "1".to_string()),
        ("queueExpiresInSeconds".to_string(), "600".to_string()),
    ]
    .into();
    for (k, v) in extra {
        md.insert(k.to_string(), v.to_string());
    }
    md
}

/// A connected component, failing loudly when the broker is unreachable.
pub async fn connected(extra: &[(&str, &str)]) -> RabbitMq {
    let cfg = RabbitConfig::parse(&metadata(extra))
        .expect("valid test config")
        .config;
    RabbitMq::connect(cfg, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at SIDEBUS_TEST_RABBITMQ_URL unreachable: {e}"))
}

/// [`connected`] as a trait object.
pub async fn component(extra: &[(&str, &str)]) -> Arc<dyn PubSub> {
    Arc::new(connected(extra).await)
}

/// A plain lapin channel for looking at the broker directly.
pub async fn raw_channel() -> Channel {
    let conn = Connection::connect(&url(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at SIDEBUS_TEST_RABBITMQ_URL unreachable: {e}"));
    let channel = conn.create_channel().await.expect("channel");
    // The connection lives as long as the channel is used; leaking it for
    // the rest of the test process is fine.
    std::mem::forget(conn);
    channel
}

/// Makes the broker close every connection whose name contains `marker`
/// (`rabbitmqctl close_connection`, run as root on the broker's machine).
/// Returns how many were closed. Targeted rather than `close_all_connections`
/// so other users of a shared broker are not disturbed.
pub fn close_connections(marker: &str) -> usize {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "--no-table-headers",
            "-q",
            "pid",
            "client_properties",
        ])
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl not runnable (needed to kill connections): {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl list_connections failed: {out:?}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<String> = text
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    for pid in &pids {
        let st = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test"])
            .status()
            .expect("rabbitmqctl close_connection");
        assert!(st.success(), "rabbitmqctl close_connection {pid} failed");
    }
    pids.len()
}
