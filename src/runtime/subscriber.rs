//! The runtime's side of delivery: each subscription is resolved against
//! the loaded components (app scopes, unknown pubsub names, topic scopes),
//! handed to the delivery layer with its component as the source, and
//! recorded in [`Runtime::subscriptions`] for the metadata API.

use std::sync::Arc;
use std::time::Duration;

use super::component::ComponentHandle;
use super::state::Runtime;
use crate::config::model::SubscriptionSpec;
use crate::delivery::{AppChannel, DeliveryManager, SubscriptionStats};

/// Runs the subscriptions of one app channel (the app's, or one stream's).
pub struct Subscriber {
    runtime: Arc<Runtime>,
    manager: DeliveryManager,
}

impl Subscriber {
    /// A subscriber delivering through `channel`, limited by the runtime's
    /// `--app-max-concurrency`.
    pub fn new(runtime: Arc<Runtime>, channel: Arc<dyn AppChannel>) -> Self {
        let manager = DeliveryManager::new(channel, runtime.settings.app_max_concurrency);
        Self { runtime, manager }
    }

    /// Subscribes each spec on its component (skipping/logging ones scoped
    /// to other apps, whose pubsub is unknown, whose topic the component's
    /// scopes forbid, or whose options are invalid) and records the others
    /// in `runtime.subscriptions`. The first subscribe attempt happens before
    /// this returns; failures are retried in the background.
    pub async fn start(&self, subs: Vec<SubscriptionSpec>) {
        if self.manager.is_stopped() {
            // A stopped manager would abandon every event at once, and the
            // broker would hand them straight back: refuse instead.
            tracing::error!(
                count = subs.len(),
                "Delivery is shut down; subscriptions not started."
            );
            return;
        }
        for spec in subs {
            let Some(component) = self.resolve(&spec) else {
                continue;
            };
            let group = component.consumer_group(self.runtime.app_id());
            if self.manager.start(&spec, component, group).await {
                self.runtime
                    .subscriptions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(spec);
            }
        }
    }

    /// The component `spec` reads from, when this app may subscribe there.
    fn resolve(&self, spec: &SubscriptionSpec) -> Option<Arc<ComponentHandle>> {
        let (pubsub, topic) = (&spec.pubsub_name, &spec.topic);
        let app_id = self.runtime.app_id();
        if !spec.scopes.is_empty() && !spec.scopes.iter().any(|s| s == app_id) {
            tracing::debug!(pubsub = %pubsub, topic = %topic, "Subscription is scoped to other apps.");
            return None;
        }
        let Some(component) = self.runtime.component(pubsub).cloned() else {
            tracing::error!(pubsub = %pubsub, topic = %topic, "Subscription names an unknown pubsub; skipped.");
            return None;
        };
        if !component.scopes.may_subscribe(topic) {
            tracing::warn!(pubsub = %pubsub, topic = %topic, app_id,
                "Topic scopes forbid this subscription; skipped.");
            return None;
        }
        Some(component)
    }

    /// Counters of every started subscription.
    pub fn stats(&self) -> Vec<SubscriptionStats> {
        self.manager.stats()
    }

    /// Graceful stop (see [`DeliveryManager::shutdown`]).
    pub async fn shutdown(&self, grace: Duration) {
        self.manager.shutdown(grace).await;
    }
}
