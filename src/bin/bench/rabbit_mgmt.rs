//! RabbitMQ's management HTTP publish as an HTTP peer of sidebus's
//! single-event HTTP publish on `pubsub.rabbitmq`: the same closed-loop
//! generator (16 connections, the same 1 KB JSON event) aimed at
//! `POST /api/exchanges/%2F/amq.default/publish`, routed to a durable queue
//! the bench declares and deletes again.
//!
//! The management listener must stay on loopback. If 127.0.0.1:15672
//! already answers HTTP it is used and left alone. Otherwise the plugin's
//! TCP listener is set to 127.0.0.1 in the node's application environment
//! *before* the plugin is enabled, the binding is checked with `ss` (any
//! other address disables the plugin at once and fails the peer), and the
//! plugin is disabled again when the measurement ends, also on failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION};
use http::Method;

use crate::direct::Broker;
use crate::load::{self, event, Conn, Header};
use crate::scenarios::{progress, BrokerResults, CONNS, EVENT_BYTES};
use crate::Plan;

/// The management listener's port (RabbitMQ's default).
const PORT: u16 = 15672;
/// The plugin serving the management API.
const PLUGIN: &str = "rabbitmq_management";
/// RabbitMQ's default user, the one in the bench's AMQP URL.
const CREDENTIALS: &str = "guest:guest";
/// The durable queue the peer's messages are routed to (the routing key on
/// the default exchange).
const QUEUE: &str = "sidebus-bench-mgmt-peer";
/// The publish endpoint on the default exchange of vhost `/`.
const PUBLISH_PATH: &str = "/api/exchanges/%2F/amq.default/publish";
/// How long the enabled plugin may take to answer `/api/overview`.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on each `rabbitmqctl` / `rabbitmq-plugins` call (seconds).
const CLI_TIMEOUT_SECS: &str = "120";
/// Sequential publishes (each checked for `"routed":true`) before measuring.
const WARM_UP: usize = 20;
/// Makes the plugin's TCP listener bind 127.0.0.1:15672 ([`PORT`]) and
/// shows the value the plugin will read once loaded.
const LOOPBACK_ENV: &str = r#"application:set_env(rabbitmq_management, tcp_config, [{ip, "127.0.0.1"}, {port, 15672}]), _ = application:load(rabbitmq_management), application:get_env(rabbitmq_management, tcp_config)."#;

/// Measures the peer `plan.runs` times into `r.peer_http_tput`; a peer that
/// cannot be measured (safely) is recorded in `r.peer_error`, not fatal.
pub async fn measure(plan: &Plan, r: &mut BrokerResults) {
    progress(Broker::RabbitMq, "RabbitMQ management HTTP publish (peer)");
    if let Err(e) = run(plan, r).await {
        progress(
            Broker::RabbitMq,
            &format!("management peer not measured: {e}"),
        );
        r.peer_error = Some(e);
    }
}

async fn run(plan: &Plan, r: &mut BrokerResults) -> Result<(), String> {
    let auth: Header = (
        AUTHORIZATION,
        HeaderValue::try_from(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(CREDENTIALS)
        ))
        .map_err(|e| e.to_string())?,
    );
    let listener = Listener::start(&auth).await?;
    r.peer_listener = listener.binding.clone();
    progress(
        Broker::RabbitMq,
        &format!("management listener: {}", listener.binding),
    );
    let out = publish_runs(plan, &auth, r).await;
    let deleted = delete_queue(&auth).await;
    // Disables the plugin if the bench enabled it.
    drop(listener);
    out.and(deleted)
}

