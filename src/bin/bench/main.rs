//! `bench`: measures sidebus against same-run baselines (direct broker
//! clients, a bare HTTP server) and writes `bench-results/<ts>/`.
//!
//! `cargo run --release --features bench --bin bench -- [--quick] [--brokers in-memory,embedded,rabbitmq,kafka] [--runs N] [--sidebus PATH]`

#![forbid(unsafe_code)]

mod direct;
mod grpc;
mod load;
mod rabbit_mgmt;
mod rabbit_sink;
mod report;
mod scenarios;
mod servers;
mod sidecar;
mod stats;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use direct::{Broker, Endpoints};

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the bench started (for progress lines).
pub fn since_start() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// What to run, from the command line.
pub struct Plan {
    /// Repeats of the scenarios whose spread matters.
    pub runs: usize,
    /// Seconds of each fixed-rate run.
    pub lat_secs: u64,
    /// Seconds of each closed-loop run.
    pub tput_secs: u64,
    /// Brokers to measure.
    pub brokers: Vec<Broker>,
    /// Scratch folder (data dirs, resources).
    pub scratch: PathBuf,
    /// Where the external brokers listen.
    pub endpoints: Endpoints,
}

impl Plan {
    /// Duration of a fixed-rate run.
    pub fn lat_dur(&self) -> Duration {
        Duration::from_secs(self.lat_secs)
    }
    /// Duration of a closed-loop run.
    pub fn tput_dur(&self) -> Duration {
        Duration::from_secs(self.tput_secs)
    }
}

fn parse_args() -> Result<(Plan, Option<PathBuf>), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let all: Vec<&str> = Broker::ALL.iter().map(|b| b.name()).collect();
    let brokers = value("--brokers").unwrap_or_else(|| all.join(","));
    let brokers = brokers
        .split(',')
        .map(|b| Broker::parse(b).ok_or_else(|| format!("unknown broker {b} ({})", all.join(", "))))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = value("--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let scratch = std::env::temp_dir().join(format!("sidebus-bench-{}", std::process::id()));
    let plan = Plan {
        runs,
        lat_secs: if quick { 4 } else { 8 },
        tput_secs: if quick { 2 } else { 4 },
        brokers,
        scratch,
        endpoints: Endpoints::from_env(),
    };
    Ok((plan, value("--sidebus").map(PathBuf::from)))
}

/// The release `sidebus`, built on demand.
fn sidebus_binary(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let bin = Path::new(&target).join("release").join("sidebus");
    eprintln!("[bench] cargo build --release --bin sidebus");
    let ok = Command::new("cargo")
        .args(["build", "--release", "--bin", "sidebus"])
        .status()
        .map_err(|e| e.to_string())?;
    if !ok.success() || !bin.exists() {
        return Err(format!("could not build {}", bin.display()));
    }
    Ok(bin)
}

/// Runs `scripts/brokers/<name> <cmd>` (`start` reuses a running broker;
/// `stop` stops only one the script started).
fn broker_script(name: &str, cmd: &str) -> Result<(), String> {
    let ok = Command::new(Path::new("scripts/brokers").join(name))
        .arg(cmd)
        .status()
        .map_err(|e| format!("{name} {cmd}: {e}"))?;
    if ok.success() {
        Ok(())
    } else {
        Err(format!("{name} {cmd} failed"))
    }
}

/// The provisioning scripts of the external brokers in `plan`.
fn scripts(plan: &Plan) -> Vec<&'static str> {
    let mut v = Vec::new();
    for s in plan.brokers.iter().filter_map(|b| b.script()) {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    since_start();
    match run().await {
        Ok(dir) => {
            eprintln!("[bench] done: {}", dir.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("[bench] failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<PathBuf, String> {
    let (plan, given) = parse_args()?;
    let bin = sidebus_binary(given)?;
    let scripts = scripts(&plan);
    let out = match scripts.iter().try_for_each(|s| broker_script(s, "start")) {
        Ok(()) => measure(&plan, &bin).await,
        Err(e) => Err(e),
    };
    // Stopped whatever happened above (each script stops only its own broker).
    for s in &scripts {
        if let Err(e) = broker_script(s, "stop") {
            eprintln!("[bench] {e}");
        }
    }
    let (results, bare_tput) = out?;
    let _ = std::fs::remove_dir_all(&plan.scratch);
    let size_mb = std::fs::metadata(&bin)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(0.0);
    report::write(&plan, &results, &bare_tput, size_mb)
}

/// The bare-server baseline, then every broker's scenarios.
async fn measure(
    plan: &Plan,
    bin: &Path,
) -> Result<(Vec<scenarios::BrokerResults>, Vec<f64>), String> {
    let app = Arc::new(servers::AppState::default());
    let app_port = servers::receiving_app(app.clone())
        .await
        .map_err(|e| e.to_string())?;
    let bare = servers::bare_204().await.map_err(|e| e.to_string())?;
    let mut bare_tput = Vec::new();
    let mut errors = 0;
    for i in 0..plan.runs {
        eprintln!(
            "[bench {:>7.1}s] bare 204 server, closed loop, run {}/{}",
            since_start(),
            i + 1,
            plan.runs
        );
        bare_tput.push(
            scenarios::http_closed_loop(
                bare,
                "/v1.0/publish/pubsub/tput",
                scenarios::CONNS,
                1,
                plan.tput_dur(),
                &mut errors,
            )
            .await?,
        );
    }
    let mut results = Vec::new();
    for &b in &plan.brokers {
        results.push(scenarios::run(plan, b, bin, app.clone(), app_port).await?);
    }
    Ok((results, bare_tput))
}
