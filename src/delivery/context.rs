//! What every task of one subscription's delivery shares: its spec and
//! options, the way to the app, the stop signals and its counters.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::channel::AppChannel;
use super::options::SubscriptionOptions;
use super::source::Source;
use crate::config::model::SubscriptionSpec;
use crate::routing::Router;

/// Counters of one subscription (also the "counted" of every drop).
#[derive(Debug, Default)]
pub struct Counters {
    /// Events the app processed.
    pub delivered: AtomicU64,
    /// Retries scheduled after a RETRY answer.
    pub retries: AtomicU64,
    /// Events acked without processing (DROP, 404, expired, undecodable…)
    /// and without a dead-letter topic.
    pub dropped: AtomicU64,
    /// Events published to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Events handed back to the broker for later redelivery.
    pub handed_back: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, AtomicOrdering::Relaxed);
    }
}

/// Everything one subscription's delivery needs, shared by its tasks.
pub(crate) struct SubContext {
    /// The subscription.
    pub spec: SubscriptionSpec,
    /// Its parsed delivery options.
    pub opts: SubscriptionOptions,
    /// The component it consumes from (and dead-letters to).
    pub source: Arc<dyn Source>,
    /// Its routing rules, compiled.
    pub router: Router,
    /// The way to the app.
    pub channel: Arc<dyn AppChannel>,
    /// `--app-max-concurrency`; `None` = unlimited.
    pub app_limit: Option<Arc<Semaphore>>,
    /// Graceful stop: no new work, no more retries.
    pub stop: CancellationToken,
    /// Grace period over: abandon calls still at the app.
    pub abort: CancellationToken,
    /// Every delivery task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// This subscription's counters.
    pub counters: Arc<Counters>,
}

impl SubContext {
    /// Takes an app-concurrency permit (if limited) for one call to the app.
    pub async fn app_permit(&self) -> Option<OwnedSemaphorePermit> {
        match &self.app_limit {
            // The semaphore is never closed, so acquire cannot fail.
            Some(sem) => sem.clone().acquire_owned().await.ok(),
            None => None,
        }
    }
}
