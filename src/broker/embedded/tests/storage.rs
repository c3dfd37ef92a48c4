//! Storage-level tests: torn and corrupt tails, retention, the folder lock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::broker::embedded::error::EmbeddedError;
use crate::broker::embedded::log::{Log, LogOptions};
use crate::broker::embedded::reader::PartitionReader;
use crate::broker::embedded::record::{NewRecord, StoredRecord};
use crate::broker::embedded::segment;
use crate::broker::Metadata;

pub(super) fn opts(segment_bytes: u64) -> LogOptions {
    LogOptions {
        partitions: 1,
        segment_bytes,
        max_record_bytes: 1 << 20,
    }
}

pub(super) fn rec(i: usize, size: usize) -> NewRecord {
    let mut data = format!("event-{i}-").into_bytes();
    data.resize(size.max(data.len()), b'x');
    NewRecord {
        key: Some(format!("k{i}")),
        content_type: "text/plain".into(),
        metadata: Metadata::new(),
        data: Bytes::from(data),
    }
}

pub(super) async fn append_n(log: &Log, from: usize, n: usize, size: usize) {
    let topic = log.topic("t").expect("topic");
    for i in from..from + n {
        let off = log.append(&topic, 0, rec(i, size)).await.expect("append");
        assert_eq!(off, i as u64, "offsets are dense");
    }
}

pub(super) fn read_all(log: &Log, from: u64) -> Vec<StoredRecord> {
    let topic = log.topic("t").expect("topic");
    let mut reader = PartitionReader::new(topic.partitions[0].clone(), from);
    let mut out = Vec::new();
    loop {
        let batch = reader.read_batch(1000, 1 << 20).expect("read");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

pub(super) fn segments(dir: &Path) -> Vec<PathBuf> {
    let pdir = dir.join("topics").join("t").join("0");
    segment::list(&pdir)
        .expect("list")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// Collects log output of the current thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Opens the log with logs captured; returns it and what was logged.
fn open_logged(dir: &Path) -> (Log, String) {
    let cap = Captured::default();
    let writer = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let log =
        tracing::subscriber::with_default(sub, || Log::open(dir, opts(1 << 20))).expect("reopen");
    let text =
        String::from_utf8_lossy(&cap.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    (log, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tails_are_cut_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(1 << 20)).expect("open");
    append_n(&log, 0, 20, 100).await;
    log.close();
    drop(log);
    let seg = segments(dir.path()).pop().expect("a segment");
    let good = std::fs::metadata(&seg).expect("stat").len();

    // Garbage after the last record (a torn append of junk).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open");
    f.write_all(&[0xAB; 37]).expect("write");
    drop(f);
    let (log, logged) = open_logged(dir.path());
    assert!(
        logged.contains("Cut a torn or corrupt tail") && logged.contains("cut_bytes=37"),
        "log: {logged}"
    );
    assert_eq!(std::fs::metadata(&seg).expect("stat").len(), good);
    assert_eq!(read_all(&log, 0).len(), 20, "earlier records intact");
    log.close();
    drop(log);

    // A record cut in the middle (a torn write of a real frame).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open");
    f.set_len(good - 5).expect("truncate");
    drop(f);
    let (log, logged) = open_logged(dir.path());
    assert!(
        logged.contains("Cut a torn or corrupt tail"),
        "log: {logged}"
    );
    let kept = read_all(&log, 0);
    assert_eq!(kept.len(), 19, "only the torn record is gone");
    for (i, r) in kept.iter().enumerate() {
        assert_eq!(r.record, rec(i, 100), "record {i} intact");
    }
    // Appends continue at the cut, with dense offsets.
    append_n(&log, 19, 3, 100).await;
    assert_eq!(read_all(&log, 0).len(), 22);
    log.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_the_tail_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(1 << 20)).expect("open");
    append_n(&log, 0, 10, 100).await;
    log.close();
    drop(log);
    let seg = segments(dir.path()).pop().expect("a segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    std::fs::write(&seg, &bytes).expect("write");
    let (log, logged) = open_logged(dir.path());
    assert!(logged.contains("checksum mismatch"), "log: {logged}");
    assert_eq!(read_all(&log, 0).len(), 9);
    log.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_bytes_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(4096)).expect("open");
    append_n(&log, 0, 100, 500).await;
    let before = segments(dir.path()).len();
    assert!(before > 10, "expected many segments, got {before}");
    let now = chrono::Utc::now().timestamp_millis();
    let deleted = log.enforce_retention(now, None, Some(8192));
    let left = segments(dir.path());
    assert_eq!(deleted, before - left.len());
    let total: u64 = left
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum();
    assert!(total <= 8192 + 4096, "kept {total} bytes");
    let kept = read_all(&log, 0);
    assert!(!kept.is_empty() && kept[0].offset > 0, "old records went");
    assert_eq!(
        kept.last().map(|r| r.offset),
        Some(99),
        "newest records stay"
    );
    append_n(&log, 100, 1, 500).await;
    log.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_keeps_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(4096)).expect("open");
    append_n(&log, 0, 40, 500).await;
    let before = segments(dir.path()).len();
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    assert_eq!(
        log.enforce_retention(now, Some(hour), None),
        0,
        "nothing is an hour old yet"
    );
    let deleted = log.enforce_retention(now + 2 * hour, Some(hour), None);
    assert_eq!(
        deleted,
        before - 1,
        "every sealed segment is past retention"
    );
    let kept = read_all(&log, 0);
    assert!(!kept.is_empty(), "the active segment stays");
    assert_eq!(kept.last().map(|r| r.offset), Some(39));
    log.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_gets_the_lock_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(1 << 20)).expect("open");
    match Log::open(dir.path(), opts(1 << 20)) {
        Err(err @ EmbeddedError::Locked { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
            assert!(
                msg.contains(&format!("pid={}", std::process::id())),
                "{msg}"
            );
        }
        Err(other) => panic!("expected the lock error, got {other}"),
        Ok(_) => panic!("a second opener got the folder"),
    }
    log.close();
    let again = Log::open(dir.path(), opts(1 << 20)).expect("open after close");
    again.close();
}
