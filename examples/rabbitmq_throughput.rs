//! Measures `pubsub.rabbitmq` against a real broker: confirmed publish
//! latency one at a time, confirmed publish throughput with many publishes in
//! flight, and publish → handler throughput through one subscription.
//!
//! ```text
//! scripts/brokers/rabbitmq.sh start && eval "$(scripts/brokers/rabbitmq.sh env)"
//! cargo run --example rabbitmq_throughput -- [events] [concurrency] [bytes]
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use sidebus::broker::conformance::unique;
use sidebus::broker::rabbitmq::{RabbitConfig, RabbitMq};
use sidebus::broker::{
    Ack, Handler, Metadata, Outcome, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest,
};

/// Acknowledges everything and counts.
struct Counter(AtomicUsize);

#[async_trait]
impl Handler for Counter {
    async fn submit(&self, _msg: ReceivedMessage) -> Ack {
        self.0.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(Outcome::Success);
        rx
    }
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn request(topic: &str, size: usize) -> PublishRequest {
    PublishRequest {
        topic: topic.to_string(),
        data: Bytes::from(vec![b'x'; size]),
        content_type: "application/octet-stream".into(),
        metadata: Metadata::new(),
        key: None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (events, concurrency, size) = (arg(1, 20_000), arg(2, 64), arg(3, 256));
    let url = std::env::var("SIDEBUS_TEST_RABBITMQ_URL")
        .map_err(|_| "SIDEBUS_TEST_RABBITMQ_URL is not set (scripts/brokers/rabbitmq.sh env)")?;
    let md: Metadata = [
        ("connectionString".to_string(), url),
        ("queueExpiresInSeconds".to_string(), "300".to_string()),
    ]
    .into();
    let cfg = RabbitConfig::parse(&md)
        .map_err(|p| format!("{p:?}"))?
        .config;
    let ps = Arc::new(RabbitMq::connect(cfg, Duration::from_secs(15)).await?);
    let topic = unique("bench");
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let req = SubscribeRequest {
        topic: topic.clone(),
        group: unique("g"),
        metadata: BTreeMap::new(),
    };
    let sub = ps.subscribe(req, counter.clone()).await?;

    let mut lat = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        ps.publish(request(&topic, size)).await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "sequential confirmed publish ({size} B, durable, persistent): p50 {:?}, p99 {:?}",
        pct(0.50),
        pct(0.99)
    );

    let before = counter.0.load(Ordering::Relaxed);
    let t = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(0..events)
        .map(|_| ps.publish(request(&topic, size)))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let publish_secs = t.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    let deadline = Instant::now() + Duration::from_secs(120);
    while counter.0.load(Ordering::Relaxed) < before + events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total_secs = t.elapsed().as_secs_f64();
    let delivered = counter.0.load(Ordering::Relaxed) - before;
    println!(
        "{events} confirmed publishes, {concurrency} in flight: {:.0} msg/s ({failed} failed)",
        events as f64 / publish_secs
    );
    println!(
        "publish → handler: {delivered}/{events} delivered in {total_secs:.2} s = {:.0} msg/s end to end",
        delivered as f64 / total_secs
    );
    sub.stop().await;
    ps.close().await?;
    Ok(())
}
