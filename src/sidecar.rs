//! The whole sidecar: the runtime with its API servers and admin port
//! around it. Start-up and shutdown run in the order that keeps sidebus's
//! promises:
//!
//! 1. every resource is parsed and validated before anything else happens —
//!    invalid configuration exits 78 having bound no port;
//! 2. components are built, then the APIs (HTTP and gRPC) bind and answer
//!    (outbound ready); a port already taken fails the start;
//! 3. once the app port accepts, its subscriptions are discovered, merged with
//!    the declarative ones and started (fully ready);
//! 4. on SIGTERM, SIGINT or `/v1.0/shutdown`: readiness drops, deliveries stop
//!    fetching and drain up to the grace period (the APIs stay up meanwhile so
//!    handlers can still publish), then the APIs close and components flush.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::registry::Registry;
use crate::config::Settings;
use crate::runtime::start::{self, Delivery, EXIT_CONFIG, EXIT_FAILURE};
use crate::runtime::Runtime;

/// Runs the sidecar until it is told to stop; returns the exit status.
pub async fn run(settings: Settings) -> u8 {
    let started = Instant::now();
    let registry = Registry::builtin();
    let resources = match start::load_resources(&settings, &registry) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let handles = match start::build_components(&resources, &registry, &settings).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let listeners = match Listeners::bind(&settings).await {
        Ok(l) => l,
        Err(code) => return code,
    };

    let rt = Arc::new(Runtime::new(settings, handles));
    rt.readiness.set_outbound(true);
    tracing::info!(app_id = %rt.app_id(), elapsed_ms = started.elapsed().as_millis() as u64, "Outbound ready.");

    let apis = Apis::spawn(&rt, listeners);
    let delivery = match Delivery::start(&rt, resources) {
        Ok(d) => d,
        Err(code) => return code,
    };

    let forced = wait_for_signal(&rt).await;
    if forced {
        tracing::warn!("Forced shutdown requested; exiting now.");
        tokio::time::sleep(Duration::from_millis(100)).await;
        return EXIT_FAILURE;
    }
    delivery.stop(&rt).await;
    apis.stop().await;
    start::close_components(&rt).await;
    tracing::info!("Stopped.");
    0
}

/// The bound sockets of the HTTP API, the gRPC API and the admin port.
struct Listeners {
    http: Vec<TcpListener>,
    grpc: Vec<TcpListener>,
    admin: Vec<TcpListener>,
}

impl Listeners {
    /// Binds every port before anything is served, so a port already taken
    /// fails the start. `Err` carries the exit status.
    async fn bind(settings: &Settings) -> Result<Self, u8> {
        let addrs = &settings.listen_addresses;
        Ok(Self {
            http: bind_all(addrs, settings.http_port, "HTTP API").await?,
            grpc: bind_all(addrs, settings.grpc_port, "gRPC API").await?,
            admin: bind_all(
                &settings.admin_listen_addresses,
                settings.metrics_port,
                "admin port",
            )
            .await?,
        })
    }
}

async fn bind_all(addrs: &[String], port: u16, what: &str) -> Result<Vec<TcpListener>, u8> {
    let mut out = Vec::new();
    for addr in addrs {
        let host = addr.trim().trim_start_matches('[').trim_end_matches(']');
        let sock: SocketAddr = match format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
        {
            Ok(s) => s,
            Err(_) => {
                eprintln!("sidebus: listen address {addr:?} is not an IP address");
                return Err(EXIT_CONFIG);
            }
        };
        match TcpListener::bind(sock).await {
            // The servers log their addresses once they accept.
            Ok(l) => out.push(l),
            Err(err) => {
                eprintln!("sidebus: cannot listen on {sock} for the {what}: {err}");
                return Err(EXIT_FAILURE);
            }
        }
    }
    Ok(out)
}

/// The API servers' tasks and their common stop signal.
struct Apis {
    http: JoinHandle<std::io::Result<()>>,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    admin: JoinHandle<()>,
    stop: CancellationToken,
}

impl Apis {
    /// Serves the HTTP and gRPC APIs and the admin port on `listeners`.
    fn spawn(rt: &Arc<Runtime>, listeners: Listeners) -> Self {
        let stop = CancellationToken::new();
        Self {
            http: tokio::spawn(crate::api::http::serve(
                rt.clone(),
                listeners.http,
                stop.clone(),
            )),
            grpc: tokio::spawn(crate::api::grpc::serve(
                rt.clone(),
                listeners.grpc,
                stop.clone(),
            )),
            admin: tokio::spawn(serve_admin(rt.clone(), listeners.admin, stop.clone())),
            stop,
        }
    }

    /// Closes every server, waiting a bounded time for each.
    async fn stop(self) {
        self.stop.cancel();
        match tokio::time::timeout(Duration::from_secs(2), self.http).await {
            Ok(Ok(Ok(()))) | Err(_) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "HTTP API stopped with an error."),
            Ok(Err(err)) => tracing::warn!(error = %err, "HTTP API task failed."),
        }
        match tokio::time::timeout(Duration::from_secs(2), self.grpc).await {
            Ok(Ok(Ok(()))) | Err(_) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "gRPC API stopped with an error."),
            Ok(Err(err)) => tracing::warn!(error = %err, "gRPC API task failed."),
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.admin).await;
    }
}

async fn serve_admin(rt: Arc<Runtime>, listeners: Vec<TcpListener>, stop: CancellationToken) {
    let app = crate::admin::router(rt);
    let mut tasks = Vec::new();
    for l in listeners {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "Admin port listening.");
        }
        let app = app.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let served =
                axum::serve(l, app).with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(err) = served.await {
                tracing::warn!(error = %err, "Admin port failed.");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Waits for SIGTERM, SIGINT or a shutdown through the API (`false`), or a
/// forced shutdown (`true`).
async fn wait_for_signal(rt: &Runtime) -> bool {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "Cannot watch SIGTERM.");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT received; shutting down."); false }
        _ = term => { tracing::info!("SIGTERM received; shutting down."); false }
        _ = rt.shutdown.cancelled() => { tracing::info!("Shutdown requested through the API."); false }
        _ = rt.force_shutdown.cancelled() => true,
    }
}
