//! Starts, tracks and stops every subscription's delivery.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bulk::BulkDispatcher;
use super::dispatcher::{Counters, Dispatcher, SubContext};
use super::options::SubscriptionOptions;
use super::AppChannel;
use crate::backoff::Backoff;
use crate::broker::{Handler, SubscribeRequest, Subscription};
use crate::config::model::SubscriptionSpec;
use crate::routing::Router;
use crate::runtime::{ComponentHandle, Runtime};

/// Delays between attempts to subscribe after a failed first one.
const SUBSCRIBE_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(500), Duration::from_secs(30));

/// A snapshot of one subscription's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Pub/sub component name.
    pub pubsub_name: String,
    /// Topic.
    pub topic: String,
    /// Events the app processed.
    pub delivered: u64,
    /// Retries scheduled after RETRY answers (bulk: per retried request).
    pub retries: u64,
    /// Events acked without processing and without a dead-letter topic.
    pub dropped: u64,
    /// Events published to the dead-letter topic.
    pub dead_lettered: u64,
    /// Events handed back to the broker (retries exhausted, DLQ failed).
    pub handed_back: u64,
}

/// Runs the delivery of every subscription of one sidecar.
pub struct DeliveryManager {
    runtime: Arc<Runtime>,
    channel: Arc<dyn AppChannel>,
    app_limit: Option<Arc<Semaphore>>,
    stop: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
    running: Arc<Mutex<Vec<Subscription>>>,
    counters: std::sync::Mutex<Vec<(String, String, Arc<Counters>)>>,
}

