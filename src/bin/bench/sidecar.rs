//! Runs the release `sidebus` binary on loopback and reads its figures
//! (ready time, resident memory).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Errors starting or probing the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The process could not be spawned.
    #[error("spawn {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
    /// It did not become outbound-ready in time.
    #[error("not outbound-ready within {0:?}; last log lines: {1}")]
    NotReady(Duration, String),
}

/// A running sidecar.
pub struct Sidecar {
    child: Child,
    /// HTTP API port.
    pub http: u16,
    /// gRPC API port (`--dapr-grpc-port`).
    pub grpc: u16,
    /// Spawn → `/v1.0/healthz/outbound` 204, in ms.
    pub ready_ms: f64,
    /// `elapsed_ms` of the sidecar's own `Outbound ready.` log line.
    pub logged_ready_ms: Option<u64>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

async fn healthz(port: u16) -> bool {
    match crate::load::Conn::open(port).await {
        Ok(mut c) => c.get_status("/v1.0/healthz/outbound").await == Some(204),
        Err(_) => false,
    }
}

impl Sidecar {
    /// Starts `bin` with `resources` (and `app_port` if given) and waits for
    /// outbound readiness.
    pub async fn start(
        bin: &Path,
        resources: &Path,
        data: &Path,
        app_port: Option<u16>,
    ) -> Result<Self, SidecarError> {
        let (http, grpc, metrics) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--app-id",
            "bench",
            "--log-level",
            "info",
            "--dapr-graceful-shutdown-seconds",
            "1",
        ])
        .arg("--dapr-http-port")
        .arg(http.to_string())
        .arg("--dapr-grpc-port")
        .arg(grpc.to_string())
        .arg("--metrics-port")
        .arg(metrics.to_string())
        .arg("--resources-path")
        .arg(resources)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(p) = app_port {
            cmd.arg("--app-port").arg(p.to_string());
        }
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| SidecarError::Spawn(bin.to_path_buf(), e))?;
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut l) = lines.lock() {
                        // Bounded: keep the first lines (start-up) and drop the rest.
                        if l.len() < 200 {
                            l.push(line);
                        }
                    }
                }
            });
        }
        let deadline = Duration::from_secs(20);
        loop {
            if healthz(http).await {
                break;
            }
            if spawned.elapsed() > deadline {
                let _ = child.kill();
                let tail = lines.lock().map(|l| l.join("\n")).unwrap_or_default();
                return Err(SidecarError::NotReady(deadline, tail));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ready_ms = spawned.elapsed().as_secs_f64() * 1000.0;
        // The log line is written before the health check can answer 204.
        let logged_ready_ms = lines.lock().ok().and_then(|l| {
            l.iter()
                .find(|s| s.contains("Outbound ready"))
                .and_then(|s| {
                    let tail = &s[s.find("elapsed_ms")? + "elapsed_ms".len()..];
                    let digits: String = tail
                        .chars()
                        .skip_while(|c| !c.is_ascii_digit())
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    digits.parse().ok()
                })
        });
        Ok(Self {
            child,
            http,
            grpc,
            ready_ms,
            logged_ready_ms,
        })
    }

    /// VmRSS of the process in MB.
    pub fn rss_mb(&self) -> f64 {
        rss_mb(self.child.id())
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sidecar {
    /// A scenario that failed midway must not leave the process behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// VmRSS of `pid` in MB, from `/proc/<pid>/status` (0 when unreadable).
pub fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
