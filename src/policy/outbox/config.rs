//! The outbox's per-component settings, read from the component's metadata
//! (`outbox`, `outboxMaxBytes`, `outboxDir`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::broker::registry::MetadataProblem;
use crate::config::model::ComponentSpec;

/// Default bound on buffered bytes: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// How long a direct publish may take before the event goes to the outbox
/// instead. Longer than a healthy broker's confirm (milliseconds), short
/// enough that a hung connection does not stall callers for the component's
/// own (often 30 s+) timeouts.
pub const DEFAULT_DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Component types where the outbox is on unless `outbox: "false"`.
const ON_BY_DEFAULT: &[&str] = &["pubsub.kafka", "pubsub.redpanda", "pubsub.rabbitmq"];
/// Component types that are local already: an outbox there would only
/// write every event twice, so asking for one is a configuration error.
const REFUSED: &[&str] = &["pubsub.embedded", "pubsub.in-memory"];

/// A configuration the outbox cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxConfigError {
    /// A metadata value does not parse.
    #[error("component {component}: metadata {key}={value:?} is invalid: {reason}")]
    Invalid {
        /// Component name.
        component: String,
        /// Metadata key.
        key: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// `outbox: true` on a component type that is local already.
    #[error("component {component}: the outbox is not available for {type_name} (it stores events locally already)")]
    Refused {
        /// Component name.
        component: String,
        /// Its type.
        type_name: String,
    },
}

/// The outbox settings of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Component name (used in logs and the folder name).
    pub component: String,
    /// Folder of the outbox log.
    pub dir: PathBuf,
    /// Most bytes buffered at once; a publish past it is refused (503).
    pub max_bytes: u64,
    /// Bound on a direct publish before the event is buffered instead.
    pub direct_timeout: Duration,
}

fn meta<'a>(spec: &'a ComponentSpec, key: &str) -> Option<&'a str> {
    spec.metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
}

impl OutboxConfig {
    /// The outbox settings for `spec`, `None` when the outbox is off.
    /// `data_dir` is the sidecar's `--data-dir`.
    pub fn from_spec(
        spec: &ComponentSpec,
        data_dir: &Path,
    ) -> Result<Option<Self>, OutboxConfigError> {
        let invalid = |key: &str, value: &str, reason: &str| OutboxConfigError::Invalid {
            component: spec.name.clone(),
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let refused = REFUSED.contains(&spec.type_name.as_str());
        let enabled = match meta(spec, "outbox") {
            None | Some("") => ON_BY_DEFAULT.contains(&spec.type_name.as_str()),
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(invalid("outbox", v, "expected true or false")),
        };
        if enabled && refused {
            return Err(OutboxConfigError::Refused {
                component: spec.name.clone(),
                type_name: spec.type_name.clone(),
            });
        }
        if !enabled {
            return Ok(None);
        }
        let max_bytes = match meta(spec, "outboxMaxBytes") {
            None | Some("") => DEFAULT_MAX_BYTES,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(invalid(
                        "outboxMaxBytes",
                        v,
                        "expected a positive byte count",
                    ))
                }
            },
        };
        let dir = match meta(spec, "outboxDir") {
            None | Some("") => data_dir.join("outbox").join(&spec.name),
            Some(v) => PathBuf::from(v),
        };
        Ok(Some(Self {
            component: spec.name.clone(),
            dir,
            max_bytes,
            direct_timeout: DEFAULT_DIRECT_TIMEOUT,
        }))
    }
}

/// The outbox's metadata problems for `spec`, in the shape config loading
/// reports (so `sidebus validate` and start-up refuse them with file/key).
pub fn metadata_problems(spec: &ComponentSpec) -> Vec<MetadataProblem> {
    match OutboxConfig::from_spec(spec, Path::new("")) {
        Ok(_) => Vec::new(),
        Err(OutboxConfigError::Invalid {
            key, value, reason, ..
        }) => vec![MetadataProblem::new(&key, &value, reason)],
        Err(err @ OutboxConfigError::Refused { .. }) => {
            let value = meta(spec, "outbox").unwrap_or_default();
            vec![MetadataProblem::new("outbox", value, err.to_string())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(type_name: &str, md: &[(&str, &str)]) -> ComponentSpec {
        ComponentSpec {
            name: "ps".into(),
            type_name: type_name.into(),
            version: "v1".into(),
            metadata: md
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scopes: vec![],
            source: PathBuf::new(),
        }
    }

    #[test]
    fn defaults_per_type() {
        let d = Path::new("/data");
        let on = OutboxConfig::from_spec(&spec("pubsub.rabbitmq", &[]), d)
            .expect("valid")
            .expect("on by default");
        assert_eq!(on.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(on.dir, PathBuf::from("/data/outbox/ps"));
        assert!(OutboxConfig::from_spec(&spec("pubsub.kafka", &[]), d)
            .expect("valid")
            .is_some());
        assert!(
            OutboxConfig::from_spec(&spec("pubsub.kafka", &[("outbox", "false")]), d)
                .expect("valid")
                .is_none()
        );
        assert!(OutboxConfig::from_spec(&spec("pubsub.embedded", &[]), d)
            .expect("valid")
            .is_none());
    }

    #[test]
    fn refused_and_invalid() {
        let d = Path::new("/data");
        assert!(matches!(
            OutboxConfig::from_spec(&spec("pubsub.in-memory", &[("outbox", "true")]), d),
            Err(OutboxConfigError::Refused { .. })
        ));
        assert!(OutboxConfig::from_spec(&spec("pubsub.kafka", &[("outbox", "yes")]), d).is_err());
        let problems = metadata_problems(&spec("pubsub.embedded", &[("outbox", "true")]));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "outbox");
        assert!(metadata_problems(&spec("pubsub.rabbitmq", &[])).is_empty());
        assert!(
            OutboxConfig::from_spec(&spec("pubsub.kafka", &[("outboxMaxBytes", "-1")]), d).is_err()
        );
        let c = OutboxConfig::from_spec(
            &spec(
                "pubsub.kafka",
                &[("outboxMaxBytes", "1024"), ("outboxDir", "/x")],
            ),
            d,
        )
        .expect("valid")
        .expect("on");
        assert_eq!((c.max_bytes, c.dir), (1024, PathBuf::from("/x")));
    }
}
