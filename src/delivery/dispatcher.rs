//! Single-event delivery for one subscription: the [`Handler`] a component
//! calls, with the in-flight bound, ordering lanes, retries and dead letters.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dead_letter::{self, Reason};
use super::lanes::{Lanes, Ordering};
use super::options::SubscriptionOptions;
use super::prepare::{self, Rejection};
use super::{AppChannel, AppEvent, AppResult};
use crate::broker::{Ack, BrokerError, Handler, Outcome, ReceivedMessage};
use crate::config::model::SubscriptionSpec;
use crate::routing::Router;
use crate::runtime::ComponentHandle;

/// Longest a dead-letter publish may take before the event goes back to the
/// broker instead (daprd uses the same 30 s bound).
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(30);

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
    pub component: Arc<ComponentHandle>,
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

    /// Settles an event that will not (or no longer) be retried: dead-letter
    /// it when the subscription has a topic for that, else `fallback`.
    pub async fn give_up(
        &self,
        msg: &ReceivedMessage,
        reason: Reason,
        attempts: u32,
        error: &str,
        fallback: Outcome,
    ) -> Outcome {
        let Some(dlq) = self.spec.dead_letter_topic.as_deref() else {
            let counter = match fallback {
                Outcome::Retry => &self.counters.handed_back,
                _ => &self.counters.dropped,
            };
            Counters::bump(counter);
            return fallback;
        };
        let content_type = if self.opts.raw_payload {
            "application/octet-stream"
        } else {
            "application/cloudevents+json"
        };
        let letter = dead_letter::letter(msg, dlq, content_type, reason, attempts, error);
        let published =
            tokio::time::timeout(DEAD_LETTER_TIMEOUT, self.component.pubsub.publish(letter))
                .await
                .unwrap_or_else(|_| {
                    Err(BrokerError::Unavailable(
                        "dead-letter publish timed out".into(),
                    ))
                });
        match published {
            Ok(()) => {
                Counters::bump(&self.counters.dead_lettered);
                tracing::warn!(pubsub = %self.spec.pubsub_name, topic = %self.spec.topic,
                    dead_letter_topic = dlq, reason = reason.as_str(), attempts, error,
                    "Event sent to the dead-letter topic.");
                Outcome::Drop
            }
            Err(err) => {
                Counters::bump(&self.counters.handed_back);
                tracing::error!(pubsub = %self.spec.pubsub_name, topic = %self.spec.topic,
                    dead_letter_topic = dlq, error = %err,
                    "Dead-letter publish failed; the broker will redeliver the event.");
                Outcome::Retry
            }
        }
    }

    /// Settles an event the delivery layer refused before reaching the app.
    pub async fn reject(&self, msg: &ReceivedMessage, rejection: Rejection) -> Outcome {
        let (reason, error) = rejection.reason_and_error();
        if self.spec.dead_letter_topic.is_none() {
            tracing::error!(pubsub = %self.spec.pubsub_name, topic = %self.spec.topic,
                reason = reason.as_str(), error = %error,
                "Event dropped before delivery; set a dead-letter topic to keep such events.");
        }
        self.give_up(msg, reason, 0, &error, Outcome::Drop).await
    }
}

/// The handler of one single-delivery subscription.
pub(crate) struct Dispatcher {
    ctx: Arc<SubContext>,
    in_flight: Arc<Semaphore>,
    lanes: Lanes,
}

impl Dispatcher {
    /// A dispatcher for the subscription of `ctx`.
    pub fn new(ctx: Arc<SubContext>) -> Self {
        let in_flight = Arc::new(Semaphore::new(ctx.opts.max_in_flight));
        Self {
            ctx,
            in_flight,
            lanes: Lanes::default(),
        }
    }
}

