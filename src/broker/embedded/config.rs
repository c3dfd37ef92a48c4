//! Typed metadata of `pubsub.embedded`, parsed from `spec.metadata` with
//! daprd-style key names by the shared `config::metadata::MetadataReader`.
//! [`EmbeddedConfig::parse`] reports every problem at once and does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::metadata::{Metadata, MetadataReader, Parsed, Validation};

/// Default partitions of a new topic.
pub const DEFAULT_PARTITIONS: u32 = 4;
/// Default segment size: large enough to keep file counts low, small enough
/// that retention frees space in useful steps and recovery scans little.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default retention: seven days, as Kafka.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default largest event.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Where a consumer group that has never committed starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialOffset {
    /// The oldest retained event (default: nothing published is missed).
    Oldest,
    /// Only events published after the group first subscribes.
    Newest,
    /// The first event appended at or after this time (ms since the epoch).
    Time(i64),
}

/// The component's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// `partitions`: partitions of each new topic (1–1024, default 4).
    pub partitions: u32,
    /// `segmentBytes`: segment roll size in bytes (default 64 MiB, minimum 4096).
    pub segment_bytes: u64,
    /// `retention` (Go duration) or `retentionHours`: age after which whole
    /// segments are deleted; `None` keeps events forever (`-1`).
    pub retention: Option<Duration>,
    /// `retentionBytes`: bytes kept per partition before the oldest segments
    /// are deleted; `None` = unbounded (default, `-1`).
    pub retention_bytes: Option<u64>,
    /// `initialOffset`: `oldest` (default), `newest` or an RFC3339 time.
    pub initial_offset: InitialOffset,
    /// `maxMessageBytes`: largest event accepted (default 1 MiB).
    pub max_message_bytes: usize,
    /// `dataDir`: the data folder; default `<--data-dir>/<component name>`.
    pub data_dir: Option<PathBuf>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            partitions: DEFAULT_PARTITIONS,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention: Some(DEFAULT_RETENTION),
            retention_bytes: None,
            initial_offset: InitialOffset::Oldest,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            data_dir: None,
        }
    }
}

/// Keys this component reads.
const KNOWN: &[&str] = &[
    "partitions",
    "segmentBytes",
    "retention",
    "retentionHours",
    "retentionBytes",
    "initialOffset",
    "maxMessageBytes",
    "dataDir",
];

impl EmbeddedConfig {
    /// Parses the metadata: the config and the ignored keys, or every problem.
    pub fn parse(meta: &Metadata) -> Result<Parsed<Self>, Validation> {
        let mut r = MetadataReader::new(meta);
        let def = Self::default();
        let retention_hours = r
            .int(
                "retentionHours",
                -1..=MAX_RETENTION_HOURS,
                "must be a positive number of hours or -1 (forever)",
            )
            .filter(|h| *h != 0 || fail_zero(&mut r, "retentionHours", HOURS_REASON));
        // `retention` is the finer-grained spelling and wins over `retentionHours`.
        let retention = match r.entry("retention") {
            Some((_, "-1")) => None,
            Some(_) => match r.duration("retention") {
                Some(t) if !t.is_zero() => Some(t),
                Some(_) => {
                    fail_zero(&mut r, "retention", RETENTION_REASON);
                    def.retention
                }
                None => def.retention,
            },
            None => match retention_hours {
                Some(-1) => None,
                Some(h) => Some(Duration::from_secs(h.unsigned_abs() * 3600)),
                None => def.retention,
            },
        };
        let initial_offset = match r.entry("initialOffset") {
            None => def.initial_offset,
            Some((k, v)) => parse_initial_offset(v).unwrap_or_else(|| {
                r.fail(k, v, "must be oldest, newest or an RFC3339 time");
                def.initial_offset
            }),
        };
        let cfg = EmbeddedConfig {
            partitions: r
                .int(
                    "partitions",
                    1..=1024,
                    "must be a whole number from 1 to 1024",
                )
                .unwrap_or(def.partitions),
            segment_bytes: r
                .int(
                    "segmentBytes",
                    4096..=u64::MAX,
                    "must be a whole number of bytes, at least 4096",
                )
                .unwrap_or(def.segment_bytes),
            retention,
            retention_bytes: r
                .int(
                    "retentionBytes",
                    -1..=i64::MAX,
                    "must be a positive number of bytes or -1 (unbounded)",
                )
                .filter(|n| *n != 0 || fail_zero(&mut r, "retentionBytes", BYTES_REASON))
                .and_then(|n| u64::try_from(n).ok()),
            initial_offset,
            max_message_bytes: r
                .int(
                    "maxMessageBytes",
                    1..=64 << 20,
                    "must be a number of bytes from 1 to 67108864",
                )
                .unwrap_or(def.max_message_bytes),
            data_dir: r.get("dataDir").map(PathBuf::from),
        };
        r.finish(cfg, KNOWN, "not a pubsub.embedded setting; ignored")
    }
}

