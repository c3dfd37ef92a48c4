//! Topic and group names as folder names. A name is percent-encoded into
//! one safe path component (no `/`, never `.` or `..`). File systems allow
//! 255 bytes per component, and encoding can triple a name's length, so an
//! encoded name longer than [`MAX_DIRECT`] becomes a prefix of it plus a
//! hash of the whole name, joined by `~` (which encoding never produces),
//! and the topic folder keeps the full name in a [`NAME_FILE`].

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::error::EmbeddedError;
use super::segment::{create_dir_durable, sync_dir};

/// Longest encoded name used as a folder name as it is.
const MAX_DIRECT: usize = 200;
/// How much of a long encoded name is kept before its hash.
const LONG_PREFIX: usize = 120;
/// The file in a long-named topic folder that holds the topic's name.
pub const NAME_FILE: &str = "topic-name";

/// The folder name for a topic or group name.
pub fn encode(name: &str) -> String {
    let enc = percent_encode(name);
    if enc.len() <= MAX_DIRECT {
        return enc;
    }
    // Cut before a `%XX` escape rather than through it.
    let mut cut = LONG_PREFIX;
    if let Some(p) = enc[cut - 2..cut].find('%') {
        cut = cut - 2 + p;
    }
    format!("{}~{:016x}", &enc[..cut], fnv1a64(name.as_bytes()))
}

/// The name a folder stands for, when it is a short (fully encoded) one;
/// `None` for long names and for folder names [`encode`] cannot produce.
pub fn decode(enc: &str) -> Option<String> {
    if enc == "%" {
        return Some(String::new());
    }
    let bytes = enc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = enc.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'~' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Records `name` in its topic folder `dir` when its folder name is a long
/// one (creating the folder), so the log can list it again after a restart.
/// Refuses a folder that already belongs to another name.
pub fn write_long_name(dir: &Path, name: &str) -> Result<(), EmbeddedError> {
    if !is_long(dir) {
        return Ok(());
    }
    create_dir_durable(dir)?;
    let path = dir.join(NAME_FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) if stored == name => return Ok(()),
        Ok(stored) => return Err(clash(dir, &stored, name)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EmbeddedError::io("read", &path, e)),
    }
    let tmp = dir.join(format!("{NAME_FILE}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| EmbeddedError::io("create", &tmp, e))?;
    f.write_all(name.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| EmbeddedError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| EmbeddedError::io("rename", &path, e))?;
    sync_dir(dir)
}

/// The topic a folder under `topics/` holds, or `None` for a folder that is
/// not a topic's (left alone).
pub fn read_dir_name(dir: &Path) -> Result<Option<String>, EmbeddedError> {
    let Some(folder) = dir.file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    if !is_long(dir) {
        return Ok(decode(folder));
    }
    let path = dir.join(NAME_FILE);
    let name = match std::fs::read_to_string(&path) {
        Ok(name) => name,
        // The name is written before any partition exists: a folder
        // without it holds no records.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmbeddedError::io("read", &path, e)),
    };
    if encode(&name) != folder {
        return Err(EmbeddedError::Corrupt {
            path,
            reason: "the topic name does not match its folder".into(),
        });
    }
    Ok(Some(name))
}

fn is_long(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains('~'))
}

fn clash(dir: &Path, stored: &str, name: &str) -> EmbeddedError {
    EmbeddedError::Corrupt {
        path: dir.to_path_buf(),
        reason: format!(
            "topic names {:.40}… and {:.40}… share a folder (hash collision)",
            stored, name
        ),
    }
}

fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let safe = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if safe {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// 64-bit FNV-1a: small, and fixed by its definition, so folder names stay
/// the same across builds (std's hashers promise no stable output).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_round_trip() {
        for n in ["orders", "a/b/c", ".hidden", "ünï", "", "x%y", "t~1"] {
            let enc = encode(n);
            assert!(!enc.contains('/') && enc != "." && enc != "..", "{enc}");
            assert_eq!(decode(&enc).as_deref(), Some(n));
        }
    }

    #[test]
    fn long_names_fit_one_path_component_and_stay_apart() {
        let names = [
            "a".repeat(300),
            "a".repeat(299) + "b",
            "ü".repeat(200),
            "/".repeat(1000),
        ];
        let encoded: Vec<String> = names.iter().map(|n| encode(n)).collect();
        for (n, e) in names.iter().zip(&encoded) {
            assert!(
                e.len() <= 255,
                "{} bytes for a {}-byte name",
                e.len(),
                n.len()
            );
            assert!(e.contains('~') && decode(e).is_none(), "{e}");
            assert!(!e.contains('/'), "{e}");
        }
        assert_ne!(encoded[0], encoded[1], "same prefix, different names");
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a test vector");
    }

    /// A 300-character topic was refused with "File name too long"; now it
    /// is stored, read back, and found again by name after a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_topic_with_a_long_name_survives_a_restart() {
        use crate::broker::embedded::log::{Log, LogOptions};
        use crate::broker::embedded::reader::PartitionReader;
        use crate::broker::embedded::record::NewRecord;

        let dir = tempfile::tempdir().expect("tempdir");
        let opts = || LogOptions {
            partitions: 1,
            segment_bytes: 1 << 20,
            max_record_bytes: 1 << 20,
        };
        let name = format!("orders/{}", "x".repeat(300));
        let log = Log::open(dir.path(), opts()).expect("open");
        let topic = log.topic(&name).expect("a long topic name is accepted");
        let rec = NewRecord {
            key: None,
            content_type: "text/plain".into(),
            metadata: Default::default(),
            data: bytes::Bytes::from_static(b"e1"),
        };
        assert_eq!(log.append(&topic, 0, rec.clone()).await.expect("append"), 0);
        log.close();
        drop((topic, log));

        let log = Log::open(dir.path(), opts()).expect("reopen");
        let topic = log.topic(&name).expect("topic");
        let mut reader = PartitionReader::new(topic.partitions[0].clone(), 0);
        let read = reader.read_batch(10, 1 << 20).expect("read");
        assert_eq!(read.len(), 1, "the record survived the restart");
        assert_eq!(read[0].record, rec);
        let listed = std::fs::read_dir(dir.path().join("topics"))
            .expect("list")
            .count();
        assert_eq!(listed, 1, "reopened into the same folder, not a new one");
    }
}
