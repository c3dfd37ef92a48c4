//! The outbox keys every component may carry (`outbox`, `outboxMaxBytes`,
//! `outboxDir`), parsed by the same [`MetadataReader`] as the components'
//! own keys. The outbox itself (`policy/outbox/`) reads [`OutboxSettings`].

use std::path::PathBuf;

use super::metadata::{MetadataProblem, MetadataReader, Parsed, Validation};
use super::model::ComponentSpec;

/// Default bound on buffered bytes: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Component types where the outbox is on unless `outbox: "false"`.
const ON_BY_DEFAULT: &[&str] = &["pubsub.kafka", "pubsub.redpanda", "pubsub.rabbitmq"];
/// Component types that are local already: an outbox there would only
/// write every event twice, so asking for one is a configuration error.
const REFUSED: &[&str] = &["pubsub.embedded", "pubsub.in-memory"];

/// The outbox keys of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxSettings {
    /// `outbox`: whether publishes go through an outbox (default: on for
    /// remote brokers, off for local ones).
    pub enabled: bool,
    /// `outboxDir`: the log's folder; `None` = `<--data-dir>/outbox/<name>`.
    pub dir: Option<PathBuf>,
    /// `outboxMaxBytes`: most bytes buffered (default 256 MiB).
    pub max_bytes: u64,
}

impl OutboxSettings {
    /// Parses the outbox keys of `spec`; `Err` lists every problem. Other
    /// keys are the component's, so none is reported as unknown.
    pub fn parse(spec: &ComponentSpec) -> Result<Parsed<Self>, Validation> {
        let mut r = MetadataReader::new(&spec.metadata);
        let type_name = spec.type_name.as_str();
        let enabled = r.bool("outbox", ON_BY_DEFAULT.contains(&type_name));
        if enabled && REFUSED.contains(&type_name) {
            let value = r.get("outbox").unwrap_or_default();
            r.fail(
                "outbox",
                value,
                format!("the outbox is not available for {type_name} (it stores events locally already)"),
            );
        }
        let max_bytes = r
            .int(
                "outboxMaxBytes",
                1..=u64::MAX,
                "must be a positive byte count",
            )
            .unwrap_or(DEFAULT_MAX_BYTES);
        let dir = r.get("outboxDir").map(PathBuf::from);
        r.finish_open(Self {
            enabled,
            dir,
            max_bytes,
        })
    }
}

/// The outbox's metadata errors for `spec`, in the shape resource loading
/// reports (so `sidebus validate` and start-up refuse them with file/key).
pub fn metadata_problems(spec: &ComponentSpec) -> Vec<MetadataProblem> {
    Validation::of(&OutboxSettings::parse(spec)).errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(type_name: &str, md: &[(&str, &str)]) -> bool {
        let parsed = OutboxSettings::parse(&ComponentSpec::for_test(type_name, md));
        parsed.map(|p| p.config.enabled).expect("valid")
    }

    #[test]
    fn defaults_per_type() {
        assert!(enabled("pubsub.rabbitmq", &[]));
        assert!(enabled("pubsub.kafka", &[]));
        assert!(!enabled("pubsub.kafka", &[("Outbox", "false")]));
        assert!(!enabled("pubsub.embedded", &[]));
        assert!(!enabled("pubsub.in-memory", &[("outbox", "0")]));
    }

    #[test]
    fn refused_and_invalid() {
        let problems = metadata_problems(&ComponentSpec::for_test(
            "pubsub.embedded",
            &[("outbox", "true")],
        ));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "outbox");
        assert!(problems[0].reason.contains("not available"), "{problems:?}");
        assert!(metadata_problems(&ComponentSpec::for_test("pubsub.rabbitmq", &[])).is_empty());
        let bad = metadata_problems(&ComponentSpec::for_test(
            "pubsub.kafka",
            &[("outbox", "yes"), ("outboxMaxBytes", "-1")],
        ));
        let keys: Vec<&str> = bad.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["outbox", "outboxMaxBytes"]);
        let c = OutboxSettings::parse(&ComponentSpec::for_test(
            "pubsub.kafka",
            &[("outboxMaxBytes", "1024"), ("outboxDir", "/x")],
        ))
        .expect("valid")
        .config;
        assert_eq!((c.max_bytes, c.dir), (1024, Some(PathBuf::from("/x"))));
    }
}
