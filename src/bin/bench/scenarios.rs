//! The measured scenarios for one broker, each next to its baseline.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::direct::{self, Broker};
use crate::load::{self, event};
use crate::servers::AppState;
use crate::sidecar::Sidecar;
use crate::stats::{summarize, Summary};
use crate::Plan;

/// Payload size of every event.
pub const EVENT_BYTES: usize = 1024;
/// Connections of the fixed-rate latency scenario (daprd's harness uses 16).
pub const CONNS: usize = 16;
/// Entries per bulk publish request.
pub const BULK: usize = 100;

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
    /// Failed sends across all scenarios.
    pub errors: u64,
}

fn progress(broker: Broker, what: &str) {
    eprintln!(
        "[bench {:>7.1}s] {:<9} {what}",
        crate::since_start(),
        broker.name()
    );
}

/// Runs all scenarios for `broker` against a sidecar on `bin`.
pub async fn run(
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
        broker.component_yaml(&plan.rabbit_url),
    )
    .map_err(|e| e.to_string())?;

    // Start-up time: a few fresh starts (no app), then the long-lived one.
    for i in 0..plan.runs {
        let sc = Sidecar::start(bin, &res_dir, &root.join(format!("start{i}")), None)
            .await
            .map_err(|e| e.to_string())?;
        r.ready_ms.push(sc.ready_ms);
        r.logged_ready_ms.extend(sc.logged_ready_ms);
        sc.stop();
    }
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
        .open_direct(&root.join("direct"), &plan.rabbit_url)
        .await?;
    for run in 0..plan.runs {
        progress(
            broker,
            &format!("publish latency @1000 ev/s, run {}/{}", run + 1, plan.runs),
        );
        let mut s = http_open_loop(
            sc.http,
            "/v1.0/publish/pubsub/lat",
            1000,
            plan.lat_secs,
            &mut r.errors,
        )
        .await?;
        r.rss_load_mb = r.rss_load_mb.max(sc.rss_mb());
        r.http_lat.push(summarize(&mut s));
        let d = direct.clone();
        let out = load::open_loop(1000, CONNS, plan.lat_dur(), move |_, _, t| {
            let d = d.clone();
            async move { direct::publish(&d, "lat", event(t, EVENT_BYTES)).await }
        })
        .await;
        r.errors += out.errors;
        let mut dl = out.lat_us;
        r.direct_lat.push(summarize(&mut dl));
        if run + 1 == plan.runs {
            r.samples.push(("sidebus HTTP publish".into(), s));
            r.samples.push(("direct client".into(), dl));
        }
    }
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
    let _ = direct.close().await;

    for rate in [1000u64, 10_000] {
        progress(broker, &format!("publish -> app delivery @{rate} ev/s"));
        app.take();
        let mut errors = 0;
        let sent = http_open_loop(
            sc.http,
            "/v1.0/publish/pubsub/deliver",
            rate,
            plan.lat_secs,
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

    progress(broker, "stalled app + backlog");
    app.stall.store(true, Ordering::Relaxed);
    let before = r.errors;
    let n = http_closed_loop(
        sc.http,
        "/v1.0-alpha1/publish/bulk/pubsub/stall",
        4,
        BULK,
        plan.tput_dur(),
        &mut r.errors,
    )
    .await?;
    r.backlog_events = (n * plan.tput_dur().as_secs_f64()) as u64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.rss_backlog_mb = sc.rss_mb();
    app.stall.store(false, Ordering::Relaxed);
    progress(
        broker,
        &format!(
            "backlog of {} events: RSS {:.1} MB (errors {})",
            r.backlog_events,
            r.rss_backlog_mb,
            r.errors - before
        ),
    );
    sc.stop();
    Ok(r)
}

/// Open-loop HTTP publish of 1 KB JSON events; returns latencies (µs).
async fn http_open_loop(
    port: u16,
    path: &str,
    rate: u64,
    secs: u64,
    errors: &mut u64,
) -> Result<Vec<u64>, String> {
    let pool = load::pool(port, CONNS).await.map_err(|e| e.to_string())?;
    let path: Arc<str> = path.into();
    let out = load::open_loop(rate, CONNS, Duration::from_secs(secs), move |w, _, t| {
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
    *errors += out.errors;
    Ok(out.lat_us)
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
    let pool = load::pool(port, conns).await.map_err(|e| e.to_string())?;
    let path: Arc<str> = path.into();
    let body = if per_req == 1 {
        event(0, EVENT_BYTES)
    } else {
        bulk_body(per_req)
    };
    let (ok, bad, el) = load::closed_loop(conns, dur, move |w| {
        let (pool, path, body) = (pool.clone(), path.clone(), body.clone());
        async move {
            pool[w]
                .lock()
                .await
                .post(&path, "application/json", body)
                .await
        }
    })
    .await;
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
