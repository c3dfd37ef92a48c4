//! Single-event delivery for one subscription: the [`Handler`] a component
//! calls, with the in-flight bound, ordering lanes, retries and dead letters.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{oneshot, Semaphore};

use super::channel::{AppEvent, AppResult};
use super::context::{Counters, SubContext};
use super::dead_letter::{self, Reason};
use super::lanes::{Lanes, Ordering};
use super::prepare;
use crate::broker::{Ack, Handler, Outcome, ReceivedMessage};

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
        Err(rejection) => Some(prepare::reject(ctx, msg, rejection).await),
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
                    dead_letter::give_up(
                        ctx,
                        msg,
                        Reason::Dropped,
                        attempt,
                        &reason,
                        Outcome::Drop,
                    )
                    .await,
                );
            }
            AppResult::Retry(reason) => {
                if !policy.allows(retry) {
                    tracing::warn!(pubsub = %ev.pubsub_name, topic = %ev.topic, event_id,
                        attempt, reason = %reason, "Retries exhausted.");
                    return Some(
                        dead_letter::give_up(
                            ctx,
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

    use std::time::Duration;

    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::broker::in_memory::InMemory;
    use crate::broker::Metadata;
    use crate::broker::{BrokerError, PubSub, PublishRequest, SubscribeRequest, Subscription};
    use crate::config::model::{BulkSubscribe, RouteRule, SubscriptionKind, SubscriptionSpec};
    use crate::delivery::channel::{AppChannel, BulkAppRequest};
    use crate::delivery::options::SubscriptionOptions;
    use crate::delivery::source::{DeadLetterError, Source};
    use crate::routing::Router;

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

    /// The component of the tests: in memory, dead letters published on it.
    struct Bus(InMemory);

    #[async_trait]
    impl Source for Bus {
        fn name(&self) -> &str {
            "p"
        }
        async fn subscribe(
            &self,
            req: SubscribeRequest,
            handler: Arc<dyn Handler>,
        ) -> Result<Subscription, BrokerError> {
            self.0.subscribe(req, handler).await
        }
        async fn publish_dead_letter(&self, letter: PublishRequest) -> Result<(), DeadLetterError> {
            Ok(self.0.publish(letter).await?)
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
        let ctx = SubContext {
            opts: SubscriptionOptions::from_spec(&spec).unwrap(),
            spec,
            source: Arc::new(Bus(InMemory::new())),
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

    // Paused time: the deadline below is virtual and only passes once every
    // task is idle, so a slow machine cannot fail the test.
    #[tokio::test(start_paused = true)]
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

    #[tokio::test(start_paused = true)]
    async fn submit_waits_at_the_in_flight_bound_and_abandons_on_stop() {
        let rec = Arc::new(Recorder {
            seen: Mutex::default(),
            gate: Semaphore::new(0),
        });
        let d = dispatcher(&[("maxInFlight", "2"), ("ordering", "none")], rec.clone());
        let a1 = d.submit(msg("1", 0)).await;
        let a2 = d.submit(msg("2", 0)).await;
        // With paused time the clock only moves once every task is idle, so
        // this timeout firing proves the submit is blocked, not just slow.
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
