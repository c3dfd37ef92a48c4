//! The group consumer's librdkafka context: rebalance hooks that never commit
//! unfinished work and never drop in-flight events, plus librdkafka's logs
//! routed to `tracing`.
//!
//! On revoke, the partitions' workers stop submitting, the hook waits
//! (bounded by `drainTimeout`) for events already with the delivery layer to
//! finish, then commits synchronously up to the lowest unfinished offset.
//! Whatever is still unfinished is read again by the next owner.

use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::lane::Lane;
use super::stall::StallDetector;
use super::state::{Part, PartKey, Shared};

/// The group consumer type.
pub type Consumer_ = BaseConsumer<GroupContext>;

/// Context of one group consumer.
pub struct GroupContext {
    /// State shared with the poll thread and the lane tasks.
    pub shared: Arc<Shared>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "Kafka consumer error.");
    }
}

/// Context of the producer and admin clients: librdkafka's logs and
/// errors go to `tracing` like the rest of sidebus.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "Kafka client error.");
    }
}

fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility = fac, "{msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "{msg}"),
        _ => tracing::debug!(facility = fac, "{msg}"),
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let keys = keys_of(tpl);
            let lost = consumer.assignment_lost();
            tracing::info!(partitions = keys.len(), lost, "Partitions revoked.");
            settle_and_release(&self.shared, consumer, &keys, !lost);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let keys = keys_of(tpl);
                tracing::info!(partitions = keys.len(), "Partitions assigned.");
                assign(&self.shared, &keys);
                // A partition paused when its topic was removed may come back
                // after the topic is added again; it must start fetching.
                if tpl.count() > 0 {
                    let _ = consumer.resume(tpl);
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "Rebalance failed."),
        }
        let mut st = self.shared.lock();
        for waiter in st.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "Offset commit failed; the next commit covers it.");
        }
    }
}

/// The (topic, partition) pairs of a list.
pub fn keys_of(tpl: &TopicPartitionList) -> Vec<PartKey> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// Starts a lane for each newly assigned partition of a subscribed topic.
pub fn assign(shared: &Arc<Shared>, keys: &[PartKey]) {
    let mut st = shared.lock();
    for key in keys {
        if st.parts.contains_key(key) {
            continue;
        }
        let Some(handler) = st.routes.get(&key.0).cloned() else {
            continue;
        };
        st.next_epoch += 1;
        let epoch = st.next_epoch;
        let (tx, rx) = mpsc::channel(shared.cfg.partition_buffer);
        let cancel = shared.cancel.child_token();
        let lane = Arc::new(Lane {
            shared: shared.clone(),
            key: key.clone(),
            epoch,
            handler,
            cancel: cancel.clone(),
        });
        shared.rt.spawn(lane.run(rx));
        st.parts.insert(
            key.clone(),
            Part {
                epoch,
                offsets: Default::default(),
                outstanding: 0,
                lane: tx,
                backlog: Default::default(),
                paused: false,
                cancel,
                progressed: true,
                stall: StallDetector::new(shared.cfg.stall_timeout),
            },
        );
    }
}

/// Stops the lanes of `keys`, waits for their in-flight events (bounded),
/// forgets the partitions and, when `commit`, commits their finished prefix
/// synchronously.
pub fn settle_and_release<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    keys: &[PartKey],
    commit: bool,
) {
    {
        let st = shared.lock();
        for key in keys {
            if let Some(p) = st.parts.get(key) {
                p.cancel.cancel();
            }
        }
    }
    let (mut st, still_out) = shared.drain(keys, shared.cfg.drain_timeout);
    if still_out > 0 {
        tracing::warn!(
            in_flight = still_out,
            "Drain deadline passed; unfinished events will be redelivered."
        );
    }
    let mut tpl = TopicPartitionList::new();
    let mut paused = TopicPartitionList::new();
    for key in keys {
        let Some(p) = st.parts.remove(key) else {
            continue;
        };
        if p.paused {
            paused.add_partition(&key.0, key.1);
        }
        if let Some(point) = p.offsets.commit_point() {
            // Adding to a fresh list cannot fail for a valid offset.
            let _ = tpl.add_partition_offset(&key.0, key.1, Offset::Offset(point));
        }
    }
    drop(st);
    if paused.count() > 0 {
        // A later assignment of these partitions must start unpaused.
        let _ = consumer.resume(&paused);
    }
    if commit && tpl.count() > 0 {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::debug!(partitions = tpl.count(), "Committed on release."),
            Err(e) => {
                tracing::warn!(error = %e, "Commit on release failed; events may be redelivered.")
            }
        }
    }
}
