//! The sidecar's shared state ([`Runtime`]): the components by name, the
//! active subscriptions, readiness, and the shutdown signals.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use super::component::ComponentHandle;
use crate::config::model::SubscriptionSpec;
use crate::config::Settings;

/// Readiness latches: outbound (components built) and app (channel up and
/// subscriptions started).
#[derive(Debug, Default)]
pub struct Readiness {
    outbound: AtomicBool,
    app: AtomicBool,
}

impl Readiness {
    /// Components are initialized: publishing works.
    pub fn set_outbound(&self, ready: bool) {
        self.outbound.store(ready, Ordering::Release);
    }
    /// The app channel is up and subscriptions are running.
    pub fn set_app(&self, ready: bool) {
        self.app.store(ready, Ordering::Release);
    }
    /// Can the sidecar publish?
    pub fn outbound(&self) -> bool {
        self.outbound.load(Ordering::Acquire)
    }
    /// Is the sidecar fully initialized?
    pub fn app(&self) -> bool {
        self.app.load(Ordering::Acquire)
    }
}

/// The sidecar's state, shared by every edge and the delivery layer.
#[derive(Debug)]
pub struct Runtime {
    /// Flags it runs with.
    pub settings: Settings,
    /// Components by name.
    pub components: BTreeMap<String, Arc<ComponentHandle>>,
    /// Active subscriptions of every kind (reported by the metadata API).
    pub subscriptions: RwLock<Vec<SubscriptionSpec>>,
    /// Attributes set through `PUT /v1.0/metadata/{key}`.
    pub extended_metadata: RwLock<BTreeMap<String, String>>,
    /// Readiness latches.
    pub readiness: Readiness,
    /// Cancelled to start a graceful shutdown.
    pub shutdown: CancellationToken,
    /// Cancelled to exit at once with status 1 (`dapr-force-shutdown`).
    pub force_shutdown: CancellationToken,
}

impl Runtime {
    /// State for `settings` with `components` loaded.
    pub fn new(settings: Settings, components: Vec<ComponentHandle>) -> Self {
        let components = components
            .into_iter()
            .map(|c| (c.spec.name.clone(), Arc::new(c)))
            .collect();
        Self {
            settings,
            components,
            subscriptions: RwLock::new(Vec::new()),
            extended_metadata: RwLock::new(BTreeMap::new()),
            readiness: Readiness::default(),
            shutdown: CancellationToken::new(),
            force_shutdown: CancellationToken::new(),
        }
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.settings.app_id
    }

    /// A component by name.
    pub fn component(&self, name: &str) -> Option<&Arc<ComponentHandle>> {
        self.components.get(name)
    }
}
