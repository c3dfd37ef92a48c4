//! The real `sidebus` binary as a child process, a tiny HTTP client, and
//! app scripts that serve `GET /dapr/subscribe`.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::app::{Answer, Recorded, Script};

/// Long enough for a cold start on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A port nobody listens on right now (synchronous, for command lines).
pub fn free_port_now() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A running sidebus process; killed when dropped.
pub struct SidecarProcess {
    pub child: Child,
    pub http_port: u16,
    pub grpc_port: u16,
    pub metrics_port: u16,
    /// The working directory `start` made, so parallel tests never share the
    /// default (relative) data dir and its lock.
    _cwd: Option<tempfile::TempDir>,
}

impl SidecarProcess {
    /// Starts `sidebus` with the given extra flags on fresh ports, in a
    /// fresh working directory.
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sc = Self::start_in(args, Some(dir.path()));
        sc._cwd = Some(dir);
        sc
    }

    /// Same, with the working directory set (the default data dir is relative).
    pub fn start_in(args: &[&str], cwd: Option<&Path>) -> Self {
        let (http_port, grpc_port, metrics_port) =
            (free_port_now(), free_port_now(), free_port_now());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sidebus"));
        cmd.args(["--dapr-http-port", &http_port.to_string()])
            .args(["--dapr-grpc-port", &grpc_port.to_string()])
            .args(["--metrics-port", &metrics_port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().expect("spawn sidebus");
        Self {
            child,
            http_port,
            grpc_port,
            metrics_port,
            _cwd: None,
        }
    }

    /// `http://127.0.0.1:<http port>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// Waits until `GET path` answers `want`.
    pub async fn wait_status(&self, path: &str, want: u16) {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Ok(r) = request("GET", &self.url(path), &[], Vec::new()).await {
                if r.status == want {
                    return;
                }
            }
            assert!(
                Instant::now() < end,
                "sidebus never answered {want} on {path}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "sidebus did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -TERM failed");
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sidebus` to completion (for `validate` and failing starts).
pub fn run_to_end(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sidebus"))
        .args(args)
        .output()
        .expect("run sidebus");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 request.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Response, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// An app script: answers `GET /dapr/subscribe` with `subscriptions`, and
/// every event with `events`.
pub fn subscriber(subscriptions: serde_json::Value, events: Script) -> Script {
    let subs = subscriptions.to_string();
    Arc::new(move |req: &Recorded, earlier: &[Recorded]| {
        if req.path == "/dapr/subscribe" {
            Answer::new(200, &subs)
        } else {
            events(req, earlier)
        }
    })
}

/// The events among the app's requests (everything but `/dapr/subscribe`).
pub fn events(requests: Vec<Recorded>) -> Vec<Recorded> {
    requests
        .into_iter()
        .filter(|r| r.path != "/dapr/subscribe")
        .collect()
}

/// Waits until the app received at least `n` events.
pub async fn wait_events(app: &super::app::TestApp, n: usize) -> Vec<Recorded> {
    super::app::wait_until(DEADLINE, || events(app.requests()).len() >= n).await;
    events(app.requests())
}
