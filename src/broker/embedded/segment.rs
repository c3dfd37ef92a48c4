//! Segment files: `<base offset, 20 digits>.seg` in a partition folder, each
//! an append-only run of record frames starting at its base offset; and the
//! folder operations that make new files and folders durable. Scanning and
//! repairing a segment after a crash is in [`recovery`](super::recovery).

use std::fs::File;
use std::io::ErrorKind;
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
    #[cfg(test)]
    synced::record(dir);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EmbeddedError::io("sync folder", dir, e))
}

/// Creates `dir` and any missing parents, syncing the folder that holds each
/// new one. A new folder is only an entry in its parent until the parent is
/// synced: without that, a power loss can take a new topic (or group) away
/// with every acknowledged record written into it.
pub fn create_dir_durable(dir: &Path) -> Result<(), EmbeddedError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(p);
        cur = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| EmbeddedError::io("create", dir, e))?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        sync_dir(parent)?;
    }
    Ok(())
}

/// Which folders [`sync_dir`] synced, so tests can prove a new folder's
/// parent was synced (a power loss cannot be simulated in a unit test).
#[cfg(test)]
pub mod synced {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(super) fn record(dir: &Path) {
        SYNCED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir.to_path_buf());
    }

    /// Every synced folder below `root`.
    pub fn below(root: &Path) -> Vec<PathBuf> {
        SYNCED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.starts_with(root))
            .cloned()
            .collect()
    }
}
