//! Sequential reads of one partition from an offset, up to its durable end.
//! Blocking file I/O: async callers run it on the blocking pool.

use std::fs::File;
use std::sync::Arc;

use super::error::EmbeddedError;
use super::partition::{Partition, Snapshot};
use super::record::StoredRecord;
use super::recovery;
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
                    let pos = open.pos;
                    let (at, to) = self.step_over_damage(&snap, &seg, pos)?;
                    tracing::error!(
                        segment = %seg.path.display(),
                        position = pos,
                        lost_offsets = %format_args!("{}..{to}", self.next),
                        error = %err,
                        "Damaged record in the log; stepping over it to the next whole record."
                    );
                    self.part.note_damaged(to.saturating_sub(self.next));
                    self.next = self.next.max(to);
                    match at {
                        Some(pos) => {
                            if let Some(open) = self.open.as_mut() {
                                open.pos = pos;
                            }
                        }
                        None => self.open = None,
                    }
                }
            }
        }
        Ok(out)
    }

    /// Where reading resumes after a damaged frame at `pos` of `seg`: the
    /// next whole frame of the segment (its position and offset), else the
    /// next segment (`None`, its base), else — in the active segment, whose
    /// durable bytes end here — the durable end, read on from `seg.size`.
    /// Every record in between was acknowledged and is lost to the damage;
    /// stalling the partition forever would lose all the records after it.
    fn step_over_damage(
        &self,
        snap: &Snapshot,
        seg: &SegmentMeta,
        pos: u64,
    ) -> Result<(Option<u64>, u64), EmbeddedError> {
        let Some(open) = self.open.as_ref() else {
            return Ok((None, self.next));
        };
        let found = recovery::resync(&open.file, pos + 1, seg.size, self.next)
            .map_err(|e| EmbeddedError::io("read", &seg.path, e))?;
        Ok(match (found, next_base(snap, open.base)) {
            (Some((at, offset)), _) => (Some(at), offset),
            (None, Some(base)) => (None, base),
            (None, None) => (Some(seg.size), snap.end),
        })
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
