//! Start-up and shutdown, in the order that keeps sidebus's promises:
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
use tokio_util::sync::CancellationToken;

use super::{ComponentHandle, Runtime};
use crate::broker::registry::{BuildContext, Registry};
use crate::config::flags::AppProtocol;
use crate::config::model::Resources;
use crate::config::resources::{default_component, load};
use crate::config::{ConfigError, Settings};
use crate::delivery::{
    discover_grpc, discover_http, merge, AppChannel, DeliveryManager, GrpcAppChannel,
    HttpAppChannel,
};

/// Exit status for invalid configuration (EX_CONFIG), shared with
/// `sidebus validate`.
pub use crate::config::validate::EXIT_CONFIG;
/// Exit status for a failed start or a forced shutdown.
pub const EXIT_FAILURE: u8 = 1;

/// Loads and validates the resources for `settings`, printing every error.
/// `Err` carries the exit status.
pub fn load_resources(settings: &Settings, registry: &Registry) -> Result<Resources, u8> {
    match check_resources(settings, registry) {
        Ok(resources) => Ok(resources),
        Err(errors) => {
            eprintln!("sidebus: {} configuration error(s):", errors.len());
            for e in &errors {
                eprintln!("  {e}");
            }
            Err(EXIT_CONFIG)
        }
    }
}

