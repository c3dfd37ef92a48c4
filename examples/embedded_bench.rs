//! Measures the embedded broker: publish throughput at 1, 16 and 128
//! concurrent publishers of 1 KB events (events/s against fdatasyncs/s, which
//! shows group commit), then the open (recovery) time of a large log.
//!
//! Not part of the test run. Reproduce with:
//! `cargo run --release --example embedded_bench -- [seconds-per-run] [recovery-records] [recovery-dir]`
//! (defaults: 5 seconds, 1,000,000 records of 1 KB ≈ 1.1 GB on disk, a temp
//! folder). When `recovery-dir` already holds a log, only its open is timed,
//! so it can be re-run after dropping the page cache for a cold figure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sidebus::broker::embedded::config::EmbeddedConfig;
use sidebus::broker::embedded::Embedded;
use sidebus::broker::{
    Ack, Handler, Metadata, Outcome, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest,
};

const EVENT_BYTES: usize = 1024;

fn request(topic: &str, publisher: usize, seq: u64) -> PublishRequest {
    PublishRequest {
        topic: topic.to_string(),
        data: Bytes::from(vec![b'x'; EVENT_BYTES]),
        content_type: "application/cloudevents+json".into(),
        metadata: Metadata::new(),
        key: Some(format!("k{publisher}-{}", seq % 64)),
    }
}

/// Publishes from `publishers` tasks for `secs`; returns (events, syncs, elapsed).
async fn run(
    broker: Arc<Embedded>,
    topic: &str,
    publishers: usize,
    secs: u64,
) -> (u64, u64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let syncs0 = broker.log().stats().syncs.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (broker, stop, done, topic) = (
            broker.clone(),
            stop.clone(),
            done.clone(),
            topic.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = broker.publish(request(&topic, p, seq)).await {
                    eprintln!("publish failed: {e}");
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
                seq += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let syncs = broker.log().stats().syncs.load(Ordering::Relaxed) - syncs0;
    (done.load(Ordering::Relaxed), syncs, elapsed)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let records: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let path = args
        .get(3)
        .map_or_else(|| dir.path().join("recovery"), std::path::PathBuf::from);
    if path.join("topics").exists() {
        return time_open(&path).await;
    }

    println!("publish throughput, {EVENT_BYTES} B events, 4 partitions, {secs} s per run");
    println!("| publishers | events/s | fdatasyncs/s | events per fdatasync |");
    println!("|---:|---:|---:|---:|");
    let broker =
        Arc::new(Embedded::open(dir.path().join("throughput"), EmbeddedConfig::default()).await?);
    for publishers in [1, 16, 128] {
        let topic = format!("bench-{publishers}");
        let (events, syncs, elapsed) = run(broker.clone(), &topic, publishers, secs).await;
        let s = elapsed.as_secs_f64();
        println!(
            "| {publishers} | {:.0} | {:.0} | {:.1} |",
            events as f64 / s,
            syncs as f64 / s,
            events as f64 / syncs.max(1) as f64
        );
    }
    broker.close().await?;

    let broker = Arc::new(Embedded::open(path.clone(), EmbeddedConfig::default()).await?);
    let fill = Instant::now();
    let per_task = records / 128;
    let mut tasks = Vec::new();
    for p in 0..128 {
        let broker = broker.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..per_task {
                broker.publish(request("recovery", p, seq)).await?;
            }
            Ok::<_, sidebus::broker::BrokerError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let written = per_task * 128;
    let fill_s = fill.elapsed().as_secs_f64();
    broker.close().await?;
    drop(broker);
    println!(
        "recovery log: {written} records filled in {fill_s:.1} s ({:.0} ev/s at 128 publishers)",
        written as f64 / fill_s
    );
    time_open(&path).await
}

/// Times opening (recovering) the log in `path`.
async fn time_open(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let bytes: u64 = walk(path)?;
    let open = Instant::now();
    let broker = Embedded::open(path.to_path_buf(), EmbeddedConfig::default()).await?;
    let open_ms = open.elapsed().as_secs_f64() * 1000.0;
    println!(
        "recovery: {:.2} GB on disk in {}; open took {open_ms:.0} ms",
        bytes as f64 / 1e9,
        path.display()
    );
    let total: usize = broker
        .log()
        .topic("recovery")?
        .partitions
        .iter()
        .map(|p| p.snapshot().end as usize)
        .sum();
    let counter = Arc::new(Counter::default());
    let req = SubscribeRequest {
        topic: "recovery".into(),
        group: format!("bench-{}", std::process::id()),
        metadata: Metadata::new(),
    };
    let start = Instant::now();
    let sub = broker.subscribe(req, counter.clone()).await?;
    while counter.seen.load(Ordering::Relaxed) < total as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "consume: {total} events replayed to one subscriber (handler acks at once) in {s:.1} s = {:.0} ev/s",
        total as f64 / s
    );
    sub.stop().await;
    broker.close().await?;
    Ok(())
}

/// A handler that acknowledges at once and counts.
#[derive(Default)]
struct Counter {
    seen: AtomicU64,
}

#[async_trait::async_trait]
impl Handler for Counter {
    async fn submit(&self, _msg: ReceivedMessage) -> Ack {
        self.seen.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(Outcome::Success);
        rx
    }
}

fn walk(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            walk(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