impl DeliveryManager {
    /// A manager delivering through `channel`, limited by the runtime's
    /// `--app-max-concurrency`.
    pub fn new(runtime: Arc<Runtime>, channel: Arc<dyn AppChannel>) -> Self {
        let limit = runtime.settings.app_max_concurrency;
        let app_limit = (limit > 0).then(|| {
            let permits = usize::try_from(limit).unwrap_or(Semaphore::MAX_PERMITS);
            Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS)))
        });
        Self {
            runtime,
            channel,
            app_limit,
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
            running: Arc::new(Mutex::new(Vec::new())),
            counters: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Subscribes each spec on its component (skipping/logging ones whose
    /// topic the component's scopes forbid, or whose pubsub is unknown) and
    /// records them in `runtime.subscriptions`. The first subscribe attempt
    /// happens before this returns; failures are retried with backoff in the
    /// background, forever, as daprd does.
    pub async fn start(&self, subs: Vec<SubscriptionSpec>) {
        if self.stop.is_cancelled() {
            // A stopped manager would abandon every event at once, and the
            // broker would hand them straight back: refuse instead.
            tracing::error!(
                count = subs.len(),
                "Delivery is shut down; subscriptions not started."
            );
            return;
        }
        for spec in subs {
            let Some((component, handler)) = self.prepare(&spec) else {
                continue;
            };
            let req = SubscribeRequest {
                topic: spec.topic.clone(),
                group: consumer_group(&component, self.runtime.app_id()),
                metadata: spec.metadata.clone(),
            };
            self.record(&spec);
            let first = component
                .pubsub
                .subscribe(req.clone(), handler.clone())
                .await;
            match first {
                Ok(sub) => self.running.lock().await.push(sub),
                Err(err) => {
                    tracing::warn!(pubsub = %spec.pubsub_name, topic = %spec.topic, error = %err,
                        "Subscribe failed; retrying in the background.");
                    self.tracker.spawn(subscribe_forever(
                        component,
                        req,
                        handler,
                        self.running.clone(),
                        self.stop.clone(),
                    ));
                }
            }
        }
    }

    fn prepare(&self, spec: &SubscriptionSpec) -> Option<(Arc<ComponentHandle>, Arc<dyn Handler>)> {
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
        let opts = match SubscriptionOptions::from_spec(spec) {
            Ok(o) => o,
            Err(err) => {
                tracing::error!(pubsub = %pubsub, topic = %topic, error = %err, "Subscription skipped.");
                return None;
            }
        };
        let router = match Router::new(&spec.rules) {
            Ok(r) => r,
            Err(err) => {
                tracing::error!(pubsub = %pubsub, topic = %topic, error = %err,
                    "Subscription routes are invalid; skipped.");
                return None;
            }
        };
        let counters = Arc::new(Counters::default());
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((pubsub.clone(), topic.clone(), counters.clone()));
        let ctx = Arc::new(SubContext {
            spec: spec.clone(),
            opts,
            component: component.clone(),
            router,
            channel: self.channel.clone(),
            app_limit: self.app_limit.clone(),
            stop: self.stop.clone(),
            abort: self.abort.clone(),
            tracker: self.tracker.clone(),
            counters,
        });
        let handler: Arc<dyn Handler> = if spec.bulk.enabled {
            Arc::new(BulkDispatcher::new(ctx))
        } else {
            Arc::new(Dispatcher::new(ctx))
        };
        Some((component, handler))
    }

    fn record(&self, spec: &SubscriptionSpec) {
        let mut subs = self
            .runtime
            .subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        subs.push(spec.clone());
    }

    /// Counters of every started subscription.
    pub fn stats(&self) -> Vec<SubscriptionStats> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters
            .iter()
            .map(|(pubsub, topic, c)| SubscriptionStats {
                pubsub_name: pubsub.clone(),
                topic: topic.clone(),
                delivered: c.delivered.load(AtomicOrdering::Relaxed),
                retries: c.retries.load(AtomicOrdering::Relaxed),
                dropped: c.dropped.load(AtomicOrdering::Relaxed),
                dead_lettered: c.dead_lettered.load(AtomicOrdering::Relaxed),
                handed_back: c.handed_back.load(AtomicOrdering::Relaxed),
            })
            .collect()
    }

    /// Graceful stop: stop fetching, let in-flight deliveries finish up to
    /// `grace`, then abandon the rest (their Acks resolve `Err` → left for
    /// redelivery). Nothing is dead-lettered because of shutdown.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        // Stop first so submits blocked on the in-flight bound return and
        // component consumer tasks can finish.
        self.stop.cancel();
        self.tracker.close();
        let subs: Vec<Subscription> = std::mem::take(&mut *self.running.lock().await);
        let stopping = futures_util::future::join_all(subs.into_iter().map(Subscription::stop));
        if tokio::time::timeout_at(deadline, stopping).await.is_err() {
            tracing::warn!("Component subscriptions did not stop within the grace period.");
        }
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.tracker.len(),
                "Grace period over; abandoning in-flight deliveries for redelivery."
            );
        }
        self.abort.cancel();
        self.tracker.wait().await;
    }
}

/// The consumer group: component `consumerGroup`, else `consumerID`, else the
/// app id (so replicas of one app compete and different apps each get a copy).
fn consumer_group(component: &ComponentHandle, app_id: &str) -> String {
    component
        .metadata("consumerGroup")
        .or_else(|| component.metadata("consumerID"))
        .filter(|g| !g.is_empty())
        .unwrap_or(app_id)
        .to_string()
}

async fn subscribe_forever(
    component: Arc<ComponentHandle>,
    req: SubscribeRequest,
    handler: Arc<dyn Handler>,
    running: Arc<Mutex<Vec<Subscription>>>,
    stop: CancellationToken,
) {
    let mut delays = SUBSCRIBE_BACKOFF.start();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = delays.wait() => {}
        }
        let retry = delays.retries();
        match component
            .pubsub
            .subscribe(req.clone(), handler.clone())
            .await
        {
            Ok(sub) => {
                let mut running = running.lock().await;
                if stop.is_cancelled() {
                    drop(running);
                    sub.stop().await;
                } else {
                    running.push(sub);
                    tracing::info!(pubsub = %component.spec.name, topic = %req.topic, attempts = retry + 1,
                        "Subscribed after retrying.");
                }
                return;
            }
            Err(err) => tracing::warn!(pubsub = %component.spec.name, topic = %req.topic,
                error = %err, attempt = retry + 1, "Subscribe failed; retrying."),
        }
    }
}
