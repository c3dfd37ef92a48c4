//! The forwarder: one task per outbox that hands buffered events to the
//! broker in log order, retrying with jittered exponential backoff while the
//! broker is away, and moving the durable cursor only past events the broker
//! confirmed (at-least-once: a crash between the broker's ack and the cursor
//! store re-sends, never loses).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::store::{self, cost, Store};
use crate::backoff::Backoff;
use crate::broker::embedded::reader::PartitionReader;
use crate::broker::embedded::record::StoredRecord;
use crate::broker::{BrokerError, PubSub};

/// Records read from the log per batch.
const BATCH_RECORDS: usize = 256;
/// Payload bytes read from the log per batch.
const BATCH_BYTES: usize = 4 << 20;
/// The cursor is stored at least every this many confirmed events, so a
/// crash during a long drain re-sends at most this many.
const COMMIT_EVERY: u64 = 64;
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Retry delays after the broker refused or timed out: 100 ms doubling up
/// to 5 s, ±50% so many sidecars do not reconnect in lockstep after a
/// broker restart.
const BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), BACKOFF_MAX).with_jitter(0.5);
/// How often a non-empty outbox logs its depth.
const DEPTH_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the forwarder needs.
pub struct Forwarder {
    /// Component name, for logs.
    pub component: String,
    /// The outbox.
    pub store: Arc<Store>,
    /// The real component.
    pub inner: Arc<dyn PubSub>,
    /// Bound on one publish attempt.
    pub attempt_timeout: Duration,
    /// Stops the task.
    pub cancel: CancellationToken,
}

/// Why one event could not be forwarded.
enum Stop {
    /// Shutting down: leave the rest for the next start.
    Cancelled,
}

impl Forwarder {
    /// Runs until cancelled, starting at offset `from`.
    pub async fn run(self, from: u64) {
        let part = self.store.partition();
        let mut end = part.watch_end();
        let mut reader = Some(PartitionReader::new(part, from));
        let mut last_depth_log = tokio::time::Instant::now();
        loop {
            let Some(mut r) = reader.take() else { return };
            // Reads are blocking file I/O.
            let read = tokio::task::spawn_blocking(move || {
                let batch = r.read_batch(BATCH_RECORDS, BATCH_BYTES);
                (r, batch)
            })
            .await;
            let (r, batch) = match read {
                Ok(v) => v,
                Err(err) => {
                    tracing::error!(component = %self.component, error = %err, "Outbox reader task failed; the forwarder stops.");
                    return;
                }
            };
            let next = r.position();
            reader = Some(r);
            let batch = match batch {
                Ok(b) => b,
                Err(err) => {
                    tracing::error!(component = %self.component, error = %err, "Cannot read the outbox; retrying.");
                    if self.sleep(BACKOFF_MAX).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    changed = end.changed() => if changed.is_err() { return },
                }
                continue;
            }
            if last_depth_log.elapsed() >= DEPTH_LOG_EVERY {
                let d = self.store.depth();
                tracing::info!(component = %self.component, events = d.events, bytes = d.bytes, max_bytes = d.max_bytes, "Outbox draining.");
                last_depth_log = tokio::time::Instant::now();
            }
            if self.forward_batch(batch, next).await.is_err() {
                return;
            }
        }
    }

    /// Sends a batch in order, committing the cursor along the way and at
    /// the end (`next` is the offset after the batch).
    async fn forward_batch(&self, batch: Vec<StoredRecord>, next: u64) -> Result<(), Stop> {
        let (mut events, mut bytes) = (0u64, 0u64);
        for rec in batch {
            let offset = rec.offset;
            let res = self.forward_one(&rec).await;
            if res.is_err() {
                // Keep what was confirmed before stopping.
                self.commit(offset, events, bytes).await;
                return res;
            }
            events += 1;
            bytes += cost(&rec.record);
            if events >= COMMIT_EVERY {
                self.commit(offset + 1, events, bytes).await;
                (events, bytes) = (0, 0);
            }
        }
        self.commit(next, events, bytes).await;
        Ok(())
    }

    /// Sends one event until the broker confirms it or refuses it for good.
    async fn forward_one(&self, rec: &StoredRecord) -> Result<(), Stop> {
        let req = match store::from_record(rec) {
            Ok(r) => r,
            Err(err) => {
                tracing::error!(component = %self.component, offset = rec.offset, error = %err, "Skipping an unreadable outbox record.");
                return Ok(());
            }
        };
        let mut delays = BACKOFF.start();
        loop {
            let attempt =
                tokio::time::timeout(self.attempt_timeout, self.inner.publish(req.clone()));
            let err = tokio::select! {
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                res = attempt => match res {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(err)) => err,
                    Err(_) => BrokerError::Unavailable(format!("no confirm within {:?}", self.attempt_timeout)),
                },
            };
            if let BrokerError::Rejected(_) = err {
                // Waiting cannot fix a permanent refusal; holding it would
                // block every event behind it forever.
                tracing::error!(component = %self.component, topic = %req.topic, offset = rec.offset, error = %err, "The broker refused a buffered event for good; dropping it.");
                return Ok(());
            }
            let delay = delays.next_delay();
            tracing::debug!(component = %self.component, offset = rec.offset, error = %err, delay_ms = delay.as_millis() as u64, "Broker still unavailable for the outbox.");
            self.sleep(delay).await?;
        }
    }

    async fn commit(&self, next: u64, events: u64, bytes: u64) {
        if events == 0 {
            return;
        }
        let store = self.store.clone();
        let res = tokio::task::spawn_blocking(move || store.commit(next, events, bytes)).await;
        match res {
            Ok(Ok(())) => {
                tracing::debug!(component = %self.component, next, events, "Outbox cursor committed.");
            }
            // The events were confirmed; only the cursor file failed, so a
            // restart re-sends them (duplicates, never losses).
            Ok(Err(err)) => {
                tracing::error!(component = %self.component, next, error = %err, "Cannot store the outbox cursor.")
            }
            Err(err) => {
                tracing::error!(component = %self.component, next, error = %err, "Outbox commit task failed.")
            }
        }
    }

    async fn sleep(&self, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Stop::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }
}
