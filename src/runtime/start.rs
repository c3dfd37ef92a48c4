//! The runtime's own start-up and shutdown steps: resources loaded and
//! validated, components built, the app's subscriptions discovered and
//! started, delivery drained, components closed. `crate::sidecar` puts them
//! in order around the API servers.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::component::ComponentHandle;
use super::state::Runtime;
use super::subscriber::Subscriber;
use crate::broker::factory::BuildContext;
use crate::broker::registry::Registry;
use crate::config::flags::AppProtocol;
use crate::config::model::Resources;
use crate::config::resources::{default_component, load};
use crate::config::{ConfigError, Settings};
use crate::delivery::{
    discover_grpc, discover_http, merge, AppChannel, GrpcAppChannel, HttpAppChannel,
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
                let outbox = match crate::policy::outbox::open(outbox, pubsub.clone()).await {
                    Ok(o) => o,
                    Err(err) => {
                        eprintln!(
                            "sidebus: component {} outbox failed to open: {err}",
                            spec.name
                        );
                        return Err(EXIT_FAILURE);
                    }
                };
                let handle = ComponentHandle::new(spec.clone(), pubsub, &settings.app_id);
                #[cfg(feature = "embedded")]
                let handle = handle.with_outbox(outbox);
                tracing::info!(name = %spec.name, r#type = %spec.type_name, "Component ready.");
                handles.push(handle);
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

/// The app's delivery while the sidecar runs: its subscriber (none without
/// an app port) and the task that discovers and starts its subscriptions.
pub struct Delivery {
    subscriber: Option<Arc<Subscriber>>,
    starting: JoinHandle<()>,
}

impl Delivery {
    /// Opens the way to the app, then, in the background, waits for the app
    /// port, discovers its subscriptions, merges them with the declarative
    /// ones of `resources` and starts them (the app readiness latch follows).
    /// `Err` carries the exit status.
    pub fn start(rt: &Arc<Runtime>, resources: Resources) -> Result<Self, u8> {
        let channel = app_channel(&rt.settings)?;
        let subscriber = channel.map(|c| Arc::new(Subscriber::new(rt.clone(), c)));
        let starting = tokio::spawn(start_subscriptions(
            rt.clone(),
            subscriber.clone(),
            resources,
        ));
        Ok(Self {
            subscriber,
            starting,
        })
    }

    /// Readiness drops, discovery stops, deliveries stop fetching and drain
    /// up to the grace period; then the outbound latch drops too.
    pub async fn stop(self, rt: &Runtime) {
        let grace = Duration::from_secs(rt.settings.graceful_shutdown_seconds);
        rt.readiness.set_app(false);
        // Stops discovery if it is still waiting for the app.
        rt.shutdown.cancel();
        self.starting.abort();
        if let Some(s) = self.subscriber {
            s.shutdown(grace).await;
        }
        rt.readiness.set_outbound(false);
    }
}

/// Flushes and releases every component: the last step of a shutdown, once
/// nothing publishes any more.
pub async fn close_components(rt: &Runtime) {
    for c in rt.components.values() {
        if let Err(err) = c.close().await {
            tracing::warn!(name = %c.spec.name, error = %err, "Component did not close cleanly.");
        }
    }
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
    subscriber: Option<Arc<Subscriber>>,
    resources: Resources,
) {
    let Some(subscriber) = subscriber else {
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
    subscriber.start(subs).await;
    rt.readiness.set_app(true);
    tracing::info!("Ready.");
}
