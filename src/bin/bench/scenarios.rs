//! The measured scenarios for one broker, each next to its baseline.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use sidebus::broker::PubSub;

use crate::direct::{self, Broker};
use crate::load::{self, event, OpenLoop};
use crate::rabbit_sink::Sinks as RabbitSinks;
use crate::servers::AppState;
use crate::sidecar::Sidecar;
use crate::stats::{summarize, Summary};
use crate::Plan;

/// Payload size of every event.
pub const EVENT_BYTES: usize = 1024;
/// Connections of the fixed-rate latency scenario (daprd's harness uses 16).
pub const CONNS: usize = 16;
/// Connections of the 10,000 ev/s delivery scenario. With a broker that takes
/// ~3 ms to acknowledge (Kafka acks=all, RabbitMQ confirms, an fsync), 16
/// connections carry at most ~5,000 publishes/s, so the open-loop sender
/// would queue behind its schedule and the figure would measure publish
/// queueing instead of delivery.
pub const WIDE_CONNS: usize = 128;

/// Publishing connections of the delivery scenario at `rate` ev/s.
pub fn delivery_conns(rate: u64) -> usize {
    if rate > 1000 {
        WIDE_CONNS
    } else {
        CONNS
    }
}
/// Entries per bulk publish request.
pub const BULK: usize = 100;
/// Sequential publishes per topic and path before anything is measured, so a
/// topic's creation (Kafka) and cold caches stay out of the figures.
const WARM_UP: usize = 20;
/// Topics the sidecar is published to (`deliver` and `stall` are subscribed).
const TOPICS: [&str; 5] = ["lat", "tput", "bulk", "deliver", "stall"];
/// The topics in [`TOPICS`] nobody subscribes to.
const PUBLISH_ONLY: [&str; 3] = ["lat", "tput", "bulk"];
/// Topics the direct client is published to.
const DIRECT_TOPICS: [&str; 2] = ["lat", "tput"];
/// How long the delivery scenario waits for its subscription to go live
/// (a Kafka group join on Tansu takes about half the session timeout).
const SUBSCRIBE_DEADLINE: Duration = Duration::from_secs(30);

/// Everything measured for one broker.
#[derive(Debug, Default, Serialize)]
pub struct BrokerResults {
    /// Broker name.
    pub broker: String,
    /// Spawn → outbound-ready (ms), per start.
    pub ready_ms: Vec<f64>,
    /// The sidecar's own `Outbound ready.` elapsed_ms, per start.
    pub logged_ready_ms: Vec<u64>,
    /// VmRSS right after start (MB).
    pub rss_idle_mb: f64,
    /// VmRSS at the end of the 1,000 ev/s run (MB).
    pub rss_load_mb: f64,
    /// VmRSS with a stalled app and a backlog (MB), and the backlog size.
    pub rss_backlog_mb: f64,
    /// Events published while the app was stalled.
    pub backlog_events: u64,
    /// HTTP publish at 1,000 ev/s, per run.
    pub http_lat: Vec<Summary>,
    /// gRPC `PublishEvent` at 1,000 ev/s, per run.
    pub grpc_lat: Vec<Summary>,
    /// Direct client at 1,000 ev/s, per run.
    pub direct_lat: Vec<Summary>,
    /// Closed-loop single-event HTTP publish (ev/s), per run.
    pub http_tput: Vec<f64>,
    /// Closed-loop bulk HTTP publish (ev/s), per run.
    pub bulk_tput: Vec<f64>,
    /// Closed-loop direct client, 64 in flight (ev/s), per run.
    pub direct_tput: Vec<f64>,
    /// Publish → app delivery latency at 1,000 and 10,000 ev/s.
    pub delivery: Vec<(u64, Summary, u64)>,
    /// Raw latency samples of the last run (µs) for the plots: (label, samples).
    #[serde(skip)]
    pub samples: Vec<(String, Vec<u64>)>,
    /// Failed sends across all scenarios but the stalled-app one.
    pub errors: u64,
    /// Bulk publishes of the stalled-app scenario that did not complete in
    /// the bench's per-request deadline: the sidecar held them back
    /// (backpressure from a full queue), which is the behaviour measured there.
    pub backlog_held: u64,
    /// RabbitMQ management HTTP publish, closed loop, [`CONNS`] conns
    /// (req/s), per run; rabbitmq only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peer_http_tput: Vec<f64>,
    /// Failed management publishes across the peer's runs.
    pub peer_errors: u64,
    /// Where the management listener listened (`ss` lines).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer_listener: String,
    /// Why the management peer was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_error: Option<String>,
}