/// The start-up's configuration step: the resources for `settings`, or
/// every error. It is the same load `sidebus validate` runs
/// ([`crate::config::validate::validate`]), so the two refuse the same
/// things with the same messages.
pub fn check_resources(
    settings: &Settings,
    registry: &Registry,
) -> Result<Resources, Vec<ConfigError>> {
    if settings.resources_path.is_empty() {
        let spec = default_component(registry, &settings.app_id);
        tracing::info!(name = %spec.name, r#type = %spec.type_name, "No resources path; using the default component.");
        return Ok(Resources {
            components: vec![spec],
            ..Resources::default()
        });
    }
    let loaded = load(&settings.resources_path, &settings.app_id, registry)?;
    for w in &loaded.warnings {
        tracing::warn!(warning = %w, "Resource warning.");
    }
    Ok(loaded.resources)
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

/// Builds every component of `resources` (with its outbox), as start-up
/// does before binding any port. `Err` carries the exit status; the reason
/// is printed.
pub async fn build_components(
    resources: &Resources,
    registry: &Registry,
    settings: &Settings,
) -> Result<Vec<ComponentHandle>, u8> {
    let ctx = BuildContext {
        app_id: settings.app_id.clone(),
        data_dir: settings.data_dir.clone(),
    };
    let mut handles = Vec::new();
    for spec in &resources.components {
        // load() only yields types the registry knows; stay defensive anyway.
        let Some(factory) = registry.get(&spec.type_name) else {
            eprintln!(
                "sidebus: component {} has unknown type {}",
                spec.name, spec.type_name
            );
            return Err(EXIT_CONFIG);
        };
        #[cfg(feature = "embedded")]
        let outbox = match crate::policy::outbox::OutboxConfig::from_spec(spec, &settings.data_dir)
        {
            Ok(o) => o,
            Err(err) => {
                eprintln!("sidebus: {err}");
                return Err(EXIT_CONFIG);
            }
        };
        match factory.build(spec, &ctx).await {
            Ok(pubsub) => {
                // The outbox sits in front of the component's publish (see
                // docs/outbox.md); it opens its log and starts draining
                // what a previous run left.
                #[cfg(feature = "embedded")]
                let pubsub = match crate::policy::outbox::wrap(outbox, pubsub).await {
                    Ok(p) => p,
                    Err(err) => {
                        eprintln!(
                            "sidebus: component {} outbox failed to open: {err}",
                            spec.name
                        );
                        return Err(EXIT_FAILURE);
                    }
                };
                tracing::info!(name = %spec.name, r#type = %spec.type_name, "Component ready.");
                handles.push(ComponentHandle::new(spec.clone(), pubsub, &settings.app_id));
            }
            Err(err) => {
                eprintln!(
                    "sidebus: component {} ({}) failed to start: {err}",
                    spec.name, spec.type_name
                );
                return Err(EXIT_FAILURE);
            }
        }
    }
    Ok(handles)
}

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

/// Runs the sidecar until it is told to stop; returns the exit status.
pub async fn run(settings: Settings) -> u8 {
    let started = Instant::now();
    let registry = Registry::builtin();
    let resources = match load_resources(&settings, &registry) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let handles = match build_components(&resources, &registry, &settings).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let http = match bind_all(&settings.listen_addresses, settings.http_port, "HTTP API").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let grpc = match bind_all(&settings.listen_addresses, settings.grpc_port, "gRPC API").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let admin = match bind_all(
        &settings.admin_listen_addresses,
        settings.metrics_port,
        "admin port",
    )
    .await
    {
        Ok(l) => l,
        Err(code) => return code,
    };

    let rt = Arc::new(Runtime::new(settings, handles));
    rt.readiness.set_outbound(true);
    tracing::info!(app_id = %rt.app_id(), elapsed_ms = started.elapsed().as_millis() as u64, "Outbound ready.");

    let api_stop = CancellationToken::new();
    let api = tokio::spawn(crate::api::http::serve(rt.clone(), http, api_stop.clone()));
    let grpc_api = tokio::spawn(crate::api::grpc::serve(rt.clone(), grpc, api_stop.clone()));
    let admin_task = tokio::spawn(serve_admin(rt.clone(), admin, api_stop.clone()));

    let channel = match app_channel(&rt.settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let manager = channel.map(|c| Arc::new(DeliveryManager::new(rt.clone(), c)));
    let subscriber = tokio::spawn(start_subscriptions(rt.clone(), manager.clone(), resources));

    let forced = wait_for_signal(&rt).await;
    if forced {
        tracing::warn!("Forced shutdown requested; exiting now.");
        tokio::time::sleep(Duration::from_millis(100)).await;
        return EXIT_FAILURE;
    }
    let apis = Apis {
        http: api,
        grpc: grpc_api,
        admin: admin_task,
        stop: api_stop,
    };
    shutdown(rt, manager, subscriber, apis).await;
    tracing::info!("Stopped.");
    0
}

/// The API servers' tasks and their common stop signal.
struct Apis {
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    grpc: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    admin: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

/// The way to the app for `--app-protocol`; `None` without an app port.
fn app_channel(settings: &Settings) -> Result<Option<Arc<dyn AppChannel>>, u8> {
    if settings.app_port.is_none() {
        return Ok(None);
    }
    match settings.app_protocol {
        AppProtocol::Http => Ok(Some(Arc::new(HttpAppChannel::new(settings)))),
        AppProtocol::Grpc => match GrpcAppChannel::new(settings) {
            Ok(c) => Ok(Some(Arc::new(c))),
            Err(err) => {
                eprintln!("sidebus: cannot address the gRPC app: {err}");
                Err(EXIT_CONFIG)
            }
        },
    }
}

async fn start_subscriptions(
    rt: Arc<Runtime>,
    manager: Option<Arc<DeliveryManager>>,
    resources: Resources,
) {
    let Some(manager) = manager else {
        if !resources.subscriptions.is_empty() {
            tracing::warn!(
                count = resources.subscriptions.len(),
                "Subscriptions ignored: no --app-port to deliver to."
            );
        }
        rt.readiness.set_app(true);
        return;
    };
    let programmatic = match rt.settings.app_protocol {
        AppProtocol::Http => discover_http(&rt.settings, &rt.shutdown).await,
        AppProtocol::Grpc => discover_grpc(&rt.settings, &rt.shutdown).await,
    };
    if rt.shutdown.is_cancelled() {
        return;
    }
    let subs = merge(resources.subscriptions, programmatic);
    tracing::info!(count = subs.len(), "Starting subscriptions.");
    manager.start(subs).await;
    rt.readiness.set_app(true);
    tracing::info!("Ready.");
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

async fn shutdown(
    rt: Arc<Runtime>,
    manager: Option<Arc<DeliveryManager>>,
    subscriber: tokio::task::JoinHandle<()>,
    apis: Apis,
) {
    let grace = Duration::from_secs(rt.settings.graceful_shutdown_seconds);
    rt.readiness.set_app(false);
    // Stops discovery if it is still waiting for the app.
    rt.shutdown.cancel();
    subscriber.abort();
    if let Some(m) = manager {
        m.shutdown(grace).await;
    }
    rt.readiness.set_outbound(false);
    apis.stop.cancel();
    match tokio::time::timeout(Duration::from_secs(2), apis.http).await {
        Ok(Ok(Ok(()))) | Err(_) => {}
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "HTTP API stopped with an error."),
        Ok(Err(err)) => tracing::warn!(error = %err, "HTTP API task failed."),
    }
    match tokio::time::timeout(Duration::from_secs(2), apis.grpc).await {
        Ok(Ok(Ok(()))) | Err(_) => {}
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "gRPC API stopped with an error."),
        Ok(Err(err)) => tracing::warn!(error = %err, "gRPC API task failed."),
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), apis.admin).await;
    for c in rt.components.values() {
        if let Err(err) = c.pubsub.close().await {
            tracing::warn!(name = %c.spec.name, error = %err, "Component did not close cleanly.");
        }
    }
}