/// Longest `retentionHours` whose seconds still fit a duration.
const MAX_RETENTION_HOURS: i64 = i64::MAX / 3600;
const HOURS_REASON: &str = "must be a positive number of hours or -1 (forever)";
const RETENTION_REASON: &str = "must be a positive Go duration such as 72h or 90m, or -1 (forever)";
const BYTES_REASON: &str = "must be a positive number of bytes or -1 (unbounded)";

/// Records that `key` may not be zero; always `false` (for `filter`).
fn fail_zero(r: &mut MetadataReader<'_>, key: &str, reason: &str) -> bool {
    if let Some((k, v)) = r.entry(key) {
        r.fail(k, v, reason);
    }
    false
}

/// Parses `oldest`, `newest` or an RFC3339 time.
pub fn parse_initial_offset(s: &str) -> Option<InitialOffset> {
    match s.to_ascii_lowercase().as_str() {
        "oldest" | "earliest" => Some(InitialOffset::Oldest),
        "newest" | "latest" => Some(InitialOffset::Newest),
        _ => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| InitialOffset::Time(t.timestamp_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metadata::test_metadata as meta;

    #[test]
    fn defaults_and_overrides() {
        let parsed = EmbeddedConfig::parse(&meta(&[])).expect("valid");
        assert_eq!(parsed.config, EmbeddedConfig::default());
        assert!(parsed.warnings.is_empty());
        let parsed = EmbeddedConfig::parse(&meta(&[
            ("partitions", "8"),
            ("retentionHours", "1"),
            ("retention", "90m"),
            ("retentionBytes", "1000000"),
            ("initialOffset", "2024-01-02T03:04:05Z"),
            ("consumerID", "x"),
            ("brokers", "ignored"),
        ]))
        .expect("valid");
        let (cfg, warnings) = (parsed.config, parsed.warnings);
        assert_eq!(cfg.partitions, 8);
        assert_eq!(cfg.retention, Some(Duration::from_secs(5400)));
        assert_eq!(cfg.retention_bytes, Some(1_000_000));
        assert_eq!(cfg.initial_offset, InitialOffset::Time(1_704_164_645_000));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "brokers");
    }

    #[test]
    fn every_bad_value_is_reported() {
        let v = EmbeddedConfig::parse(&meta(&[
            ("partitions", "0"),
            ("segmentBytes", "10"),
            ("retention", "3 days"),
            ("retentionBytes", "-5"),
            ("initialOffset", "yesterday"),
            ("maxMessageBytes", "x"),
        ]))
        .expect_err("invalid");
        let mut keys: Vec<_> = v.errors.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "initialOffset",
                "maxMessageBytes",
                "partitions",
                "retention",
                "retentionBytes",
                "segmentBytes"
            ]
        );
    }

    #[test]
    fn retention_spellings() {
        let retention = |pairs: &[(&str, &str)]| {
            EmbeddedConfig::parse(&meta(pairs)).map(|p| p.config.retention)
        };
        assert_eq!(retention(&[("retention", "-1")]), Ok(None));
        assert_eq!(retention(&[("retentionHours", "-1")]), Ok(None));
        assert_eq!(
            retention(&[("retentionHours", "2")]),
            Ok(Some(Duration::from_secs(7200)))
        );
        assert_eq!(
            retention(&[("retention", "3600")]),
            Ok(Some(Duration::from_secs(3600))),
            "bare numbers are seconds"
        );
        for bad in [
            [("retention", "0s")],
            [("retentionHours", "0")],
            [("retentionBytes", "0")],
            [("retention", "99999999999h")],
        ] {
            assert!(retention(&bad).is_err(), "{bad:?}");
        }
    }
}