/// Prints a progress line for `broker`.
pub fn progress(broker: Broker, what: &str) {
    eprintln!(
        "[bench {:>7.1}s] {:<9} {what}",
        crate::since_start(),
        broker.name()
    );
}

/// Runs all scenarios for `broker` against a sidecar on `bin`; on RabbitMQ
/// with queues bound to [`PUBLISH_ONLY`] (publishes are `mandatory`), and
/// then the management-API peer.
pub async fn run(
    plan: &Plan,
    broker: Broker,
    bin: &Path,
    app: Arc<AppState>,
    app_port: u16,
) -> Result<BrokerResults, String> {
    if broker != Broker::RabbitMq {
        return scenarios(plan, broker, bin, app, app_port).await;
    }
    let sinks = RabbitSinks::declare(&plan.endpoints.rabbit_url, &PUBLISH_ONLY).await?;
    let out = scenarios(plan, broker, bin, app, app_port).await;
    if let Err(e) = sinks.delete().await {
        progress(broker, &e);
    }
    let mut r = out?;
    crate::rabbit_mgmt::measure(plan, &mut r).await;
    Ok(r)
}

/// The scenarios of [`run`], one sidecar after the start-up runs.
async fn scenarios(
    plan: &Plan,
    broker: Broker,
    bin: &Path,
    app: Arc<AppState>,
    app_port: u16,
) -> Result<BrokerResults, String> {
    let mut r = BrokerResults {
        broker: broker.name().into(),
        ..Default::default()
    };
    let root = plan.scratch.join(broker.name());
    let res_dir = root.join("resources");
    std::fs::create_dir_all(&res_dir).map_err(|e| e.to_string())?;
    std::fs::write(
        res_dir.join("pubsub.yaml"),
        broker.component_yaml(&plan.endpoints),
    )
    .map_err(|e| e.to_string())?;
    startup(plan, bin, &res_dir, &root, &mut r).await?;
    let sc = Sidecar::start(bin, &res_dir, &root.join("data"), Some(app_port))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.rss_idle_mb = sc.rss_mb();
    progress(
        broker,
        &format!(
            "ready in {:.1} ms, idle RSS {:.1} MB",
            sc.ready_ms, r.rss_idle_mb
        ),
    );
    let direct = broker
        .open_direct(&root.join("direct"), &plan.endpoints)
        .await?;
    progress(broker, "warm-up publishes per topic");
    warm_up(&sc, &direct).await?;
    publish_latency(plan, broker, &sc, &direct, &mut r).await?;
    throughput(plan, broker, &sc, &direct, &mut r).await?;
    let _ = direct.close().await;
    progress(broker, "waiting for the `deliver` subscription");
    wait_subscribed(&app, sc.http).await?;
    delivery(plan, broker, &sc, &app, &mut r).await?;
    backlog(plan, broker, &sc, &app, &mut r).await?;
    sc.stop();
    Ok(r)
}

/// Start-up time: a few fresh starts without an app.
async fn startup(
    plan: &Plan,
    bin: &Path,
    res_dir: &Path,
    root: &Path,
    r: &mut BrokerResults,
) -> Result<(), String> {
    for i in 0..plan.runs {
        let sc = Sidecar::start(bin, res_dir, &root.join(format!("start{i}")), None)
            .await
            .map_err(|e| e.to_string())?;
        r.ready_ms.push(sc.ready_ms);
        r.logged_ready_ms.extend(sc.logged_ready_ms);
        sc.stop();
    }
    Ok(())
}

/// Publishes [`WARM_UP`] events to every topic over HTTP, to `lat` over
/// gRPC and to the direct client's topics; fails on the first error.
async fn warm_up(sc: &Sidecar, direct: &Arc<dyn PubSub>) -> Result<(), String> {
    let fail = |how: &str, topic: &str, e: load::LoadError| format!("warm-up {how} {topic}: {e}");
    let mut conn = load::Conn::open(sc.http)
        .await
        .map_err(|e| fail("HTTP", "connect", e))?;
    let grpc = crate::grpc::clients(sc.grpc, 1)
        .await
        .map_err(|e| fail("gRPC", "connect", e))?;
    for _ in 0..WARM_UP {
        for topic in TOPICS {
            conn.post(
                &format!("/v1.0/publish/pubsub/{topic}"),
                "application/json",
                event(load::unix_nanos(), EVENT_BYTES),
            )
            .await
            .map_err(|e| fail("HTTP", topic, e))?;
        }
        for c in grpc.iter() {
            crate::grpc::publish(c, "lat", event(load::unix_nanos(), EVENT_BYTES))
                .await
                .map_err(|e| fail("gRPC", "lat", e))?;
        }
        for topic in DIRECT_TOPICS {
            direct::publish(direct, topic, event(load::unix_nanos(), EVENT_BYTES))
                .await
                .map_err(|e| fail("direct", topic, e))?;
        }
    }
    Ok(())
}

