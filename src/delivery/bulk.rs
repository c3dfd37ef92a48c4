//! Bulk-subscribe delivery: events are collected into batches (up to
//! `maxMessagesCount` or `maxAwaitDurationMs`), grouped by route path, and
//! sent as one request per path. Entries the app answers RETRY are retried in
//! bulk requests holding only the still-pending entries, after the
//! subscription's backoff. Batches run one after another.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::channel::{AppResult, BulkAppEntry, BulkAppRequest};
use super::context::{Counters, SubContext};
use super::dead_letter::{self, Reason};
use super::prepare;
use crate::broker::{Ack, Handler, Outcome, ReceivedMessage};

/// One accepted event waiting for its batch.
struct Item {
    msg: ReceivedMessage,
    ack: oneshot::Sender<Outcome>,
    _permit: OwnedSemaphorePermit,
}

/// The handler of one bulk subscription.
pub(crate) struct BulkDispatcher {
    ctx: Arc<SubContext>,
    in_flight: Arc<Semaphore>,
    tx: mpsc::Sender<Item>,
}

impl BulkDispatcher {
    /// Starts the batching task of the subscription of `ctx`.
    pub fn new(ctx: Arc<SubContext>) -> Self {
        let in_flight = Arc::new(Semaphore::new(ctx.opts.max_in_flight));
        // Every queued item holds an in-flight permit, so the queue never
        // holds more than max_in_flight items and send never waits long.
        let (tx, rx) = mpsc::channel(ctx.opts.max_in_flight);
        ctx.tracker.spawn(run(ctx.clone(), rx));
        Self { ctx, in_flight, tx }
    }
}

#[async_trait]
impl Handler for BulkDispatcher {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        let (ack, rx) = oneshot::channel();
        let permit = tokio::select! {
            _ = self.ctx.stop.cancelled() => return rx,
            p = self.in_flight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return rx,
            },
        };
        let item = Item {
            msg,
            ack,
            _permit: permit,
        };
        // A closed queue means the batcher stopped: the dropped sender
        // resolves the Ack to Err (redelivery).
        let _ = self.tx.send(item).await;
        rx
    }
}

async fn run(ctx: Arc<SubContext>, mut rx: mpsc::Receiver<Item>) {
    let max = ctx.spec.bulk.max_messages_count.max(1) as usize;
    let wait = Duration::from_millis(ctx.spec.bulk.max_await_duration_ms);
    loop {
        let first = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            item = rx.recv() => match item { Some(i) => i, None => return },
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + wait;
        while batch.len() < max {
            tokio::select! {
                _ = ctx.stop.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => break,
                item = rx.recv() => match item {
                    Some(i) => batch.push(i),
                    None => break,
                },
            }
        }
        tokio::select! {
            _ = ctx.abort.cancelled() => return,
            _ = deliver_batch(&ctx, batch) => {}
        }
    }
}

/// Delivers one batch; every item's Ack is settled or dropped (shutdown).
async fn deliver_batch(ctx: &SubContext, batch: Vec<Item>) {
    let mut groups: Vec<(String, Vec<(BulkAppEntry, Item)>)> = Vec::new();
    for item in batch {
        match prepare::prepare(ctx, &item.msg) {
            Ok(event) => {
                let entry = BulkAppEntry {
                    entry_id: uuid::Uuid::new_v4().to_string(),
                    raw_data: ctx.opts.raw_payload.then(|| item.msg.data.clone()),
                    event,
                };
                match groups.iter_mut().find(|(p, _)| *p == entry.event.path) {
                    Some((_, entries)) => entries.push((entry, item)),
                    None => groups.push((entry.event.path.clone(), vec![(entry, item)])),
                }
            }
            Err(rejection) => {
                let outcome = prepare::reject(ctx, &item.msg, rejection).await;
                let _ = item.ack.send(outcome);
            }
        }
    }
    join_all(
        groups
            .into_iter()
            .map(|(path, entries)| deliver_path(ctx, path, entries)),
    )
    .await;
}

async fn deliver_path(ctx: &SubContext, path: String, mut pending: Vec<(BulkAppEntry, Item)>) {
    let policy = ctx.opts.retry;
    let mut retry: u32 = 0;
    while !pending.is_empty() {
        let attempt = retry + 1;
        let req = BulkAppRequest {
            id: uuid::Uuid::new_v4().to_string(),
            pubsub_name: ctx.spec.pubsub_name.clone(),
            topic: ctx.spec.topic.clone(),
            path: path.clone(),
            metadata: ctx.spec.metadata.clone(),
            entries: pending.iter().map(|(e, _)| e.clone()).collect(),
        };
        let results = {
            let _permit = ctx.app_permit().await;
            ctx.channel.deliver_bulk(&req).await
        };
        let mut still = Vec::new();
        for (entry, item) in pending {
            let result = results
                .iter()
                .find(|(id, _)| *id == entry.entry_id)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| AppResult::Retry("no status for entry".into()));
            match result {
                AppResult::Success => {
                    Counters::bump(&ctx.counters.delivered);
                    let _ = item.ack.send(Outcome::Success);
                }
                AppResult::Drop(reason) => {
                    let o = dead_letter::give_up(
                        ctx,
                        &item.msg,
                        Reason::Dropped,
                        attempt,
                        &reason,
                        Outcome::Drop,
                    )
                    .await;
                    let _ = item.ack.send(o);
                }
                AppResult::Retry(reason) if !policy.allows(retry) => {
                    let o = dead_letter::give_up(
                        ctx,
                        &item.msg,
                        Reason::RetriesExhausted,
                        attempt,
                        &reason,
                        Outcome::Retry,
                    )
                    .await;
                    let _ = item.ack.send(o);
                }
                AppResult::Retry(_) => still.push((entry, item)),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        let delay = policy.backoff.delay(retry);
        retry += 1;
        Counters::bump(&ctx.counters.retries);
        tracing::info!(pubsub = %ctx.spec.pubsub_name, topic = %ctx.spec.topic, path = %path,
            entries = pending.len(), attempt, delay_ms = delay.as_millis() as u64,
            "App asked to retry bulk entries.");
        tokio::select! {
            // Shutdown: dropping the pending items abandons them.
            _ = ctx.stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
