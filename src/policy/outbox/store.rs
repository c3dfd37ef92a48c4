//! The outbox's durable side: one single-partition topic in the embedded
//! append log (fsynced, group commit) plus one committed cursor, and the
//! depth accounting that enforces `outboxMaxBytes`.
//!
//! The whole component shares one FIFO, so per-key (and per-topic) order
//! holds trivially; the event's topic travels in a reserved metadata key.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::broker::embedded::cursor;
use crate::broker::embedded::error::EmbeddedError;
use crate::broker::embedded::log::{Log, LogOptions, Topic};
use crate::broker::embedded::partition::Partition;
use crate::broker::embedded::reader::PartitionReader;
use crate::broker::embedded::record::{self, NewRecord, StoredRecord};
use crate::broker::PublishRequest;

/// The log topic holding every buffered event of the component.
const LOG_TOPIC: &str = "outbox";
/// The cursor's group name.
const GROUP: &str = "forwarder";
/// Metadata key carrying the event's real topic inside the log record.
const TOPIC_KEY: &str = "__sidebus_outbox_topic";
/// Largest single buffered record (bodies are capped far lower upstream).
const MAX_RECORD_BYTES: usize = 64 << 20;

/// How much the outbox holds (for logs and readiness figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Buffered events the broker has not confirmed yet.
    pub events: u64,
    /// Their size in bytes (as stored).
    pub bytes: u64,
    /// The `outboxMaxBytes` bound.
    pub max_bytes: u64,
}

/// Failures of the outbox store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log or cursor file failed.
    #[error("outbox log: {0}")]
    Log(#[from] EmbeddedError),
    /// Buffering this event would pass `outboxMaxBytes`.
    #[error("outbox full: {used} of {limit} bytes buffered")]
    Full {
        /// Bytes buffered now.
        used: u64,
        /// The bound.
        limit: u64,
    },
    /// A stored record lacks the topic key (written by something else).
    #[error("outbox record at offset {0} has no topic")]
    NoTopic(u64),
}

/// The durable outbox of one component.
pub struct Store {
    log: Log,
    topic: Arc<Topic>,
    cursor_path: PathBuf,
    max_bytes: u64,
    events: AtomicU64,
    bytes: AtomicU64,
}

/// Bytes an event counts for against `outboxMaxBytes`: its encoded size.
pub fn cost(rec: &NewRecord) -> u64 {
    record::encoded_len(rec) as u64
}

/// The log record for a publish request.
pub fn to_record(req: &PublishRequest) -> NewRecord {
    let mut metadata = req.metadata.clone();
    metadata.insert(TOPIC_KEY.into(), req.topic.clone());
    NewRecord {
        key: req.key.clone(),
        content_type: req.content_type.clone(),
        metadata,
        data: req.data.clone(),
    }
}

/// The publish request a stored record came from.
pub fn from_record(rec: &StoredRecord) -> Result<PublishRequest, StoreError> {
    let mut metadata = rec.record.metadata.clone();
    let topic = metadata
        .remove(TOPIC_KEY)
        .ok_or(StoreError::NoTopic(rec.offset))?;
    Ok(PublishRequest {
        topic,
        data: rec.record.data.clone(),
        content_type: rec.record.content_type.clone(),
        metadata,
        key: rec.record.key.clone(),
    })
}

