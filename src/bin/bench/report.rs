//! Writes `bench-results/<timestamp>/{report.md, results.json, *.svg}`.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::scenarios::BrokerResults;
use crate::stats::{spread, Summary};
use crate::Plan;

/// The machine the run happened on.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{cores} cores, {cpu}, loadavg at end {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn ms(v: &[f64]) -> String {
    let (m, lo, hi) = spread(v);
    if v.len() > 1 {
        format!("{m:.3} ({lo:.3}–{hi:.3})")
    } else {
        format!("{m:.3}")
    }
}

fn rate(v: &[f64]) -> String {
    let (m, lo, hi) = spread(v);
    if v.len() > 1 {
        format!("{m:.0} ({lo:.0}–{hi:.0})")
    } else {
        format!("{m:.0}")
    }
}

fn pick(v: &[Summary], f: fn(&Summary) -> f64) -> Vec<f64> {
    v.iter().map(f).collect()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// p50 / p90 / p99 rows of a publish path at 1,000 ev/s against the direct
/// client of the same runs (targets: added p50 ≤ 0.10 ms, p99 ≤ 0.30 ms).
fn latency_rows(md: &mut String, broker: &str, path: &str, lat: &[Summary], direct: &[Summary]) {
    for (label, f, target) in [
        ("p50", (|s: &Summary| s.p50) as fn(&Summary) -> f64, 0.10),
        ("p90", |s: &Summary| s.p90, f64::NAN),
        ("p99", |s: &Summary| s.p99, 0.30),
    ] {
        let (h, d) = (pick(lat, f), pick(direct, f));
        let added: Vec<f64> = h.iter().zip(&d).map(|(a, b)| a - b).collect();
        let (am, _, _) = spread(&added);
        let tgt = if target.is_nan() {
            "–".to_string()
        } else {
            format!("≤ +{target:.2} ms")
        };
        let v = if target.is_nan() {
            "–"
        } else {
            verdict(am <= target)
        };
        let _ = writeln!(md, "| {broker} | {path} publish latency {label} @1,000 ev/s, 1 KB, 16 conns (ms) | {} | direct client {} | added {} ms | {tgt} | {v} |", ms(&h), ms(&d), ms(&added));
    }
}

/// RabbitMQ's management HTTP publish (same generator) next to sidebus's
/// single-event HTTP publish on the same broker; rabbitmq only.
fn peer_row(md: &mut String, r: &BrokerResults) {
    let (baseline, comparison) = match (&r.peer_error, r.peer_http_tput.is_empty()) {
        (Some(e), _) => (format!("not measured: {e}"), "–".to_string()),
        (None, true) => return,
        (None, false) => {
            let (p, _, _) = spread(&r.peer_http_tput);
            let (t, _, _) = spread(&r.http_tput);
            let failed = if r.peer_errors > 0 {
                format!(", {} failed", r.peer_errors)
            } else {
                String::new()
            };
            let ratio = if p > 0.0 {
                format!("sidebus {:.1}×", t / p)
            } else {
                "–".to_string()
            };
            (
                format!("management API {}{failed}", rate(&r.peer_http_tput)),
                ratio,
            )
        }
    };
    let _ = writeln!(md, "| {} | RabbitMQ management HTTP publish, closed loop, 16 conns (req/s) vs sidebus single-event HTTP publish | {} | {baseline} | {comparison} | – | – |", r.broker, rate(&r.http_tput));
}

/// Markdown for all brokers.
pub fn markdown(plan: &Plan, results: &[BrokerResults], bare: &[f64], size_mb: f64) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {}. Runs per figure: {} (median, spread min–max). Release binary: {size_mb:.1} MB.\n", machine(), plan.runs);
    let _ = writeln!(
        md,
        "Bare HTTP 204 server, same generator (16 conns, closed loop): {} req/s.\n",
        rate(bare)
    );
    let _ = writeln!(
        md,
        "| broker | figure | sidebus | baseline (same run) | comparison | target | verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    let (bare_med, _, _) = spread(bare);
    for r in results {
        let b = &r.broker;
        latency_rows(&mut md, b, "HTTP", &r.http_lat, &r.direct_lat);
        latency_rows(&mut md, b, "gRPC", &r.grpc_lat, &r.direct_lat);
        let (t, _, _) = spread(&r.http_tput);
        let _ = writeln!(md, "| {b} | single-event HTTP publish, closed loop, 16 conns (ev/s) | {} | bare 204 server {} | {:.0}% | ≥ 50% | {} |", rate(&r.http_tput), rate(bare), 100.0 * t / bare_med, verdict(t / bare_med >= 0.5));
        let (bk, _, _) = spread(&r.bulk_tput);
        let (dt, _, _) = spread(&r.direct_tput);
        let _ = writeln!(md, "| {b} | bulk HTTP publish (100/req, 4 conns) (ev/s) | {} | direct client, 64 in flight {} | {:.0}% | ≥ 80% | {} |", rate(&r.bulk_tput), rate(&r.direct_tput), 100.0 * bk / dt, verdict(bk / dt >= 0.8));
        let _ = writeln!(md, "| {b} | pipelined single-event HTTP (16 in flight) (ev/s) | {} | direct client, 64 in flight {} | {:.0}% | ≥ 80% | {} |", rate(&r.http_tput), rate(&r.direct_tput), 100.0 * t / dt, verdict(t / dt >= 0.8));
        peer_row(&mut md, r);
        for (rt, s, lost) in &r.delivery {
            let _ = writeln!(md, "| {b} | publish → app delivery @{rt} ev/s, {} conns (ms) | p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.1} ({} events, {lost} not delivered in time) | – | – | p99 ≤ 5 ms | {} |", crate::scenarios::delivery_conns(*rt), s.p50, s.p90, s.p99, s.max, s.n, verdict(s.p99 <= 5.0 && *lost == 0));
        }
        let _ = writeln!(md, "| {b} | VmRSS idle / @1,000 ev/s / stalled app + {} ev backlog, {} bulk requests held back (MB) | {:.1} / {:.1} / {:.1} | daprd 30–50 MB | – | ≤ 10 / ≤ 25 / bounded | {} |", r.backlog_events, r.backlog_held, r.rss_idle_mb, r.rss_load_mb, r.rss_backlog_mb, verdict(r.rss_idle_mb <= 10.0 && r.rss_load_mb <= 25.0));
        let logged: Vec<f64> = r.logged_ready_ms.iter().map(|&v| v as f64).collect();
        let (rd, _, _) = spread(&r.ready_ms);
        let _ = writeln!(md, "| {b} | spawn → /v1.0/healthz/outbound 204 (ms); log `elapsed_ms` | {}; {} | daprd: seconds | – | ≤ 50 ms | {} |", ms(&r.ready_ms), ms(&logged), verdict(rd <= 50.0));
        let _ = writeln!(
            md,
            "| {b} | failed sends (all scenarios but the stalled app) | {} | | | 0 | {} |",
            r.errors,
            verdict(r.errors == 0)
        );
    }
    md
}

/// Latency-percentile plot (x: percentile on a log scale of 1/(1-q); y: ms).
pub fn svg(title: &str, series: &[(String, Vec<u64>)]) -> String {
    let (w, h, pad) = (720.0, 400.0, 50.0);
    let qs: Vec<f64> = (0..=300)
        .map(|i| 1.0 - 10f64.powf(-(i as f64) / 100.0))
        .collect();
    let curves: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| {
            let mut s = v.clone();
            s.sort_unstable();
            let n = s.len();
            let pts = qs
                .iter()
                .map(|q| {
                    (
                        -(1.0 - q).log10(),
                        s[((n as f64 * q) as usize).min(n - 1)] as f64 / 1000.0,
                    )
                })
                .collect();
            (name.clone(), pts)
        })
        .collect();
    let ymax = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0.1, f64::max);
    let colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"];
    let mut out = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"{pad}\" y=\"20\">{title}</text>");
    for (i, label) in ["p0", "p90", "p99", "p99.9"].iter().enumerate() {
        let x = pad + (w - 2.0 * pad) * i as f64 / 3.0;
        let _ = write!(out, "<text x=\"{x}\" y=\"{}\">{label}</text><line x1=\"{x}\" y1=\"{pad}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/>", h - 15.0, h - pad);
    }
    let _ = write!(
        out,
        "<text x=\"5\" y=\"{pad}\">{ymax:.2} ms</text><text x=\"5\" y=\"{}\">0</text>",
        h - pad
    );
    for (i, (name, pts)) in curves.iter().enumerate() {
        let c = colors[i % colors.len()];
        let poly: Vec<String> = pts
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    pad + (w - 2.0 * pad) * x / 3.0,
                    h - pad - (h - 2.0 * pad) * y / ymax
                )
            })
            .collect();
        let _ = write!(out, "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\" points=\"{}\"/><text x=\"{}\" y=\"{}\" fill=\"{c}\">{name}</text>", poly.join(" "), pad + 10.0, pad + 15.0 * (i as f64 + 1.0));
    }
    out.push_str("</svg>");
    out
}

/// Writes the report folder and returns it.
pub fn write(
    plan: &Plan,
    results: &[BrokerResults],
    bare: &[f64],
    size_mb: f64,
) -> Result<PathBuf, String> {
    let ts = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let dir = PathBuf::from("bench-results").join(ts);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let md = markdown(plan, results, bare, size_mb);
    println!("{md}");
    std::fs::write(dir.join("report.md"), &md).map_err(|e| e.to_string())?;
    let json = serde_json::json!({
        "machine": machine(), "runs": plan.runs, "binary_mb": size_mb,
        "bare_204_tput": bare, "brokers": results,
    });
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    for r in results {
        let (publish, delivery): (Vec<_>, Vec<_>) = r
            .samples
            .iter()
            .cloned()
            .partition(|(n, _)| !n.starts_with("delivery"));
        std::fs::write(
            dir.join(format!("{}-publish.svg", r.broker)),
            svg(
                &format!("{}: publish latency @1,000 ev/s", r.broker),
                &publish,
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join(format!("{}-delivery.svg", r.broker)),
            svg(&format!("{}: publish → app delivery", r.broker), &delivery),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(dir)
}
