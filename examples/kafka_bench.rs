//! Measures the Kafka component against a running broker:
//! publish throughput (one at a time, pipelined, bulk), group-consume
//! throughput, and publish → handler latency at a fixed rate.
//!
//! ```text
//! scripts/brokers/tansu.sh start && eval "$(scripts/brokers/tansu.sh env)"
//! cargo run --example kafka_bench -- 20000 256   # KAFKA_BENCH_METADATA=k=v,… adds metadata
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use sidebus::broker::kafka::Kafka;
use sidebus::broker::{
    Ack, Handler, Outcome, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest,
};
use tokio::sync::{oneshot, Notify};

/// Counts deliveries and records when each sequence number arrived.
struct Counter {
    seen: AtomicUsize,
    arrivals: Mutex<Vec<(u64, Instant)>>,
    done: Notify,
    want: usize,
}

#[async_trait]
impl Handler for Counter {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        let now = Instant::now();
        if let Some(seq) = msg.key.as_deref().and_then(|k| k.parse().ok()) {
            self.arrivals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((seq, now));
        }
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 >= self.want {
            self.done.notify_one();
        }
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Outcome::Success);
        rx
    }
}

fn req(topic: &str, seq: u64, size: usize) -> PublishRequest {
    PublishRequest {
        topic: topic.to_string(),
        data: Bytes::from(vec![b'x'; size]),
        content_type: "application/octet-stream".into(),
        metadata: BTreeMap::new(),
        key: Some(seq.to_string()),
    }
}

fn component() -> Arc<dyn PubSub> {
    let brokers = std::env::var("SIDEBUS_TEST_KAFKA_BROKERS")
        .expect("SIDEBUS_TEST_KAFKA_BROKERS is not set (scripts/brokers/tansu.sh env)");
    let mut m = BTreeMap::new();
    m.insert("brokers".to_string(), brokers);
    m.insert("sessionTimeout".to_string(), "6s".to_string());
    m.insert("heartbeatInterval".to_string(), "1s".to_string());
    m.insert("partitions".to_string(), "4".to_string());
    // More metadata as `key=value,key=value`, e.g. `fetchMaxWait=10ms`.
    if let Ok(extra) = std::env::var("KAFKA_BENCH_METADATA") {
        for pair in extra.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("key=value");
            m.insert(k.to_string(), v.to_string());
        }
    }
    Arc::new(Kafka::from_metadata(&m).expect("component"))
}

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{:>9.0} ev/s ({n} in {:.2} s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(256);
    let ps = component();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("bench-{}", &run[..8]);
    ps.publish(req(&topic, 0, size))
        .await
        .expect("warm-up publish");

    let serial = n.min(2_000);
    let t = Instant::now();
    for i in 0..serial {
        ps.publish(req(&topic, i as u64, size))
            .await
            .expect("publish");
    }
    println!("publish, 1 in flight:    {}", rate(serial, t.elapsed()));

    let t = Instant::now();
    let results: Vec<_> = stream::iter(0..n)
        .map(|i| ps.publish(req(&topic, i as u64, size)))
        .buffer_unordered(512)
        .collect()
        .await;
    assert!(
        results.iter().all(Result::is_ok),
        "a pipelined publish failed"
    );
    println!("publish, 512 in flight:  {}", rate(n, t.elapsed()));

    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let reqs = chunk.iter().map(|&i| req(&topic, i as u64, size)).collect();
        assert!(
            ps.publish_bulk(reqs).await.iter().all(Result::is_ok),
            "bulk failed"
        );
    }
    println!("publish_bulk, 1000/call: {}", rate(n, t.elapsed()));

    let total = 1 + serial + 2 * n;
    let counter = Arc::new(Counter {
        seen: AtomicUsize::new(0),
        arrivals: Mutex::new(Vec::new()),
        done: Notify::new(),
        want: total,
    });
    let sub_req = SubscribeRequest {
        topic: topic.clone(),
        group: format!("bench-{run}"),
        metadata: BTreeMap::new(),
    };
    let t = Instant::now();
    let sub = ps
        .subscribe(sub_req, counter.clone())
        .await
        .expect("subscribe");
    let joined = t.elapsed();
    let t = Instant::now();
    counter.done.notified().await;
    println!(
        "consume (group, backlog):{} after a {:.1} s join",
        rate(total, t.elapsed()),
        joined.as_secs_f64()
    );
    sub.stop().await;

    latency(&ps, &topic, &run, size).await;
    ps.close().await.expect("close");
}

/// Publishes at 1,000 ev/s and reports publish → handler latency.
async fn latency(ps: &Arc<dyn PubSub>, base: &str, run: &str, size: usize) {
    let topic = format!("{base}-lat");
    ps.publish(req(&topic, u64::MAX, size))
        .await
        .expect("warm-up");
    let count = 3_000;
    let counter = Arc::new(Counter {
        seen: AtomicUsize::new(0),
        arrivals: Mutex::new(Vec::new()),
        done: Notify::new(),
        want: count + 1,
    });
    let sub_req = SubscribeRequest {
        topic: topic.clone(),
        group: format!("lat-{run}"),
        metadata: BTreeMap::new(),
    };
    let sub = ps
        .subscribe(sub_req, counter.clone())
        .await
        .expect("subscribe");
    let mut sent = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut pending = Vec::new();
    for i in 0..count {
        tick.tick().await;
        sent.push(Instant::now());
        let ps = ps.clone();
        let topic = topic.clone();
        pending.push(tokio::spawn(async move {
            ps.publish(req(&topic, i as u64, size)).await
        }));
    }
    for p in pending {
        p.await.expect("task").expect("publish");
    }
    counter.done.notified().await;
    let arrivals = counter
        .arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut lat: Vec<Duration> = arrivals
        .iter()
        .filter(|(seq, _)| (*seq as usize) < count)
        .map(|(seq, at)| at.duration_since(sent[*seq as usize]))
        .collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "publish -> handler at 1,000 ev/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );
    sub.stop().await;
}
