//! Consuming one queue with manual acks and a bounded prefetch.
//!
//! Deliveries go through [`Handler::submit`] one at a time in the order the
//! queue hands them out, so the delivery layer sees queue order and can
//! serialise per key; `submit` waiting is our backpressure (the broker stops
//! sending once `prefetchCount` deliveries are unsettled). Settling runs in
//! small tasks so a slow event does not hold up the next one:
//!
//! - `Success` / `Drop` → `basic.ack`;
//! - `Retry` → `basic.nack(requeue)` after a growing delay (200 ms doubling,
//!   capped at 10 s), never an instant requeue loop; RabbitMQ puts the event
//!   back at (or near) its old position in the queue;
//! - `Err` (delivery layer gone) → left unacknowledged; the broker requeues it
//!   when the channel closes (stop, reconnect).
//!
//! The session (channel, qos, topology, consumer) is rebuilt after every
//! reconnect until the subscription is stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Consumer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec;
use super::config::RabbitConfig;
use super::connection::{reconnect_backoff, Link, Live};
use super::publisher::map_err;
use super::topology::{declare, QueuePlan};
use crate::backoff::Backoff;
use crate::broker::{Ack, BrokerError, Handler, ReceivedMessage};

/// How long `stop` waits for in-flight events to be settled before closing
/// the channel (unsettled ones are then requeued by the broker).
const STOP_DRAIN: Duration = Duration::from_secs(5);
/// Delay before a RETRY outcome is redelivered: 200 ms doubling per earlier
/// RETRY of the same message, at most 10 s.
const RETRY_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(200), Duration::from_secs(10)).with_jitter(0.0);
/// Bound on the retry-attempt memory; it only shapes delays, so forgetting
/// is harmless.
const MAX_TRACKED: usize = 10_000;

/// RETRY outcomes seen per AMQP message id (classic queues do not count
/// redeliveries themselves).
#[derive(Default)]
struct Attempts(Mutex<HashMap<String, u32>>);

