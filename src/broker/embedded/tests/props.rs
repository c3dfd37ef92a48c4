//! Property tests of everything in the embedded broker that reads bytes
//! from disk: record frames, whole segments after damage, cursor files.
//! Whatever the bytes, decoding answers (a record or an error) and never
//! panics; what was written whole comes back.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use proptest::prelude::*;

use crate::broker::embedded::record::{self, NewRecord, HEADER_LEN};
use crate::broker::embedded::{cursor, recovery};

fn any_record() -> impl Strategy<Value = NewRecord> {
    (
        proptest::option::of(".{0,40}"),
        ".{0,40}",
        proptest::collection::btree_map(".{0,20}", ".{0,40}", 0..5),
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(key, content_type, metadata, data)| NewRecord {
            key,
            content_type,
            metadata: metadata.into_iter().collect::<BTreeMap<_, _>>(),
            data: Bytes::from(data),
        })
}

fn frame(offset: u64, rec: &NewRecord) -> Vec<u8> {
    let mut buf = Vec::new();
    record::encode(&mut buf, offset, 1_700_000_000_000 + offset as i64, rec);
    buf
}

fn split(frame: &[u8]) -> ([u8; HEADER_LEN], &[u8]) {
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&frame[..HEADER_LEN]);
    (header, &frame[HEADER_LEN..])
}

proptest! {
    #[test]
    fn records_round_trip(rec in any_record(), offset in any::<u64>()) {
        let bytes = frame(offset, &rec);
        prop_assert_eq!(bytes.len(), record::encoded_len(&rec));
        let (header, body) = split(&bytes);
        prop_assert_eq!(record::body_len(&header, usize::MAX).ok(), Some(body.len()));
        let back = record::decode(&header, body).expect("decodes");
        prop_assert_eq!(back.offset, offset);
        prop_assert_eq!(back.record, rec);
    }

    /// Bodies with a matching checksum but arbitrary contents exercise
    /// every length field of the parser: it must answer, never panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let _ = record::decode(&header, &body);
        let _ = record::body_len(&header, 1 << 20);
    }

    #[test]
    fn cursor_files_of_any_content_never_panic(text in proptest::collection::vec(any::<u8>(), 0..64)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.cursor");
        std::fs::write(&path, &text).expect("write");
        if let Ok(Some(n)) = cursor::load(&path) {
            prop_assert!(String::from_utf8_lossy(&text).contains(&n.to_string()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// One flipped byte anywhere in a segment loses the record it falls in
    /// and nothing else (the last record is a tail and is cut instead);
    /// a cut anywhere keeps every record before it.
    #[test]
    fn segment_scans_keep_every_undamaged_record(
        recs in proptest::collection::vec(any_record(), 1..12),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        truncate in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.seg");
        let frames: Vec<Vec<u8>> = recs.iter().enumerate().map(|(i, r)| frame(i as u64, r)).collect();
        let starts: Vec<u64> = frames
            .iter()
            .scan(0u64, |pos, f| { let s = *pos; *pos += f.len() as u64; Some(s) })
            .collect();
        let all: Vec<u8> = frames.concat();
        std::fs::write(&path, &all).expect("write");
        let pos = at.index(all.len()) as u64;
        let hit = starts.iter().rposition(|s| *s <= pos).expect("a frame") as u64;
        let n = recs.len() as u64;
        if truncate {
            let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
            f.set_len(pos).expect("truncate");
            let scan = recovery::scan(&path, 0).expect("scan");
            prop_assert_eq!(scan.next_offset, hit, "records before the cut are kept");
            prop_assert_eq!(scan.good_len, starts[hit as usize]);
        } else {
            let f = std::fs::OpenOptions::new().write(true).read(true).open(&path).expect("open");
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, pos).expect("read");
            f.write_all_at(&[b[0] ^ flip], pos).expect("write");
            let scan = recovery::scan(&path, 0).expect("scan");
            if hit + 1 == n {
                prop_assert_eq!((scan.next_offset, scan.damaged), (n - 1, 0), "a damaged last record is a tail");
            } else {
                prop_assert_eq!((scan.next_offset, scan.damaged), (n, 1), "only the hit record is lost");
            }
        }
    }
}