/// Fixed-rate publish latency over HTTP, gRPC and the direct client.
async fn publish_latency(
    plan: &Plan,
    broker: Broker,
    sc: &Sidecar,
    direct: &Arc<dyn PubSub>,
    r: &mut BrokerResults,
) -> Result<(), String> {
    for run in 0..plan.runs {
        progress(
            broker,
            &format!("publish latency @1000 ev/s, run {}/{}", run + 1, plan.runs),
        );
        let mut h = http_open_loop(
            sc.http,
            "/v1.0/publish/pubsub/lat",
            1000,
            CONNS,
            plan.lat_dur(),
            &mut r.errors,
        )
        .await?;
        r.rss_load_mb = r.rss_load_mb.max(sc.rss_mb());
        r.http_lat.push(summarize(&mut h));
        let mut g = grpc_open_loop(sc.grpc, "lat", 1000, plan.lat_dur(), &mut r.errors).await?;
        r.grpc_lat.push(summarize(&mut g));
        let mut d = direct_open_loop(direct, "lat", 1000, plan.lat_dur(), &mut r.errors).await;
        r.direct_lat.push(summarize(&mut d));
        if run + 1 == plan.runs {
            r.samples.push(("sidebus HTTP publish".into(), h));
            r.samples.push(("sidebus gRPC publish".into(), g));
            r.samples.push(("direct client".into(), d));
        }
    }
    Ok(())
}

/// Closed-loop throughput: single and bulk HTTP publish, direct client.
async fn throughput(
    plan: &Plan,
    broker: Broker,
    sc: &Sidecar,
    direct: &Arc<dyn PubSub>,
    r: &mut BrokerResults,
) -> Result<(), String> {
    for run in 0..plan.runs {
        progress(
            broker,
            &format!(
                "throughput (single, bulk, direct), run {}/{}",
                run + 1,
                plan.runs
            ),
        );
        r.http_tput.push(
            http_closed_loop(
                sc.http,
                "/v1.0/publish/pubsub/tput",
                CONNS,
                1,
                plan.tput_dur(),
                &mut r.errors,
            )
            .await?,
        );
        r.bulk_tput.push(
            http_closed_loop(
                sc.http,
                "/v1.0-alpha1/publish/bulk/pubsub/bulk",
                4,
                BULK,
                plan.tput_dur(),
                &mut r.errors,
            )
            .await?,
        );
        let d = direct.clone();
        let (ok, bad, el) = load::closed_loop(64, plan.tput_dur(), move |_| {
            let d = d.clone();
            async move { direct::publish(&d, "tput", event(load::unix_nanos(), EVENT_BYTES)).await }
        })
        .await;
        r.errors += bad;
        r.direct_tput.push(ok as f64 / el.as_secs_f64());
    }
    Ok(())
}

/// Publishes probe events to `deliver` until one reaches the app (the
/// sidecar subscribes at start, but a broker may take seconds to assign the
/// subscription), then clears what the app recorded.
async fn wait_subscribed(app: &AppState, port: u16) -> Result<(), String> {
    let mut conn = load::Conn::open(port).await.map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SUBSCRIBE_DEADLINE;
    loop {
        app.take();
        conn.post(
            "/v1.0/publish/pubsub/deliver",
            "application/json",
            event(load::unix_nanos(), EVENT_BYTES),
        )
        .await
        .map_err(|e| format!("subscription probe: {e}"))?;
        let wait = Instant::now() + Duration::from_millis(250);
        while app.count() == 0 && Instant::now() < wait {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if app.count() > 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no event reached the app's `deliver` subscription within {SUBSCRIBE_DEADLINE:?}"
            ));
        }
    }
    // Earlier probes and warm-up events may still be on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.take();
    Ok(())
}

/// Publish → app delivery latency at 1,000 and 10,000 ev/s.
async fn delivery(
    plan: &Plan,
    broker: Broker,
    sc: &Sidecar,
    app: &AppState,
    r: &mut BrokerResults,
) -> Result<(), String> {
    for rate in [1000u64, 10_000] {
        progress(broker, &format!("publish -> app delivery @{rate} ev/s"));
        app.take();
        let mut errors = 0;
        let conns = delivery_conns(rate);
        let sent = http_open_loop(
            sc.http,
            "/v1.0/publish/pubsub/deliver",
            rate,
            conns,
            plan.lat_dur(),
            &mut errors,
        )
        .await?
        .len();
        r.errors += errors;
        let deadline = Instant::now() + Duration::from_secs(30);
        while app.count() < sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut s = app.take();
        let lost = sent.saturating_sub(s.len()) as u64;
        r.delivery.push((rate, summarize(&mut s), lost));
        r.samples.push((format!("delivery @{rate} ev/s"), s));
    }
    Ok(())
}

