//! Segment files: `<base offset, 20 digits>.seg` in a partition folder, each
//! an append-only run of record frames starting at its base offset.
//! Recovery scans a segment, checking every frame's checksum and offset, and
//! cuts a torn or corrupt tail.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::EmbeddedError;
use super::record::{self, FrameError, StoredRecord, HEADER_LEN};

/// Largest frame body accepted when reading, whatever `maxMessageBytes` is
/// now: it only guards against garbage lengths, so records written under a
/// larger limit stay readable.
pub const MAX_FRAME_BODY: usize = 256 << 20;
const EXTENSION: &str = "seg";

/// What the log knows about one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Offset of its first record.
    pub base: u64,
    /// The file.
    pub path: PathBuf,
    /// Durable bytes in the file.
    pub size: u64,
    /// Append time of its first record, if it has one.
    pub first_ts: Option<i64>,
}

/// The file holding the segment that starts at `base`.
pub fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.{EXTENSION}"))
}

/// The segments in `dir`, sorted by base offset.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, EmbeddedError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EmbeddedError::io("list", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EmbeddedError::io("list", dir, e))?;
        let p = entry.path();
        if p.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let base = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(base) = base {
            out.push((base, p));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the frame at `pos`: `Ok(Err(_))` for a torn or corrupt frame.
pub fn read_at(file: &File, pos: u64) -> std::io::Result<Result<(StoredRecord, u64), FrameError>> {
    let mut header = [0u8; HEADER_LEN];
    if let Err(e) = file.read_exact_at(&mut header, pos) {
        return incomplete(e);
    }
    let len = match record::body_len(&header, MAX_FRAME_BODY) {
        Ok(len) => len,
        Err(e) => return Ok(Err(e)),
    };
    let mut body = vec![0u8; len];
    if let Err(e) = file.read_exact_at(&mut body, pos + HEADER_LEN as u64) {
        return incomplete(e);
    }
    Ok(record::decode(&header, &body).map(|r| (r, (HEADER_LEN + len) as u64)))
}

fn incomplete<T>(e: std::io::Error) -> std::io::Result<Result<T, FrameError>> {
    if e.kind() == ErrorKind::UnexpectedEof {
        Ok(Err(FrameError::Incomplete))
    } else {
        Err(e)
    }
}

/// What a full scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of whole, valid frames from the start.
    pub good_len: u64,
    /// Offset after the last valid record.
    pub next_offset: u64,
    /// Append time of the first valid record.
    pub first_ts: Option<i64>,
    /// Append time of the last valid record.
    pub last_ts: Option<i64>,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<FrameError>,
}

/// Scans a whole segment sequentially, checking checksums and offsets.
pub fn scan(path: &Path, base: u64) -> Result<Scan, EmbeddedError> {
    let file = File::open(path).map_err(|e| EmbeddedError::io("open", path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = Scan {
        good_len: 0,
        next_offset: base,
        first_ts: None,
        last_ts: None,
        stopped: None,
    };
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut reader, &mut header) {
            Ok(0) => return Ok(out),
            Ok(n) if n < HEADER_LEN => {
                out.stopped = Some(FrameError::Incomplete);
                return Ok(out);
            }
            Ok(_) => {}
            Err(e) => return Err(EmbeddedError::io("read", path, e)),
        }
        let len = match record::body_len(&header, MAX_FRAME_BODY) {
            Ok(len) => len,
            Err(e) => {
                out.stopped = Some(e);
                return Ok(out);
            }
        };
        body.resize(len, 0);
        match read_full(&mut reader, &mut body) {
            Ok(n) if n < len => {
                out.stopped = Some(FrameError::Incomplete);
                return Ok(out);
            }
            Ok(_) => {}
            Err(e) => return Err(EmbeddedError::io("read", path, e)),
        }
        // Only the checksum, offset and time are needed here; a full decode
        // would copy every payload of a segment that may be large.
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if crc32fast::hash(&body) != crc {
            out.stopped = Some(FrameError::Checksum);
            return Ok(out);
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&body[..8]);
        let offset = u64::from_le_bytes(word);
        word.copy_from_slice(&body[8..16]);
        let ts = i64::from_le_bytes(word);
        if offset != out.next_offset {
            out.stopped = Some(FrameError::Malformed("record offset out of sequence"));
            return Ok(out);
        }
        out.first_ts.get_or_insert(ts);
        out.last_ts = Some(ts);
        out.next_offset += 1;
        out.good_len += (HEADER_LEN + len) as u64;
    }
}

/// Like `read_exact`, but returns how much it read before a clean EOF.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Scans the active segment and cuts whatever follows the last good record.
pub fn recover(path: &Path, base: u64) -> Result<Scan, EmbeddedError> {
    let scan = scan(path, base)?;
    let len = std::fs::metadata(path)
        .map_err(|e| EmbeddedError::io("stat", path, e))?
        .len();
    if scan.good_len < len {
        tracing::warn!(
            segment = %path.display(),
            cut_bytes = len - scan.good_len,
            kept_records = scan.next_offset - base,
            reason = %scan.stopped.as_ref().map_or("trailing bytes".to_string(), |e| e.to_string()),
            "Cut a torn or corrupt tail from the log."
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| EmbeddedError::io("open", path, e))?;
        file.set_len(scan.good_len)
            .map_err(|e| EmbeddedError::io("truncate", path, e))?;
        file.sync_all()
            .map_err(|e| EmbeddedError::io("sync", path, e))?;
    }
    Ok(scan)
}

/// Append time of the first record of a sealed segment (one frame read).
pub fn first_timestamp(path: &Path) -> Result<Option<i64>, EmbeddedError> {
    let file = File::open(path).map_err(|e| EmbeddedError::io("open", path, e))?;
    match read_at(&file, 0) {
        Ok(Ok((rec, _))) => Ok(Some(rec.timestamp_ms)),
        Ok(Err(_)) => Ok(None),
        Err(e) => Err(EmbeddedError::io("read", path, e)),
    }
}

/// Makes a folder's entries (new or renamed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), EmbeddedError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EmbeddedError::io("sync folder", dir, e))
}
