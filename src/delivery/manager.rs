//! Starts, tracks and stops every subscription's delivery.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bulk::BulkDispatcher;
use super::channel::AppChannel;
use super::context::{Counters, SubContext};
use super::dispatcher::Dispatcher;
use super::options::SubscriptionOptions;
use super::source::Source;
use crate::backoff::Backoff;
use crate::broker::{Handler, SubscribeRequest, Subscription};
use crate::config::model::SubscriptionSpec;
use crate::routing::Router;

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
    channel: Arc<dyn AppChannel>,
    app_limit: Option<Arc<Semaphore>>,
    stop: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
    running: Arc<Mutex<Vec<Subscription>>>,
    counters: std::sync::Mutex<Vec<(String, String, Arc<Counters>)>>,
}

impl DeliveryManager {
    /// A manager delivering through `channel`, with at most
    /// `app_max_concurrency` calls at the app at once (`--app-max-concurrency`;
    /// zero or less = unlimited).
    pub fn new(channel: Arc<dyn AppChannel>, app_max_concurrency: i64) -> Self {
        let app_limit = (app_max_concurrency > 0).then(|| {
            let permits = usize::try_from(app_max_concurrency).unwrap_or(Semaphore::MAX_PERMITS);
            Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS)))
        });
        Self {
            channel,
            app_limit,
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
            running: Arc::new(Mutex::new(Vec::new())),
            counters: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// True once [`shutdown`](Self::shutdown) began: a stopped manager would
    /// abandon every event at once, and the broker would hand them straight
    /// back, so nothing may be started on it any more.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Starts delivering `spec` from `source` as consumer group `group`.
    /// `false` (logged) when its options or routes are invalid, or the
    /// manager is stopped. The first subscribe attempt happens before this
    /// returns; failures are retried with backoff in the background,
    /// forever, as daprd does.
    pub async fn start(
        &self,
        spec: &SubscriptionSpec,
        source: Arc<dyn Source>,
        group: String,
    ) -> bool {
        if self.is_stopped() {
            tracing::error!(pubsub = %spec.pubsub_name, topic = %spec.topic,
                "Delivery is shut down; subscription not started.");
            return false;
        }
        let Some(handler) = self.handler(spec, source.clone()) else {
            return false;
        };
        let req = SubscribeRequest {
            topic: spec.topic.clone(),
            group,
            metadata: spec.metadata.clone(),
        };
        match source.subscribe(req.clone(), handler.clone()).await {
            Ok(sub) => self.running.lock().await.push(sub),
            Err(err) => {
                tracing::warn!(pubsub = %spec.pubsub_name, topic = %spec.topic, error = %err,
                    "Subscribe failed; retrying in the background.");
                self.tracker.spawn(subscribe_forever(
                    source,
                    req,
                    handler,
                    self.running.clone(),
                    self.stop.clone(),
                ));
            }
        }
        true
    }

    /// The dispatcher of `spec`, or `None` (logged) when its options or
    /// routes are invalid.
    fn handler(
        &self,
        spec: &SubscriptionSpec,
        source: Arc<dyn Source>,
    ) -> Option<Arc<dyn Handler>> {
        let (pubsub, topic) = (&spec.pubsub_name, &spec.topic);
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
            source,
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
        Some(handler)
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

async fn subscribe_forever(
    source: Arc<dyn Source>,
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
        match source.subscribe(req.clone(), handler.clone()).await {
            Ok(sub) => {
                let mut running = running.lock().await;
                if stop.is_cancelled() {
                    drop(running);
                    sub.stop().await;
                } else {
                    running.push(sub);
                    tracing::info!(pubsub = %source.name(), topic = %req.topic, attempts = retry + 1,
                        "Subscribed after retrying.");
                }
                return;
            }
            Err(err) => tracing::warn!(pubsub = %source.name(), topic = %req.topic,
                error = %err, attempt = retry + 1, "Subscribe failed; retrying."),
        }
    }
}