#[async_trait]
impl Handler for Dispatcher {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        let (tx, rx) = oneshot::channel();
        let ctx = self.ctx.clone();
        // Waiting here is the backpressure; a stop abandons the event (the
        // dropped sender resolves the Ack to Err: leave it for redelivery).
        let permit = tokio::select! {
            _ = ctx.stop.cancelled() => return rx,
            p = self.in_flight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return rx,
            },
        };
        let key = match ctx.opts.ordering {
            Ordering::Key => msg.key.clone(),
            Ordering::Partition => msg.partition.map(|p| p.to_string()),
            Ordering::None => None,
        };
        let mut slot = self.lanes.join(key);
        self.ctx.tracker.spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = ctx.stop.cancelled() => return,
                _ = slot.ready() => {}
            }
            let outcome = tokio::select! {
                _ = ctx.abort.cancelled() => None,
                o = process(&ctx, &msg) => o,
            };
            if let Some(outcome) = outcome {
                // The component may have given up on the Ack; nothing to do.
                let _ = tx.send(outcome);
            }
            drop(slot);
        });
        rx
    }
}

/// Delivers one event to completion. `None` = abandoned by shutdown.
async fn process(ctx: &SubContext, msg: &ReceivedMessage) -> Option<Outcome> {
    match prepare::prepare(ctx, msg) {
        Ok(ev) => deliver_with_retry(ctx, msg, &ev).await,
        Err(rejection) => Some(ctx.reject(msg, rejection).await),
    }
}

