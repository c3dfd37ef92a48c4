//! State one group consumer shares between its poll thread (fetching,
//! rebalance callbacks, commits) and the async tasks that hand events to the
//! delivery layer and settle them.
//!
//! Every assigned partition gets an epoch; a task holding an older epoch
//! (its partition was revoked or re-assigned meanwhile) changes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::message::OwnedMessage;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::config::KafkaConfig;
use super::offsets::PartitionOffsets;
use super::stall::StallDetector;
use crate::broker::Handler;

/// (topic, partition).
pub type PartKey = (String, i32);

/// One assigned partition.
pub struct Part {
    /// Distinguishes this assignment from earlier ones of the same partition.
    pub epoch: u64,
    /// Fetched and unfinished offsets, commit point.
    pub offsets: PartitionOffsets,
    /// Events handed to the delivery layer whose outcome is not known yet.
    pub outstanding: usize,
    /// Bounded queue to the partition's worker, which submits in order.
    pub lane: mpsc::Sender<OwnedMessage>,
    /// Records fetched while the lane was full. The partition is paused once
    /// it holds `channelBufferSize` records or [`BACKLOG_MAX_BYTES`], so it
    /// stays below that plus what was prefetched before the pause.
    pub backlog: Backlog,
    /// Whether sidebus paused fetching of this partition.
    pub paused: bool,
    /// Cancelled on revoke/stop: the worker stops submitting, retries stop.
    pub cancel: CancellationToken,
    /// Something was fetched or finished since the last watchdog look.
    pub progressed: bool,
    /// Lag-without-progress detector.
    pub stall: StallDetector,
}

/// Payload bytes a partition's backlog may hold before the partition is
/// paused, so large records cannot multiply the memory bound.
pub const BACKLOG_MAX_BYTES: usize = 1 << 20;

/// Records waiting for room in a lane, with their payload size.
#[derive(Default)]
pub struct Backlog {
    records: VecDeque<OwnedMessage>,
    bytes: usize,
}

impl Backlog {
    fn size(record: &OwnedMessage) -> usize {
        use rdkafka::message::Message;
        record.payload().map_or(0, <[u8]>::len) + record.key().map_or(0, <[u8]>::len)
    }

    /// Appends a record.
    pub fn push_back(&mut self, record: OwnedMessage) {
        self.bytes += Self::size(&record);
        self.records.push_back(record);
    }

    /// Puts a record back at the front.
    pub fn push_front(&mut self, record: OwnedMessage) {
        self.bytes += Self::size(&record);
        self.records.push_front(record);
    }

    /// Takes the oldest record.
    pub fn pop_front(&mut self) -> Option<OwnedMessage> {
        let record = self.records.pop_front()?;
        self.bytes = self.bytes.saturating_sub(Self::size(&record));
        Some(record)
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether the partition must be paused: `max` records or
    /// [`BACKLOG_MAX_BYTES`] reached.
    pub fn is_full(&self, max: usize) -> bool {
        self.records.len() >= max || self.bytes >= BACKLOG_MAX_BYTES
    }
}

/// Mutable state of a group consumer.
#[derive(Default)]
pub struct State {
    /// Subscribed topics and their handlers.
    pub routes: HashMap<String, Arc<dyn Handler>>,
    /// Currently assigned partitions.
    pub parts: HashMap<PartKey, Part>,
    /// Subscribe calls waiting for the next completed rebalance.
    pub waiters: Vec<oneshot::Sender<()>>,
    /// Source of partition epochs.
    pub next_epoch: u64,
}

/// State plus the condition variable drains wait on.
pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// The component configuration.
    pub cfg: Arc<KafkaConfig>,
    /// Runtime the lane workers and settle tasks run on.
    pub rt: tokio::runtime::Handle,
    /// Parent of every partition's cancel token.
    pub cancel: CancellationToken,
    /// Watchdog restarts, counted for the whole component.
    pub restarts: Arc<AtomicU64>,
}

impl Shared {
    /// New, empty state.
    pub fn new(
        cfg: Arc<KafkaConfig>,
        rt: tokio::runtime::Handle,
        restarts: Arc<AtomicU64>,
    ) -> Self {
        Self {
            restarts,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cfg,
            rt,
            cancel: CancellationToken::new(),
        }
    }

    /// Locks the state. Critical sections never panic, so a poisoned lock
    /// still holds consistent data.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the partition if it still has `epoch`, then wakes drains.
    fn with_part(&self, key: &PartKey, epoch: u64, f: impl FnOnce(&mut Part)) -> bool {
        let mut st = self.lock();
        let found = match st.parts.get_mut(key) {
            Some(p) if p.epoch == epoch => {
                f(p);
                true
            }
            _ => false,
        };
        drop(st);
        self.changed.notify_all();
        found
    }

    /// An event is about to be submitted. False if the partition is gone.
    pub fn begin_submit(&self, key: &PartKey, epoch: u64) -> bool {
        self.with_part(key, epoch, |p| p.outstanding += 1)
    }

    /// A submitted event came back without finishing (retry parked, abandoned,
    /// or the submit was cancelled): its offset stays unfinished.
    pub fn end_unfinished(&self, key: &PartKey, epoch: u64) {
        self.with_part(key, epoch, |p| {
            p.outstanding = p.outstanding.saturating_sub(1)
        });
    }

    /// A submitted event was acknowledged: its offset may be committed.
    pub fn finish(&self, key: &PartKey, epoch: u64, offset: i64) {
        self.with_part(key, epoch, |p| {
            p.outstanding = p.outstanding.saturating_sub(1);
            p.offsets.finished(offset);
            p.progressed = true;
        });
    }

    /// Waits until no event of `keys` is with the delivery layer, at most
    /// `limit`. Returns the state locked, and how many are still out.
    pub fn drain<'a>(
        &'a self,
        keys: &[PartKey],
        limit: Duration,
    ) -> (MutexGuard<'a, State>, usize) {
        let end = Instant::now() + limit;
        let mut st = self.lock();
        loop {
            let busy: usize = keys
                .iter()
                .filter_map(|k| st.parts.get(k))
                .map(|p| p.outstanding)
                .sum();
            let left = end.saturating_duration_since(Instant::now());
            if busy == 0 || left.is_zero() {
                return (st, busy);
            }
            let wait = left.min(Duration::from_millis(100));
            st = match self.changed.wait_timeout(st, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Timestamp;

    use super::*;

    fn record(size: usize, offset: i64) -> OwnedMessage {
        let payload = Some(vec![0u8; size]);
        let ts = Timestamp::NotAvailable;
        OwnedMessage::new(
            payload,
            Some(b"k".to_vec()),
            "t".into(),
            ts,
            0,
            offset,
            None,
        )
    }

    #[test]
    fn backlog_is_bounded_by_count_and_bytes() {
        let mut b = Backlog::default();
        for o in 0..3 {
            b.push_back(record(10, o));
        }
        assert!(!b.is_full(4));
        assert!(b.is_full(3), "count bound");
        let first = b.pop_front().expect("record");
        b.push_front(first);
        assert_eq!(b.pop_front().map(|r| rdkafka::Message::offset(&r)), Some(0));
        b.clear();
        assert!(b.is_empty());
        b.push_back(record(BACKLOG_MAX_BYTES, 9));
        assert!(b.is_full(1000), "byte bound");
        b.pop_front();
        assert!(!b.is_full(1000), "bytes are released");
    }
}