impl Store {
    /// Opens (or creates) the outbox in `dir` and counts what is left from
    /// a previous run. Returns the store and the forwarder's start offset.
    /// Blocking.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Self, u64), StoreError> {
        let opts = LogOptions {
            partitions: 1,
            // Small enough that drained segments are reclaimed soon after a
            // backlog clears, large enough to keep the file count low.
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            max_record_bytes: MAX_RECORD_BYTES,
        };
        let log = Log::open(dir, opts)?;
        let topic = log.topic(LOG_TOPIC)?;
        let cursor_path = log.cursor_path(LOG_TOPIC, GROUP, 0);
        let start = cursor::load(&cursor_path)?.unwrap_or(0);
        let store = Self {
            log,
            topic,
            cursor_path,
            max_bytes,
            events: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let mut reader = PartitionReader::new(store.partition(), start);
        let (mut events, mut bytes) = (0u64, 0u64);
        loop {
            let batch = reader.read_batch(4096, 16 << 20)?;
            if batch.is_empty() {
                break;
            }
            events += batch.len() as u64;
            bytes += batch.iter().map(|r| cost(&r.record)).sum::<u64>();
        }
        store.events.store(events, Ordering::SeqCst);
        store.bytes.store(bytes, Ordering::SeqCst);
        Ok((store, start))
    }

    /// The log partition (for readers and end-of-log watches).
    pub fn partition(&self) -> Arc<Partition> {
        // open() created the topic with exactly one partition.
        self.topic.partitions[0].clone()
    }

    /// Events and bytes buffered and not yet confirmed by the broker
    /// (including appends in progress).
    pub fn depth(&self) -> OutboxDepth {
        OutboxDepth {
            events: self.events.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
            max_bytes: self.max_bytes,
        }
    }

    /// Durably appends `req`; returns once it is fsynced. Refuses it when it
    /// would take the outbox past its bound.
    pub async fn append(&self, req: &PublishRequest) -> Result<u64, StoreError> {
        let rec = to_record(req);
        let n = cost(&rec);
        self.reserve(n)?;
        match self.log.append(&self.topic, 0, rec).await {
            Ok(offset) => Ok(offset),
            Err(err) => {
                self.release(1, n);
                Err(err.into())
            }
        }
    }

    /// Counts one event of `n` bytes in, unless that passes the bound.
    fn reserve(&self, n: u64) -> Result<(), StoreError> {
        let mut used = self.bytes.load(Ordering::SeqCst);
        loop {
            if used.saturating_add(n) > self.max_bytes {
                return Err(StoreError::Full {
                    used,
                    limit: self.max_bytes,
                });
            }
            match self
                .bytes
                .compare_exchange(used, used + n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        // Counted only after the bytes are, so a reader seeing events == 0
        // never misses a reservation that already holds bytes.
        self.events.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn release(&self, events: u64, bytes: u64) {
        self.events.fetch_sub(events, Ordering::SeqCst);
        self.bytes.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// Records that the broker confirmed everything before `next`
    /// (`events`/`bytes` of it since the last commit): stores the cursor
    /// durably, then releases the depth and deletes drained segments.
    /// Blocking.
    pub fn commit(&self, next: u64, events: u64, bytes: u64) -> Result<(), StoreError> {
        // The broker has these events whatever happens to the cursor file:
        // release them from the depth either way (a failed store only means
        // a restart re-sends them).
        let stored = cursor::store(&self.cursor_path, next);
        self.release(events, bytes);
        stored?;
        self.reclaim(next);
        Ok(())
    }

    /// Deletes sealed segments wholly before `next`. Uses the log's
    /// age-based retention with the first timestamp of the segment holding
    /// `next` as the cut: timestamps never decrease, and the comparison is
    /// strict, so a segment with anything unconfirmed is never deleted even
    /// while appends continue.
    fn reclaim(&self, next: u64) {
        let part = self.partition();
        let snap = part.snapshot();
        let Some(current) = snap.segments.iter().rev().find(|s| s.base <= next) else {
            return;
        };
        if current.base == snap.segments.first().map_or(0, |s| s.base) {
            return;
        }
        let now = now_ms();
        let cut = current.first_ts.unwrap_or(now);
        let deleted = part.enforce_retention(now, Some(now.saturating_sub(cut)), None);
        if deleted > 0 {
            tracing::debug!(dir = %self.log.dir().display(), deleted, "Deleted drained outbox segments.");
        }
    }

    /// Stops the log writer and releases the folder. Blocking; idempotent.
    pub fn close(&self) {
        self.log.close();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
