//! Committed consumer-group cursors: one small file per (topic, group,
//! partition) holding the next offset to deliver, replaced atomically
//! (write a temp file, fsync, rename, fsync the folder) so a crash leaves
//! either the old or the new value, never a torn one.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::error::EmbeddedError;
use super::segment::{create_dir_durable, sync_dir};

const PREFIX: &str = "sidebus-cursor v1 ";

/// Reads a cursor; `None` when the group has never committed this partition.
pub fn load(path: &Path) -> Result<Option<u64>, EmbeddedError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmbeddedError::io("read", path, e)),
    };
    text.trim_end()
        .strip_prefix(PREFIX)
        .and_then(|n| n.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| EmbeddedError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a cursor: {text:?}"),
        })
}

/// Durably replaces the cursor at `path` with `next`.
pub fn store(path: &Path, next: u64) -> Result<(), EmbeddedError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    create_dir_durable(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| EmbeddedError::io("create", &tmp, e))?;
    f.write_all(format!("{PREFIX}{next}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| EmbeddedError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| EmbeddedError::io("rename", path, e))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("g").join("0.cursor");
        assert_eq!(super::load(&p).expect("load"), None);
        super::store(&p, 42).expect("store");
        super::store(&p, 43).expect("store");
        assert_eq!(super::load(&p).expect("load"), Some(43));
        std::fs::write(&p, "junk").expect("write");
        assert!(super::load(&p).is_err());
    }
}