/// Resident memory with a stalled app and a backlog of bulk publishes.
async fn backlog(
    plan: &Plan,
    broker: Broker,
    sc: &Sidecar,
    app: &AppState,
    r: &mut BrokerResults,
) -> Result<(), String> {
    progress(broker, "stalled app + backlog");
    app.stall.store(true, Ordering::Relaxed);
    let n = http_closed_loop(
        sc.http,
        "/v1.0-alpha1/publish/bulk/pubsub/stall",
        4,
        BULK,
        plan.tput_dur(),
        &mut r.backlog_held,
    )
    .await?;
    r.backlog_events = (n * plan.tput_dur().as_secs_f64()) as u64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.rss_backlog_mb = sc.rss_mb();
    app.stall.store(false, Ordering::Relaxed);
    progress(
        broker,
        &format!(
            "backlog of {} events: RSS {:.1} MB ({} requests held back)",
            r.backlog_events, r.rss_backlog_mb, r.backlog_held
        ),
    );
    Ok(())
}

/// Adds an open-loop run's errors to `errors`; returns its latencies (µs).
fn latencies(out: OpenLoop, errors: &mut u64) -> Vec<u64> {
    *errors += out.errors;
    out.lat_us
}

/// Open-loop HTTP publish of 1 KB JSON events; returns latencies (µs).
async fn http_open_loop(
    port: u16,
    path: &str,
    rate: u64,
    conns: usize,
    dur: Duration,
    errors: &mut u64,
) -> Result<Vec<u64>, String> {
    let pool = load::pool(port, conns).await.map_err(|e| e.to_string())?;
    let path: Arc<str> = path.into();
    let out = load::open_loop(rate, conns, dur, move |w, _, t| {
        let (pool, path) = (pool.clone(), path.clone());
        async move {
            pool[w]
                .lock()
                .await
                .post(&path, "application/json", event(t, EVENT_BYTES))
                .await
        }
    })
    .await;
    Ok(latencies(out, errors))
}

/// Open-loop gRPC `PublishEvent` of 1 KB JSON events on [`CONNS`]
/// connections; returns latencies (µs).
async fn grpc_open_loop(
    port: u16,
    topic: &str,
    rate: u64,
    dur: Duration,
    errors: &mut u64,
) -> Result<Vec<u64>, String> {
    let clients = crate::grpc::clients(port, CONNS)
        .await
        .map_err(|e| e.to_string())?;
    let topic: Arc<str> = topic.into();
    let out = load::open_loop(rate, CONNS, dur, move |w, _, t| {
        let (clients, topic) = (clients.clone(), topic.clone());
        async move { crate::grpc::publish(&clients[w], &topic, event(t, EVENT_BYTES)).await }
    })
    .await;
    Ok(latencies(out, errors))
}

/// Open-loop publish through the direct client with [`CONNS`] senders;
/// returns latencies (µs).
async fn direct_open_loop(
    direct: &Arc<dyn PubSub>,
    topic: &str,
    rate: u64,
    dur: Duration,
    errors: &mut u64,
) -> Vec<u64> {
    let (d, topic): (_, Arc<str>) = (direct.clone(), topic.into());
    let out = load::open_loop(rate, CONNS, dur, move |_, _, t| {
        let (d, topic) = (d.clone(), topic.clone());
        async move { direct::publish(&d, &topic, event(t, EVENT_BYTES)).await }
    })
    .await;
    latencies(out, errors)
}

/// Closed-loop HTTP publish on `conns` connections, `per_req` events per
/// request (1 = single publish, else a bulk array); returns events/s.
pub async fn http_closed_loop(
    port: u16,
    path: &str,
    conns: usize,
    per_req: usize,
    dur: Duration,
    errors: &mut u64,
) -> Result<f64, String> {
    let body = if per_req == 1 {
        event(0, EVENT_BYTES)
    } else {
        bulk_body(per_req)
    };
    let (ok, bad, el) = load::post_closed_loop(port, path, conns, body, None, dur)
        .await
        .map_err(|e| e.to_string())?;
    *errors += bad;
    Ok((ok as f64 * per_req as f64) / el.as_secs_f64())
}

fn bulk_body(n: usize) -> Bytes {
    let one = String::from_utf8_lossy(&event(0, EVENT_BYTES)).into_owned();
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!("{{\"entryId\":\"{i}\",\"event\":{one},\"contentType\":\"application/json\"}}")
        })
        .collect();
    Bytes::from(format!("[{}]", entries.join(",")))
}