impl Attempts {
    fn get(&self, id: &str) -> u32 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).copied().unwrap_or(0)
    }

    fn bump(&self, id: &str) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(id) {
            map.clear();
        }
        let n = map.entry(id.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// Everything one subscription needs.
pub struct Consuming {
    /// Component settings.
    pub cfg: Arc<RabbitConfig>,
    /// The consume connection.
    pub link: Arc<Link>,
    /// Queue and bindings.
    pub plan: QueuePlan,
    /// Where events go.
    pub handler: Arc<dyn Handler>,
    /// Cancelled by `Subscription::stop` or component close.
    pub cancel: CancellationToken,
}

/// An open session: channel and consumer.
pub struct Session {
    channel: Channel,
    consumer: Consumer,
    tag: String,
    generation: u64,
}

/// Opens a channel, declares the topology and starts consuming.
pub async fn open(c: &Consuming, live: &Live) -> Result<Session, BrokerError> {
    let channel = live
        .conn
        .create_channel()
        .await
        .map_err(|e| map_err("opening a channel", e))?;
    channel
        .basic_qos(c.cfg.prefetch_count, BasicQosOptions::default())
        .await
        .map_err(|e| map_err("setting prefetch", e))?;
    declare(live, &channel, &c.cfg, &c.plan).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let tag = format!("sidebus-{}-{}", c.plan.queue, &id[..8]);
    let consumer = channel
        .basic_consume(
            c.plan.queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| map_err("starting the consumer", e))?;
    tracing::info!(queue = %c.plan.queue, topic = %c.plan.topic, "RabbitMQ consumer started.");
    Ok(Session {
        channel,
        consumer,
        tag,
        generation: live.generation,
    })
}

/// The subscription task: runs sessions until cancelled.
pub async fn run(c: Consuming, mut first: Option<Session>) {
    let attempts = Arc::new(Attempts::default());
    let mut setup_delays = reconnect_backoff(c.cfg.reconnect_wait).start();
    loop {
        let session = match first.take() {
            Some(s) => s,
            None => {
                let live = tokio::select! {
                    _ = c.cancel.cancelled() => return,
                    live = c.link.wait_live(Duration::from_secs(3600)) => live,
                };
                let Ok(live) = live else { continue };
                match open(&c, &live).await {
                    Ok(s) => s,
                    Err(err) => {
                        tracing::warn!(queue = %c.plan.queue, error = %err, "RabbitMQ consumer setup failed; retrying.");
                        tokio::select! {
                            _ = c.cancel.cancelled() => return,
                            _ = setup_delays.wait() => {}
                        }
                        continue;
                    }
                }
            }
        };
        setup_delays.reset();
        let generation = session.generation;
        let cancelled = consume(&c, session, &attempts).await;
        if cancelled {
            return;
        }
        // Wait for a new connection unless only the channel died.
        tokio::select! {
            _ = c.cancel.cancelled() => return,
            _ = c.link.wait_change(generation) => {}
            _ = tokio::time::sleep(reconnect_backoff(c.cfg.reconnect_wait).delay(0)) => {}
        }
    }
}

/// Consumes until cancelled (returns true) or the session dies (false).
async fn consume(c: &Consuming, mut s: Session, attempts: &Arc<Attempts>) -> bool {
    let tracker = TaskTracker::new();
    let cancelled = loop {
        let next = tokio::select! {
            biased;
            _ = c.cancel.cancelled() => break true,
            next = s.consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(err)) => {
                tracing::warn!(queue = %c.plan.queue, error = %err, "RabbitMQ consumer failed.");
                break false;
            }
            None => {
                tracing::warn!(queue = %c.plan.queue, "RabbitMQ consumer was cancelled by the broker.");
                break false;
            }
        };
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let (data, metadata, key) = codec::decode(&delivery.properties, delivery.data);
        let seen = if id.is_empty() { 0 } else { attempts.get(&id) };
        let msg = ReceivedMessage {
            topic: c.plan.topic.clone(),
            data,
            metadata,
            key,
            partition: None,
            redeliveries: if delivery.redelivered {
                seen.max(1)
            } else {
                seen
            },
        };
        let ack = tokio::select! {
            // Not handed over: closing the channel below requeues it.
            _ = c.cancel.cancelled() => break true,
            ack = c.handler.submit(msg) => ack,
        };
        let settle_ctx = (attempts.clone(), c.cancel.clone(), c.plan.queue.clone());
        tracker.spawn(settle(delivery.acker, ack, id, settle_ctx));
    };
    if cancelled {
        // Stop new deliveries first, then give in-flight events a bounded
        // time to settle; whatever is left is requeued by the channel close.
        let _ = s
            .channel
            .basic_cancel(s.tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    tracker.close();
    // After a lost connection nothing can be settled any more: the broker
    // has requeued every unacknowledged event already.
    if cancelled
        && tokio::time::timeout(STOP_DRAIN, tracker.wait())
            .await
            .is_err()
    {
        tracing::warn!(queue = %c.plan.queue, "Unsettled RabbitMQ deliveries left for redelivery.");
    }
    let _ = s
        .channel
        .close(200, "sidebus subscription stopped".into())
        .await;
    cancelled
}

async fn settle(
    acker: Acker,
    ack: Ack,
    id: String,
    ctx: (Arc<Attempts>, CancellationToken, String),
) {
    let (attempts, cancel, queue) = ctx;
    let result = match ack.await {
        Ok(outcome) if outcome.is_ack() => {
            attempts.forget(&id);
            acker.ack(BasicAckOptions::default()).await
        }
        Ok(_) => {
            // Events from other producers may lack a message id; they cannot
            // be told apart, so they get the second step's delay every time.
            let delay = if id.is_empty() {
                retry_delay(2)
            } else {
                retry_delay(attempts.bump(&id))
            };
            tokio::select! {
                // Left unacknowledged: the channel close requeues it at once.
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            let opts = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            acker.nack(opts).await
        }
        Err(_) => return,
    };
    if let Err(err) = result {
        // The channel is gone; the broker requeues the event itself.
        tracing::debug!(queue = %queue, error = %err, "Could not settle a RabbitMQ delivery.");
    }
}

/// Delay before the `n`-th redelivery of a retried event (n from 1).
pub fn retry_delay(n: u32) -> Duration {
    RETRY_BACKOFF.delay(n.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(2), Duration::from_millis(400));
        assert_eq!(retry_delay(30), Duration::from_secs(10));
    }

    #[test]
    fn attempts_are_bounded() {
        let a = Attempts::default();
        for i in 0..(MAX_TRACKED + 5) {
            a.bump(&i.to_string());
        }
        assert!(a.0.lock().expect("lock").len() <= MAX_TRACKED);
        assert_eq!(a.bump("x"), 1);
        assert_eq!(a.bump("x"), 2);
        a.forget("x");
        assert_eq!(a.get("x"), 0);
    }
}
