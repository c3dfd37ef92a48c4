//! Sequential reads of one partition from an offset, up to its durable end.
//! Blocking file I/O: async callers run it on the blocking pool.

use std::fs::File;
use std::sync::Arc;

use super::error::EmbeddedError;
use super::partition::{Partition, Snapshot};
use super::record::StoredRecord;
use super::segment::{self, SegmentMeta};

/// A cursor over one partition.
pub struct PartitionReader {
    part: Arc<Partition>,
    next: u64,
    open: Option<OpenSegment>,
}

struct OpenSegment {
    base: u64,
    file: File,
    pos: u64,
}

impl PartitionReader {
    /// A reader that yields records from `from` on.
    pub fn new(part: Arc<Partition>, from: u64) -> Self {
        Self {
            part,
            next: from,
            open: None,
        }
    }

    /// The offset of the next record this reader yields.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Up to `max_records` / about `max_bytes` durable records from the
    /// current position; empty when caught up. Records deleted by retention
    /// are skipped with a warning.
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>, EmbeddedError> {
        let snap = self.part.snapshot();
        if self.next < snap.start {
            tracing::warn!(
                partition = %self.part.dir().display(),
                from = self.next,
                to = snap.start,
                "Records were deleted by retention before being consumed; skipping them."
            );
            self.next = snap.start;
            self.open = None;
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        while self.next < snap.end && out.len() < max_records && bytes < max_bytes {
            let Some(seg) = self.position_in(&snap)? else {
                break;
            };
            let Some(open) = self.open.as_mut() else {
                break;
            };
            if open.pos >= seg.size {
                // Past this segment's end: move on to the next one (none
                // yet means the snapshot ends here).
                let Some(b) = next_base(&snap, open.base) else {
                    break;
                };
                self.next = self.next.max(b);
                self.open = None;
                continue;
            }
            let read = segment::read_at(&open.file, open.pos)
                .map_err(|e| EmbeddedError::io("read", &seg.path, e))?;
            match read {
                Ok((rec, len)) => {
                    open.pos += len;
                    if rec.offset < self.next {
                        continue;
                    }
                    self.next = rec.offset + 1;
                    bytes += rec.record.data.len();
                    out.push(rec);
                }
                Err(err) => {
                    // Sealed segments were synced before the next one began,
                    // so this is media damage: skip the rest of the segment
                    // rather than stall the partition forever.
                    tracing::error!(segment = %seg.path.display(), position = open.pos, error = %err, "Corrupt record in a sealed segment; skipping the rest of it.");
                    match next_base(&snap, open.base) {
                        Some(b) => {
                            self.next = b;
                            self.open = None;
                        }
                        None => {
                            return Err(EmbeddedError::Corrupt {
                                path: seg.path.clone(),
                                reason: err.to_string(),
                            })
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Opens the segment holding `self.next` if none is open; returns its meta.
    fn position_in(&mut self, snap: &Snapshot) -> Result<Option<SegmentMeta>, EmbeddedError> {
        if let Some(open) = &self.open {
            return Ok(snap.segments.iter().find(|s| s.base == open.base).cloned());
        }
        let Some(seg) = snap.segments.iter().rev().find(|s| s.base <= self.next) else {
            return Ok(None);
        };
        let file = File::open(&seg.path).map_err(|e| EmbeddedError::io("open", &seg.path, e))?;
        self.open = Some(OpenSegment {
            base: seg.base,
            file,
            pos: 0,
        });
        Ok(Some(seg.clone()))
    }
}

fn next_base(snap: &Snapshot, base: u64) -> Option<u64> {
    snap.segments.iter().map(|s| s.base).find(|b| *b > base)
}

/// The first offset whose append time is at or after `ts_ms` (the durable
/// end when there is none).
pub fn offset_for_time(part: &Arc<Partition>, ts_ms: i64) -> Result<u64, EmbeddedError> {
    let snap = part.snapshot();
    let from = snap
        .segments
        .iter()
        .rev()
        .find(|s| s.first_ts.is_some_and(|t| t <= ts_ms))
        .map_or(snap.start, |s| s.base);
    let mut reader = PartitionReader::new(part.clone(), from);
    loop {
        let batch = reader.read_batch(1024, 16 << 20)?;
        if batch.is_empty() {
            return Ok(reader.position().max(snap.start).min(snap.end));
        }
        if let Some(rec) = batch.iter().find(|r| r.timestamp_ms >= ts_ms) {
            return Ok(rec.offset);
        }
    }
}
