//! The real `sidebus` binary as a child process, a tiny HTTP client, and
//! app scripts that serve `GET /dapr/subscribe`.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::app::{Answer, Recorded, Script};
use super::eventually::assert_eventually;
pub use super::eventually::DEADLINE;

/// Removes every variable the binary reads as a flag (`DAPR_API_TOKEN`,
/// `APP_API_TOKEN`, the `SIDEBUS_*` forms; taken from the flag definitions,
/// subcommands included) and the secret store's folder from a child's
/// environment, so a value in the developer's shell cannot change a test;
/// a test wanting one passes the flag instead.
pub fn clear_sidecar_env(cmd: &mut Command) {
    fn names(c: &clap::Command, out: &mut Vec<std::ffi::OsString>) {
        out.extend(
            c.get_arguments()
                .filter_map(|a| a.get_env().map(|e| e.to_owned())),
        );
        for sub in c.get_subcommands() {
            names(sub, out);
        }
    }
    // The secret store's folder is read from the environment too.
    let mut all = vec![std::ffi::OsString::from(
        sidebus::config::secrets::SECRETS_DIR_ENV,
    )];
    names(
        &<sidebus::config::Cli as clap::CommandFactory>::command(),
        &mut all,
    );
    for name in all {
        cmd.env_remove(name);
    }
}

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
        clear_sidecar_env(&mut cmd);
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
        let _answered = assert_eventually!(
            format!("sidebus to answer {want} on {path}"),
            request("GET", &self.url(path), &[], Vec::new())
                .await
                .map(|r| r.status),
            |got: &Result<u16, String>| got.as_ref().is_ok_and(|s| *s == want)
        );
    }

    /// Waits for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let status = assert_eventually!(
            "sidebus to exit",
            within,
            self.child.try_wait().expect("try_wait"),
            |s: &Option<ExitStatus>| s.is_some()
        );
        status.expect("checked by the wait")
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sidebus"));
    cmd.args(args);
    clear_sidecar_env(&mut cmd);
    let out = cmd.output().expect("run sidebus");
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
    assert_eventually!(
        format!("{n} events at the app (observed: how many)"),
        events(app.requests()).len(),
        |got: &usize| *got >= n
    );
    events(app.requests())
}
