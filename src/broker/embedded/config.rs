//! Typed metadata of `pubsub.embedded`, parsed from `spec.metadata` with
//! daprd-style key names. [`EmbeddedConfig::parse`] reports every problem at
//! once and does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use crate::broker::registry::{MetadataProblem, Validation};
use crate::broker::{common_metadata_key, Metadata};

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

impl EmbeddedConfig {
    /// Parses the metadata; `Err` lists every bad value, warnings list ignored keys.
    pub fn parse(meta: &Metadata) -> (Result<Self, ()>, Validation) {
        let mut cfg = Self::default();
        let mut v = Validation::default();
        for (key, value) in meta {
            let val = value.trim();
            let bad = |reason: &str| MetadataProblem::new(key, value, reason);
            match key.as_str() {
                "partitions" => match val.parse::<u32>() {
                    Ok(n) if (1..=1024).contains(&n) => cfg.partitions = n,
                    _ => v.errors.push(bad("must be a whole number from 1 to 1024")),
                },
                "segmentBytes" => match val.parse::<u64>() {
                    Ok(n) if n >= 4096 => cfg.segment_bytes = n,
                    _ => v
                        .errors
                        .push(bad("must be a whole number of bytes, at least 4096")),
                },
                "retentionHours" => match val.parse::<i64>() {
                    Ok(-1) => cfg.retention = None,
                    Ok(h) if h > 0 => cfg.retention = Some(Duration::from_secs(h as u64 * 3600)),
                    _ => v
                        .errors
                        .push(bad("must be a positive number of hours or -1 (forever)")),
                },
                "initialOffset" => match parse_initial_offset(val) {
                    Some(o) => cfg.initial_offset = o,
                    None => v
                        .errors
                        .push(bad("must be oldest, newest or an RFC3339 time")),
                },
                "retentionBytes" => match val.parse::<i64>() {
                    Ok(-1) => cfg.retention_bytes = None,
                    Ok(n) if n > 0 => cfg.retention_bytes = Some(n as u64),
                    _ => v
                        .errors
                        .push(bad("must be a positive number of bytes or -1 (unbounded)")),
                },
                "maxMessageBytes" => match val.parse::<usize>() {
                    Ok(n) if n > 0 && n <= 64 << 20 => cfg.max_message_bytes = n,
                    _ => v
                        .errors
                        .push(bad("must be a number of bytes from 1 to 67108864")),
                },
                "dataDir" if !val.is_empty() => cfg.data_dir = Some(PathBuf::from(val)),
                "dataDir" => v.errors.push(bad("must not be empty")),
                "retention" => {}
                k if common_metadata_key(k) => {}
                _ => v
                    .warnings
                    .push(bad("not a pubsub.embedded setting; ignored")),
            }
        }
        // `retention` is the finer-grained spelling and wins over `retentionHours`.
        if let Some(value) = meta.get("retention") {
            match value.trim() {
                "-1" => cfg.retention = None,
                d => match parse_go_duration(d) {
                    Some(d) if !d.is_zero() => cfg.retention = Some(d),
                    _ => v.errors.push(MetadataProblem::new(
                        "retention",
                        value,
                        "must be a positive Go duration such as 72h or 90m, or -1 (forever)",
                    )),
                },
            }
        }
        let res = if v.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(())
        };
        (res, v)
    }
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

/// Parses a Go `time.Duration` string (`1h30m`, `250ms`, `2.5s`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * secs;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let (cfg, v) = EmbeddedConfig::parse(&meta(&[]));
        assert_eq!(cfg, Ok(EmbeddedConfig::default()));
        assert!(v.errors.is_empty() && v.warnings.is_empty());
        let (cfg, v) = EmbeddedConfig::parse(&meta(&[
            ("partitions", "8"),
            ("retentionHours", "1"),
            ("retention", "90m"),
            ("retentionBytes", "1000000"),
            ("initialOffset", "2024-01-02T03:04:05Z"),
            ("consumerID", "x"),
            ("brokers", "ignored"),
        ]));
        let cfg = cfg.expect("valid");
        assert_eq!(cfg.partitions, 8);
        assert_eq!(cfg.retention, Some(Duration::from_secs(5400)));
        assert_eq!(cfg.retention_bytes, Some(1_000_000));
        assert_eq!(cfg.initial_offset, InitialOffset::Time(1_704_164_645_000));
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert_eq!(v.warnings[0].key, "brokers");
    }

    #[test]
    fn every_bad_value_is_reported() {
        let (cfg, v) = EmbeddedConfig::parse(&meta(&[
            ("partitions", "0"),
            ("segmentBytes", "10"),
            ("retention", "3 days"),
            ("retentionBytes", "-5"),
            ("initialOffset", "yesterday"),
            ("maxMessageBytes", "x"),
        ]));
        assert!(cfg.is_err());
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
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
