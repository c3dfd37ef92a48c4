//! One partition: an ordered run of segments, the durable end readers may
//! read up to, and the append state only the log's writer thread touches.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use super::error::EmbeddedError;
use super::record::{self, NewRecord};
use super::recovery;
use super::segment::{self, SegmentMeta};

/// Offsets and segments readers may use. Everything below `end` is durable.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Oldest offset still stored (retention moves it forward).
    pub start: u64,
    /// One past the last durable offset.
    pub end: u64,
    /// The segments, oldest first; the last one is being appended to.
    pub segments: Vec<SegmentMeta>,
}

/// Append state, owned by the writer thread (the mutex is never contended).
struct Writer {
    file: File,
    next: u64,
    size: u64,
    last_ts: i64,
    buf: Vec<u8>,
    failed: bool,
    active_first_ts: Option<i64>,
}

/// A batch written to its segment but not yet synced.
pub struct Staged {
    offsets: Vec<u64>,
    total: usize,
    err: Option<EmbeddedError>,
}

/// A partition of a topic.
pub struct Partition {
    dir: PathBuf,
    shared: Mutex<Snapshot>,
    durable: watch::Sender<u64>,
    writer: Mutex<Writer>,
    damaged: AtomicU64,
}

impl Partition {
    /// Opens (or creates) the partition in `dir`, cutting a torn tail.
    pub fn open(dir: &Path) -> Result<Self, EmbeddedError> {
        segment::create_dir_durable(dir)?;
        let mut found = segment::list(dir)?;
        if found.is_empty() {
            let p = segment::path(dir, 0);
            File::create(&p).map_err(|e| EmbeddedError::io("create", &p, e))?;
            segment::sync_dir(dir)?;
            found.push((0, p));
        }
        let mut segments = Vec::with_capacity(found.len());
        let last = found.len() - 1;
        let mut tail = None;
        for (i, (base, path)) in found.into_iter().enumerate() {
            if i == last {
                let scan = recovery::recover(&path, base)?;
                segments.push(SegmentMeta {
                    base,
                    path,
                    size: scan.good_len,
                    first_ts: scan.first_ts,
                });
                tail = Some(scan);
            } else {
                let size = std::fs::metadata(&path)
                    .map_err(|e| EmbeddedError::io("stat", &path, e))?
                    .len();
                let first_ts = segment::first_timestamp(&path)?;
                segments.push(SegmentMeta {
                    base,
                    path,
                    size,
                    first_ts,
                });
            }
        }
        // `found` was not empty, so `tail` was set on the last iteration.
        let tail = tail.ok_or_else(|| EmbeddedError::Corrupt {
            path: dir.to_path_buf(),
            reason: "no active segment".into(),
        })?;
        let active = &segments[last];
        let file = OpenOptions::new()
            .append(true)
            .open(&active.path)
            .map_err(|e| EmbeddedError::io("open", &active.path, e))?;
        let writer = Writer {
            file,
            next: tail.next_offset,
            size: tail.good_len,
            last_ts: tail.last_ts.unwrap_or(i64::MIN),
            buf: Vec::new(),
            failed: false,
            active_first_ts: tail.first_ts,
        };
        let snap = Snapshot {
            start: segments[0].base,
            end: tail.next_offset,
            segments,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            durable: watch::Sender::new(snap.end),
            shared: Mutex::new(snap),
            writer: Mutex::new(writer),
            damaged: AtomicU64::new(0),
        })
    }

    /// The partition folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A copy of what readers may use.
    pub fn snapshot(&self) -> Snapshot {
        // Poisoning needs a panic inside these short, panic-free sections.
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records readers had to step over because their bytes were damaged
    /// (a record skipped by two groups' readers counts twice; damage found
    /// when the partition opened is logged then, and counted when read).
    pub fn damaged_records(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Counts records a reader had to step over.
    pub(super) fn note_damaged(&self, records: u64) {
        self.damaged.fetch_add(records, Ordering::Relaxed);
    }

    /// Watches the durable end offset.
    pub fn watch_end(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Appends a batch and makes it durable with one fdatasync (plus one per
    /// segment roll). Returns each record's offset or the error that kept it
    /// from becoming durable. Called only by the writer thread.
    pub fn append_batch(
        &self,
        recs: &[&NewRecord],
        now_ms: i64,
        segment_bytes: u64,
    ) -> Vec<Result<u64, EmbeddedError>> {
        self.sync_batch(self.write_batch(recs, now_ms, segment_bytes))
    }

    /// First half of [`append_batch`](Self::append_batch): frames the
    /// records and writes them to the file without syncing, so the writer
    /// can sync several partitions at the same time.
    pub fn write_batch(&self, recs: &[&NewRecord], now_ms: i64, segment_bytes: u64) -> Staged {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut staged = Staged {
            offsets: Vec::with_capacity(recs.len()),
            total: recs.len(),
            err: None,
        };
        if w.failed {
            staged.err = Some(self.failed());
            return staged;
        }
        for rec in recs {
            let len = record::encoded_len(rec) as u64;
            if w.size > 0 && w.size + len > segment_bytes {
                if let Err(e) = self.roll(&mut w) {
                    staged.err = Some(e);
                    return staged;
                }
            }
            let ts = now_ms.max(w.last_ts);
            let offset = w.next;
            w.active_first_ts.get_or_insert(ts);
            record::encode(&mut w.buf, offset, ts, rec);
            w.last_ts = ts;
            w.next += 1;
            w.size += len;
            staged.offsets.push(offset);
        }
        if let Err(e) = self.write_buf(&mut w) {
            staged.err = Some(e);
        }
        staged
    }

    /// Second half: fdatasync, publish the new durable end (or undo the
    /// batch), and answer per record.
    pub fn sync_batch(&self, staged: Staged) -> Vec<Result<u64, EmbeddedError>> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = staged.err;
        if err.is_none() {
            err = self.sync_and_publish(&mut w).err();
        }
        if err.is_some() && !w.failed {
            self.rollback(&mut w);
        }
        let end = self.snapshot().end;
        let mut out: Vec<_> = staged
            .offsets
            .into_iter()
            .map(|o| match &err {
                Some(e) if o >= end => Err(copy_error(e)),
                _ => Ok(o),
            })
            .collect();
        while out.len() < staged.total {
            out.push(Err(err.as_ref().map_or_else(|| self.failed(), copy_error)));
        }
        out
    }

    /// Writes and syncs the buffered frames, then publishes the new end.
    fn flush(&self, w: &mut Writer) -> Result<(), EmbeddedError> {
        self.write_buf(w)?;
        self.sync_and_publish(w)
    }

    fn write_buf(&self, w: &mut Writer) -> Result<(), EmbeddedError> {
        if w.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut w.buf);
        let res = w.file.write_all(&buf);
        w.buf = buf;
        w.buf.clear();
        res.map_err(|e| EmbeddedError::io("append to", self.active_path(), e))
    }

    fn sync_and_publish(&self, w: &mut Writer) -> Result<(), EmbeddedError> {
        w.file
            .sync_data()
            .map_err(|e| EmbeddedError::io("sync", self.active_path(), e))?;
        {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            s.end = w.next;
            if let Some(active) = s.segments.last_mut() {
                active.size = w.size;
                active.first_ts = w.active_first_ts;
            }
        }
        self.durable.send_replace(w.next);
        Ok(())
    }

    /// Seals the active segment (durably) and starts a new one at `w.next`.
    fn roll(&self, w: &mut Writer) -> Result<(), EmbeddedError> {
        self.flush(w)?;
        let path = segment::path(&self.dir, w.next);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| EmbeddedError::io("create", &path, e))?;
        segment::sync_dir(&self.dir)?;
        w.file = file;
        w.size = 0;
        w.active_first_ts = None;
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.segments.push(SegmentMeta {
            base: w.next,
            path,
            size: 0,
            first_ts: None,
        });
        tracing::debug!(partition = %self.dir.display(), base = w.next, "Rolled a new segment.");
        Ok(())
    }

    /// Undoes a failed append: back to the durable end, or refuse appends.
    fn rollback(&self, w: &mut Writer) {
        w.buf.clear();
        let snap = self.snapshot();
        let Some(active) = snap.segments.last() else {
            w.failed = true;
            return;
        };
        w.next = snap.end;
        w.size = active.size;
        w.active_first_ts = active.first_ts;
        let reopened = OpenOptions::new()
            .append(true)
            .open(&active.path)
            .and_then(|f| f.set_len(active.size).map(|()| f));
        match reopened {
            Ok(f) => w.file = f,
            Err(e) => {
                tracing::error!(partition = %self.dir.display(), error = %e, "Could not undo a failed append; partition refuses appends until reopened.");
                w.failed = true;
            }
        }
    }

    fn active_path(&self) -> PathBuf {
        self.snapshot()
            .segments
            .last()
            .map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    fn failed(&self) -> EmbeddedError {
        EmbeddedError::Failed {
            path: self.dir.clone(),
        }
    }

    /// Deletes whole sealed segments older than `max_age_ms` before `now_ms`
    /// or beyond `max_bytes` in total. Returns how many were deleted.
    pub fn enforce_retention(
        &self,
        now_ms: i64,
        max_age_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> usize {
        let doomed: Vec<SegmentMeta> = {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            let mut total: u64 = s.segments.iter().map(|m| m.size).sum();
            let mut n = 0;
            // The active (last) segment is never deleted.
            while n + 1 < s.segments.len() {
                let seg = &s.segments[n];
                // Timestamps never decrease within a partition, so the next
                // segment's first time bounds every time in this one.
                let too_old = match (max_age_ms, s.segments[n + 1].first_ts) {
                    (Some(age), Some(next_ts)) => next_ts < now_ms.saturating_sub(age),
                    _ => false,
                };
                let too_big = max_bytes.is_some_and(|b| total > b);
                if !(too_old || too_big) {
                    break;
                }
                total -= seg.size;
                n += 1;
            }
            let doomed: Vec<_> = s.segments.drain(..n).collect();
            if let Some(first) = s.segments.first() {
                s.start = first.base;
            }
            doomed
        };
        for seg in &doomed {
            match std::fs::remove_file(&seg.path) {
                Ok(()) => {
                    tracing::info!(segment = %seg.path.display(), bytes = seg.size, "Deleted a segment past retention.")
                }
                Err(e) => {
                    tracing::warn!(segment = %seg.path.display(), error = %e, "Could not delete a segment past retention.")
                }
            }
        }
        doomed.len()
    }
}

/// Errors are not `Clone`; every record of a failed batch gets its own copy.
fn copy_error(e: &EmbeddedError) -> EmbeddedError {
    match e {
        EmbeddedError::Io { what, path, source } => EmbeddedError::Io {
            what,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        EmbeddedError::Failed { path } => EmbeddedError::Failed { path: path.clone() },
        other => EmbeddedError::Corrupt {
            path: PathBuf::new(),
            reason: other.to_string(),
        },
    }
}
