//! The async side of one assigned partition: a worker that hands records to
//! the delivery layer in partition order (its `submit` backpressure only
//! fills this partition's lane, never the whole fetch loop), and one settle
//! task per event that waits for the outcome and acknowledges, parks for
//! redelivery, or abandons.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::binding;
use super::state::{PartKey, Shared};
use crate::backoff::Backoff;
use crate::broker::{Ack, Handler, Metadata, ReceivedMessage};

/// Everything a lane worker needs.
pub struct Lane {
    /// Group state.
    pub shared: Arc<Shared>,
    /// The partition.
    pub key: PartKey,
    /// Its assignment epoch.
    pub epoch: u64,
    /// The subscription's handler.
    pub handler: Arc<dyn Handler>,
    /// Cancelled when the partition is revoked or the consumer stops.
    pub cancel: CancellationToken,
}

impl Lane {
    /// Submits records in order until the lane closes or is cancelled.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<OwnedMessage>) {
        loop {
            let record = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => return,
                },
            };
            let offset = record.offset();
            let msg = to_received(&record);
            let Some(ack) = self.submit(msg.clone()).await else {
                return;
            };
            let lane = self.clone();
            self.shared
                .rt
                .spawn(async move { lane.settle(offset, msg, ack).await });
        }
    }

    /// Submits one event unless the partition went away; `None` if cancelled.
    async fn submit(&self, msg: ReceivedMessage) -> Option<Ack> {
        if !self.shared.begin_submit(&self.key, self.epoch) {
            return None;
        }
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => {
                self.shared.end_unfinished(&self.key, self.epoch);
                None
            }
            ack = self.handler.submit(msg) => Some(ack),
        }
    }

    /// Waits for the outcome of one event and settles it; a RETRY is offered
    /// again after a growing delay, without ever committing past it.
    async fn settle(&self, offset: i64, mut msg: ReceivedMessage, mut ack: Ack) {
        loop {
            match ack.await {
                Ok(outcome) if outcome.is_ack() => {
                    self.shared.finish(&self.key, self.epoch, offset);
                    return;
                }
                Ok(_) => {
                    self.shared.end_unfinished(&self.key, self.epoch);
                    let cfg = &self.shared.cfg;
                    let delay = redelivery_backoff(cfg.retry_interval, cfg.retry_max_interval)
                        .delay(msg.redeliveries);
                    tracing::debug!(topic = %self.key.0, partition = self.key.1, offset, ?delay, "Event will be redelivered.");
                    tokio::select! {
                        biased;
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    msg.redeliveries = msg.redeliveries.saturating_add(1);
                    ack = match self.submit(msg.clone()).await {
                        Some(ack) => ack,
                        None => return,
                    };
                }
                Err(_) => {
                    // The delivery layer shut down: leave the offset
                    // unfinished so the event is read again after a restart.
                    self.shared.end_unfinished(&self.key, self.epoch);
                    tracing::debug!(topic = %self.key.0, partition = self.key.1, offset, "Event abandoned; not acknowledged.");
                    return;
                }
            }
        }
    }
}

/// Redelivery delays (`consumeRetryInterval`, `consumeRetryMaxInterval`):
/// `first` doubled per earlier redelivery, capped at `max`, not jittered.
pub fn redelivery_backoff(first: Duration, max: Duration) -> Backoff {
    Backoff::exponential(first, max).with_jitter(0.0)
}

/// Converts a record into what the delivery layer receives: structured
/// CloudEvent bytes, headers as metadata plus daprd's `__key`, `__offset`,
/// `__partition`, `__topic`, `__timestamp`.
pub fn to_received(record: &OwnedMessage) -> ReceivedMessage {
    let headers: Vec<(String, String)> = record
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let v = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                    (h.key.to_string(), v.into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let value = Bytes::copy_from_slice(record.payload().unwrap_or_default());
    let (data, rest) = binding::decode(value, headers);
    let mut metadata: Metadata = rest.into_iter().collect();
    let key = record
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    if let Some(k) = &key {
        metadata.insert("__key".into(), k.clone());
    }
    metadata.insert("__offset".into(), record.offset().to_string());
    metadata.insert("__partition".into(), record.partition().to_string());
    metadata.insert("__topic".into(), record.topic().to_string());
    if let Some(ms) = record.timestamp().to_millis() {
        metadata.insert("__timestamp".into(), ms.to_string());
    }
    ReceivedMessage {
        topic: record.topic().to_string(),
        data,
        metadata,
        key,
        partition: Some(record.partition()),
        redeliveries: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (f, m) = (Duration::from_millis(100), Duration::from_secs(1));
        let b = redelivery_backoff(f, m);
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(4), m);
        assert_eq!(b.delay(u32::MAX), m);
    }
}
