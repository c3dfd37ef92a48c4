//! Fault injection below the log: damaged bytes in sealed and active
//! segments, and proof that new folders are synced into their parents.
//! Every case counts what was acknowledged, what came back and what was lost.

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::storage::{append_n, opts, read_all, rec, segments};
use crate::broker::embedded::cursor;
use crate::broker::embedded::log::Log;
use crate::broker::embedded::record::HEADER_LEN;
use crate::broker::embedded::segment;

/// Byte position of each whole frame in a segment file.
fn frame_positions(path: &Path) -> Vec<u64> {
    let file = std::fs::File::open(path).expect("open segment");
    let len = file.metadata().expect("stat").len();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let (_, n) = segment::read_at(&file, pos)
            .expect("read")
            .expect("an undamaged frame");
        out.push(pos);
        pos += n;
    }
    out
}

/// Flips one byte inside the body of each frame `indices` names, as media
/// damage would: their checksums no longer match.
fn damage(path: &Path, indices: &[usize]) {
    let frames = frame_positions(path);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(path)
        .expect("open for damage");
    for &i in indices {
        let at = frames[i] + HEADER_LEN as u64 + 40;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, at).expect("read byte");
        file.write_all_at(&[byte[0] ^ 0x5A], at)
            .expect("write byte");
    }
    file.sync_all().expect("sync");
}

/// The offsets read back, and those of `0..sent` that are missing.
fn read_back(log: &Log, sent: u64) -> (Vec<u64>, Vec<u64>) {
    let got: Vec<u64> = read_all(log, 0).iter().map(|r| r.offset).collect();
    let lost = (0..sent).filter(|o| !got.contains(o)).collect();
    (got, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_a_sealed_segment_loses_only_the_damaged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    // About 12 records of 100 bytes per 2 KB segment: several sealed ones.
    let log = Log::open(dir.path(), opts(2048)).expect("open");
    append_n(&log, 0, 60, 100).await;
    let segs = segments(dir.path());
    assert!(segs.len() >= 4, "several segments: {segs:?}");
    let first = frame_positions(&segs[0]).len() as u64;
    damage(&segs[0], &[3]);

    let (got, lost) = read_back(&log, 60);
    assert_eq!(lost, vec![3], "acknowledged=60 delivered={}", got.len());
    assert_eq!(got.len(), 59, "no duplicates");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(
        first > 4,
        "records after the damaged one in its segment were read"
    );
    let topic = log.topic("t").expect("topic");
    assert_eq!(topic.partitions[0].damaged_records(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_active_segment_keeps_later_records_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(1 << 20)).expect("open");
    append_n(&log, 0, 20, 100).await;
    log.close();
    drop(log);
    let seg = segments(dir.path()).pop().expect("a segment");
    damage(&seg, &[7]);

    let log = Log::open(dir.path(), opts(1 << 20)).expect("reopen");
    let (got, lost) = read_back(&log, 20);
    assert_eq!(lost, vec![7], "acknowledged=20 delivered={}", got.len());
    let topic = log.topic("t").expect("topic");
    assert_eq!(topic.partitions[0].damaged_records(), 1);
    // Appends go on after the last whole record, with the next offset.
    let off = log.append(&topic, 0, rec(20, 100)).await.expect("append");
    assert_eq!(off, 20, "offsets continue after the kept records");
    let (got, lost) = read_back(&log, 21);
    assert_eq!((got.len(), lost), (20, vec![7]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_active_segment_does_not_stall_a_live_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), opts(1 << 20)).expect("open");
    append_n(&log, 0, 10, 100).await;
    let seg = segments(dir.path()).pop().expect("a segment");
    // One record in the middle and the last durable one.
    damage(&seg, &[3, 9]);

    let (got, lost) = read_back(&log, 10);
    assert_eq!(lost, vec![3, 9], "acknowledged=10 delivered={}", got.len());
    // Records appended after the damage are read on from there.
    append_n(&log, 10, 5, 100).await;
    let (got, lost) = read_back(&log, 15);
    assert_eq!((got.len(), lost), (13, vec![3, 9]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_folders_are_synced_into_their_parents() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let log = Log::open(&data, opts(1 << 20)).expect("open");
    append_n(&log, 0, 1, 10).await;
    let cursor_file = log.cursor_path("t", "g", 0);
    cursor::store(&cursor_file, 1).expect("store cursor");

    let synced = segment::synced::below(root.path());
    let group_dir = cursor_file.parent().expect("group folder");
    let partition_dir = data.join("topics").join("t").join("0");
    let mut created: Vec<&Path> = vec![&data, &partition_dir, group_dir];
    created.extend(partition_dir.ancestors().take_while(|p| *p != data));
    created.extend(group_dir.ancestors().take_while(|p| *p != data));
    for dir in created {
        let parent = dir.parent().expect("a parent");
        assert!(
            synced.iter().any(|s| s == parent),
            "{} was created but {} was never synced; synced: {synced:?}",
            dir.display(),
            parent.display()
        );
    }
}