async fn deliver_with_retry(
    ctx: &SubContext,
    msg: &ReceivedMessage,
    ev: &AppEvent,
) -> Option<Outcome> {
    let policy = ctx.opts.retry;
    let mut retry: u32 = 0;
    loop {
        let attempt = retry + 1;
        let result = {
            let _permit = ctx.app_permit().await;
            ctx.channel.deliver(ev).await
        };
        let event_id = prepare::event_id(ev);
        match result {
            AppResult::Success => {
                Counters::bump(&ctx.counters.delivered);
                tracing::debug!(pubsub = %ev.pubsub_name, topic = %ev.topic, event_id, attempt,
                    "Event delivered.");
                return Some(Outcome::Success);
            }
            AppResult::Drop(reason) => {
                tracing::warn!(pubsub = %ev.pubsub_name, topic = %ev.topic, event_id, attempt,
                    reason = %reason, "App dropped the event.");
                return Some(
                    ctx.give_up(msg, Reason::Dropped, attempt, &reason, Outcome::Drop)
                        .await,
                );
            }
            AppResult::Retry(reason) => {
                if !policy.allows(retry) {
                    tracing::warn!(pubsub = %ev.pubsub_name, topic = %ev.topic, event_id,
                        attempt, reason = %reason, "Retries exhausted.");
                    return Some(
                        ctx.give_up(
                            msg,
                            Reason::RetriesExhausted,
                            attempt,
                            &reason,
                            Outcome::Retry,
                        )
                        .await,
                    );
                }
                let delay = policy.backoff.delay(retry);
                retry += 1;
                Counters::bump(&ctx.counters.retries);
                tracing::info!(pubsub = %ev.pubsub_name, topic = %ev.topic, event_id, attempt,
                    reason = %reason, delay_ms = delay.as_millis() as u64,
                    "App asked to retry the event.");
                tokio::select! {
                    _ = ctx.stop.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::broker::in_memory::InMemory;
    use crate::broker::Metadata;
    use crate::config::model::{BulkSubscribe, ComponentSpec, RouteRule, SubscriptionKind};
    use crate::delivery::BulkAppRequest;

    /// Records the order of deliveries; each waits until `gate` has a permit.
    struct Recorder {
        seen: Mutex<Vec<String>>,
        gate: Semaphore,
    }

    #[async_trait]
    impl AppChannel for Recorder {
        async fn deliver(&self, ev: &AppEvent) -> AppResult {
            self.seen
                .lock()
                .unwrap()
                .push(prepare::event_id(ev).to_string());
            self.gate.acquire().await.unwrap().forget();
            AppResult::Success
        }
        async fn deliver_bulk(&self, _: &BulkAppRequest) -> Vec<(String, AppResult)> {
            unreachable!("single delivery only")
        }
    }

    fn dispatcher(md: &[(&str, &str)], channel: Arc<Recorder>) -> Dispatcher {
        let metadata: Metadata = md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let rules = vec![RouteRule {
            match_expr: String::new(),
            path: "/x".into(),
        }];
        let spec = SubscriptionSpec {
            name: "s".into(),
            pubsub_name: "p".into(),
            topic: "t".into(),
            rules: rules.clone(),
            dead_letter_topic: None,
            metadata,
            bulk: BulkSubscribe::default(),
            scopes: Vec::new(),
            kind: SubscriptionKind::Declarative,
        };
        let component = ComponentSpec {
            name: "p".into(),
            type_name: "pubsub.in-memory".into(),
            version: "v1".into(),
            metadata: Metadata::new(),
            scopes: Vec::new(),
            source: "<test>".into(),
        };
        let ctx = SubContext {
            opts: SubscriptionOptions::from_spec(&spec).unwrap(),
            spec,
            component: Arc::new(ComponentHandle::new(
                component,
                Arc::new(InMemory::new()),
                "app",
            )),
            router: Router::new(&rules).unwrap(),
            channel,
            app_limit: None,
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
            counters: Arc::default(),
        };
        Dispatcher::new(Arc::new(ctx))
    }

    fn msg(id: &str, partition: i32) -> ReceivedMessage {
        ReceivedMessage {
            topic: "t".into(),
            data: Bytes::from(format!(
                r#"{{"id":"{id}","specversion":"1.0","type":"x","source":"s"}}"#
            )),
            metadata: Metadata::new(),
            key: Some(id.into()),
            partition: Some(partition),
            redeliveries: 0,
        }
    }

    #[tokio::test]
    async fn partition_ordering_serialises_per_partition() {
        let rec = Arc::new(Recorder {
            seen: Mutex::default(),
            gate: Semaphore::new(0),
        });
        let d = dispatcher(&[("ordering", "partition")], rec.clone());
        let mut acks = Vec::new();
        for (id, p) in [("a1", 0), ("b1", 1), ("a2", 0), ("b2", 1)] {
            acks.push(d.submit(msg(id, p)).await);
        }
        let seen = || rec.seen.lock().unwrap().clone();
        tokio::time::timeout(Duration::from_secs(5), async {
            while seen().len() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        let mut first = seen();
        first.sort();
        assert_eq!(
            first,
            ["a1", "b1"],
            "one per partition, even with distinct keys"
        );
        rec.gate.add_permits(4);
        for ack in acks {
            assert_eq!(ack.await.unwrap(), Outcome::Success);
        }
        let all = seen();
        let pos = |id: &str| all.iter().position(|s| s == id).unwrap();
        assert!(pos("a1") < pos("a2") && pos("b1") < pos("b2"), "{all:?}");
    }

    #[tokio::test]
    async fn submit_waits_at_the_in_flight_bound_and_abandons_on_stop() {
        let rec = Arc::new(Recorder {
            seen: Mutex::default(),
            gate: Semaphore::new(0),
        });
        let d = dispatcher(&[("maxInFlight", "2"), ("ordering", "none")], rec.clone());
        let a1 = d.submit(msg("1", 0)).await;
        let a2 = d.submit(msg("2", 0)).await;
        let third = tokio::time::timeout(Duration::from_millis(50), d.submit(msg("3", 0))).await;
        assert!(third.is_err(), "third submit must wait for a free slot");
        rec.gate.add_permits(1);
        let a3 = tokio::time::timeout(Duration::from_secs(5), d.submit(msg("3", 0)))
            .await
            .expect("a slot was freed");
        // Stopping abandons what is not at the app: its Ack resolves Err.
        d.ctx.stop.cancel();
        d.ctx.abort.cancel();
        let results = [a1.await.ok(), a2.await.ok(), a3.await.ok()];
        let done = results
            .iter()
            .filter(|r| **r == Some(Outcome::Success))
            .count();
        let abandoned = results.iter().filter(|r| r.is_none()).count();
        assert_eq!((done, abandoned), (1, 2), "{results:?}");
    }
}
