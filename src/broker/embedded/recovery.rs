//! Reading a segment that may be damaged: the full scan of the active
//! segment when a partition opens, and the search for the next whole frame
//! that lets readers step over damaged bytes instead of losing the rest of a
//! segment.
//!
//! Two kinds of bad bytes look alike and must be told apart:
//! - a **torn tail**: the last append did not reach the disk whole before a
//!   crash. Nothing after it was acknowledged, so it is cut.
//! - **damage in the middle** (a flipped bit, a bad sector): whole frames
//!   with later offsets follow it. Those were acknowledged and are kept;
//!   only the records inside the damaged bytes are lost, and they are
//!   counted and logged.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::EmbeddedError;
use super::record::{self, FrameError, HEADER_LEN};
use super::segment::{read_at, MAX_FRAME_BODY};

/// How much of a segment [`resync`] reads at once.
const RESYNC_WINDOW: usize = 1 << 20;

/// What a full scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Bytes up to the end of the last valid frame: where appends continue.
    pub good_len: u64,
    /// Offset after the last valid record.
    pub next_offset: u64,
    /// Append time of the first valid record.
    pub first_ts: Option<i64>,
    /// Append time of the last valid record.
    pub last_ts: Option<i64>,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<FrameError>,
    /// Records lost inside damaged bytes that whole frames follow.
    pub damaged: u64,
}

/// Scans a whole segment, checking every frame's checksum and offset, and
/// stepping over damage that later whole frames follow.
pub fn scan(path: &Path, base: u64) -> Result<Scan, EmbeddedError> {
    let mut file = File::open(path).map_err(|e| EmbeddedError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| EmbeddedError::io("stat", path, e))?
        .len();
    let mut out = Scan {
        good_len: 0,
        next_offset: base,
        first_ts: None,
        last_ts: None,
        stopped: None,
        damaged: 0,
    };
    let mut from = 0;
    loop {
        scan_run(&mut file, from, &mut out).map_err(|e| EmbeddedError::io("read", path, e))?;
        if matches!(out.stopped, None | Some(FrameError::Incomplete)) {
            return Ok(out);
        }
        // Past the damage, and past where this run began, so a frame that
        // did not hold up can never be found again.
        let search = out.good_len.max(from) + 1;
        let found = resync(&file, search, len, out.next_offset)
            .map_err(|e| EmbeddedError::io("read", path, e))?;
        let Some((at, offset)) = found else {
            return Ok(out);
        };
        tracing::error!(
            segment = %path.display(),
            position = out.good_len,
            lost_offsets = %format_args!("{}..{}", out.next_offset, offset),
            reason = %out.stopped.as_ref().map_or_else(String::new, ToString::to_string),
            "Damaged bytes in the middle of a segment; keeping the whole records after them."
        );
        out.damaged += offset - out.next_offset;
        out.next_offset = offset;
        out.stopped = None;
        from = at;
    }
}

/// Reads whole frames from `from` on while each is valid and in sequence,
/// advancing `out`; leaves `out.stopped` set at the first one that is not.
fn scan_run(file: &mut File, from: u64, out: &mut Scan) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::with_capacity(1 << 20, &*file);
    let mut pos = from;
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut reader, &mut header)? {
            0 => return Ok(()),
            n if n < HEADER_LEN => {
                out.stopped = Some(FrameError::Incomplete);
                return Ok(());
            }
            _ => {}
        }
        let len = match record::body_len(&header, MAX_FRAME_BODY) {
            Ok(len) => len,
            Err(e) => {
                out.stopped = Some(e);
                return Ok(());
            }
        };
        body.resize(len, 0);
        if read_full(&mut reader, &mut body)? < len {
            out.stopped = Some(FrameError::Incomplete);
            return Ok(());
        }
        // Only the checksum, offset and time are needed here; a full decode
        // would copy every payload of a segment that may be large.
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if crc32fast::hash(&body) != crc {
            out.stopped = Some(FrameError::Checksum);
            return Ok(());
        }
        let offset = u64_at(&body, 0);
        let ts = u64_at(&body, 8) as i64;
        if offset != out.next_offset {
            out.stopped = Some(FrameError::Malformed("record offset out of sequence"));
            return Ok(());
        }
        out.first_ts.get_or_insert(ts);
        out.last_ts = Some(ts);
        out.next_offset += 1;
        pos += (HEADER_LEN + len) as u64;
        out.good_len = pos;
    }
}

/// The little-endian word at `at` of a body `body_len` has proven long enough.
fn u64_at(body: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&body[at..at + 8]);
    u64::from_le_bytes(word)
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

/// Scans the active segment and cuts whatever follows the last good record:
/// a torn tail, which no publisher was told is safe.
pub fn recover(path: &Path, base: u64) -> Result<Scan, EmbeddedError> {
    let scan = scan(path, base)?;
    let len = std::fs::metadata(path)
        .map_err(|e| EmbeddedError::io("stat", path, e))?
        .len();
    if scan.good_len < len {
        tracing::warn!(
            segment = %path.display(),
            cut_bytes = len - scan.good_len,
            kept_records = scan.next_offset - base - scan.damaged,
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

/// Finds the next whole frame in `from..end` whose checksum matches and
/// whose offset is at least `min_offset`, and returns its position and
/// offset. Frames carry their own offset and a checksum over it, so a match
/// cannot be a record out of place; `None` when no whole frame follows.
pub fn resync(
    file: &File,
    from: u64,
    end: u64,
    min_offset: u64,
) -> std::io::Result<Option<(u64, u64)>> {
    let mut window = Vec::new();
    let mut pos = from;
    while pos + HEADER_LEN as u64 <= end {
        // `end - pos` fits: the window is at most RESYNC_WINDOW bytes.
        let take = usize::try_from(end - pos).map_or(RESYNC_WINDOW, |n| n.min(RESYNC_WINDOW));
        window.resize(take, 0);
        file.read_exact_at(&mut window, pos)?;
        let last = take - HEADER_LEN;
        for i in 0..=last {
            let at = pos + i as u64;
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(&window[i..i + HEADER_LEN]);
            // Most positions fail the length check without another read.
            let Ok(len) = record::body_len(&header, MAX_FRAME_BODY) else {
                continue;
            };
            if at + (HEADER_LEN + len) as u64 > end {
                continue;
            }
            if let Ok((rec, _)) = read_at(file, at)? {
                if rec.offset >= min_offset {
                    return Ok(Some((at, rec.offset)));
                }
            }
        }
        pos += last as u64 + 1;
    }
    Ok(None)
}