/// Declares the queue, checks that publishes route to it, then runs the
/// closed loop.
async fn publish_runs(plan: &Plan, auth: &Header, r: &mut BrokerResults) -> Result<(), String> {
    let mut conn = Conn::open(PORT).await.map_err(|e| e.to_string())?;
    let (status, answer) = conn
        .request(
            Method::PUT,
            &queue_path(),
            "application/json",
            Some(auth),
            Bytes::from_static(br#"{"durable":true}"#),
        )
        .await
        .map_err(|e| format!("declare queue: {e}"))?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "declare queue: status {status}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    let body = Bytes::from(
        serde_json::json!({
            "properties": {},
            "routing_key": QUEUE,
            "payload": String::from_utf8_lossy(&event(0, EVENT_BYTES)),
            "payload_encoding": "string",
        })
        .to_string(),
    );
    for _ in 0..WARM_UP {
        let (status, answer) = conn
            .request(
                Method::POST,
                PUBLISH_PATH,
                "application/json",
                Some(auth),
                body.clone(),
            )
            .await
            .map_err(|e| format!("warm-up publish: {e}"))?;
        let routed = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v.get("routed").and_then(|b| b.as_bool()));
        if status != 200 || routed != Some(true) {
            return Err(format!(
                "warm-up publish: status {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
    }
    for run in 0..plan.runs {
        progress(
            Broker::RabbitMq,
            &format!(
                "management HTTP publish, closed loop, run {}/{}",
                run + 1,
                plan.runs
            ),
        );
        let (ok, bad, el) = load::post_closed_loop(
            PORT,
            PUBLISH_PATH,
            CONNS,
            body.clone(),
            Some(auth.clone()),
            plan.tput_dur(),
        )
        .await
        .map_err(|e| e.to_string())?;
        r.peer_errors += bad;
        r.peer_http_tput.push(ok as f64 / el.as_secs_f64());
    }
    Ok(())
}

/// The management path of [`QUEUE`] in vhost `/`.
fn queue_path() -> String {
    format!("/api/queues/%2F/{QUEUE}")
}

/// Deletes the peer's queue and the messages in it (absent is fine).
async fn delete_queue(auth: &Header) -> Result<(), String> {
    let mut conn = Conn::open(PORT).await.map_err(|e| e.to_string())?;
    let (status, _) = conn
        .request(
            Method::DELETE,
            &queue_path(),
            "application/json",
            Some(auth),
            Bytes::new(),
        )
        .await
        .map_err(|e| format!("delete queue: {e}"))?;
    match status {
        200..=299 | 404 => Ok(()),
        s => Err(format!("delete queue: status {s}")),
    }
}

/// A management listener on 127.0.0.1:15672 while this value lives; when
/// the bench enabled the plugin, dropping it disables the plugin again.
struct Listener {
    /// The bench enabled the plugin (and so disables it).
    enabled: bool,
    /// The enabled-plugins file, when enabling the plugin created it.
    created_file: Option<PathBuf>,
    /// `ss` line(s) of the listener.
    binding: String,
}

impl Listener {
    /// Uses a listener that already answers, else enables the plugin on
    /// loopback and checks where it listens.
    async fn start(auth: &Header) -> Result<Self, String> {
        if answers(auth).await.is_some() {
            return Ok(Self {
                enabled: false,
                created_file: None,
                binding: format!("already running, left alone: {}", listening()?),
            });
        }
        let enabled = cli("rabbitmq-plugins", &["-s", "list", "-e", "-m"])?;
        if enabled.lines().any(|l| l.trim() == PLUGIN) {
            return Err(format!(
                "{PLUGIN} is enabled but 127.0.0.1:{PORT} does not answer; left alone"
            ));
        }
        let file = cli(
            "rabbitmqctl",
            &["eval", "rabbit_plugins:enabled_plugins_file()."],
        )
        .ok()
        .map(|s| PathBuf::from(s.trim().trim_matches('"')))
        .filter(|p| p.is_absolute() && !p.exists());
        let env = cli("rabbitmqctl", &["eval", LOOPBACK_ENV])?;
        if !env.contains(r#"{ip,"127.0.0.1"}"#) {
            return Err(format!(
                "could not set the management listener to loopback: {}",
                env.trim()
            ));
        }
        // From here on, dropping `l` disables the plugin.
        let mut l = Self {
            enabled: true,
            created_file: file,
            binding: String::new(),
        };
        cli("rabbitmq-plugins", &["enable", "--online", PLUGIN])?;
        let local = format!("127.0.0.1:{PORT}");
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            // Checked on every round, so a wrong binding is closed at once.
            l.binding = listening()?;
            let bound = !l.binding.is_empty();
            if bound
                && !l
                    .binding
                    .lines()
                    .all(|line| line.split_whitespace().nth(3) == Some(local.as_str()))
            {
                return Err(format!(
                    "the management listener is not on {local} only ({:?}); plugin disabled again",
                    l.binding
                ));
            }
            let status = answers(auth).await;
            if bound && status == Some(200) {
                return Ok(l);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "GET /api/overview on {local} not 200 within {READY_DEADLINE:?} (last: {status:?})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if !self.enabled {
            return;
        }
        match cli("rabbitmq-plugins", &["disable", "--online", PLUGIN]) {
            Ok(_) => progress(Broker::RabbitMq, &format!("{PLUGIN} disabled again")),
            Err(e) => progress(
                Broker::RabbitMq,
                &format!("could not disable {PLUGIN}: {e}"),
            ),
        }
        // Enabling wrote a plugins file the node did not have; disabling
        // left `[].` in it, the same as no file.
        if let Some(f) = &self.created_file {
            if std::fs::read_to_string(f).is_ok_and(|s| s.trim() == "[].") {
                let _ = std::fs::remove_file(f);
            }
        }
        match listening() {
            Ok(s) if s.is_empty() => {}
            other => progress(
                Broker::RabbitMq,
                &format!("after disabling, port {PORT}: {other:?}"),
            ),
        }
    }
}

/// Status of `GET /api/overview` on 127.0.0.1:15672, None when nothing
/// answers HTTP there.
async fn answers(auth: &Header) -> Option<u16> {
    let mut conn = Conn::open(PORT).await.ok()?;
    conn.request(
        Method::GET,
        "/api/overview",
        "application/json",
        Some(auth),
        Bytes::new(),
    )
    .await
    .ok()
    .map(|(status, _)| status)
}

/// The `ss -ltnp` lines of TCP listeners on [`PORT`].
fn listening() -> Result<String, String> {
    let out = cli("ss", &["-ltnpH"])?;
    let port = format!(":{PORT}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|a| a.ends_with(&port))
        })
        .map(str::trim)
        .collect();
    Ok(lines.join("\n"))
}

/// Runs `prog args` bounded by `timeout`; returns its stdout.
fn cli(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .arg(CLI_TIMEOUT_SECS)
        .arg(prog)
        .args(args)
        .output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{prog} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
