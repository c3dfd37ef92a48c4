//! The outbox's per-component settings: the keys are parsed by
//! `config/outbox.rs` (so `sidebus validate` and start-up read them the same
//! way); this file resolves them against the sidecar's `--data-dir`.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::metadata::Validation;
use crate::config::model::ComponentSpec;
use crate::config::outbox::OutboxSettings;
pub use crate::config::outbox::DEFAULT_MAX_BYTES;

/// How long a direct publish may take before the event goes to the outbox
/// instead. Longer than a healthy broker's confirm (milliseconds), short
/// enough that a hung connection does not stall callers for the component's
/// own (often 30 s+) timeouts.
pub const DEFAULT_DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A configuration the outbox cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("component {component}: {}", problems.describe_errors())]
pub struct OutboxConfigError {
    /// Component name.
    pub component: String,
    /// Every problem with the outbox keys.
    pub problems: Validation,
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

impl OutboxConfig {
    /// The outbox settings for `spec`, `None` when the outbox is off.
    /// `data_dir` is the sidecar's `--data-dir`.
    pub fn from_spec(
        spec: &ComponentSpec,
        data_dir: &Path,
    ) -> Result<Option<Self>, OutboxConfigError> {
        let settings = OutboxSettings::parse(spec)
            .map_err(|problems| OutboxConfigError {
                component: spec.name.clone(),
                problems,
            })?
            .config;
        Ok(settings.enabled.then(|| Self {
            component: spec.name.clone(),
            dir: settings
                .dir
                .unwrap_or_else(|| data_dir.join("outbox").join(&spec.name)),
            max_bytes: settings.max_bytes,
            direct_timeout: DEFAULT_DIRECT_TIMEOUT,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_against_the_data_dir() {
        let d = Path::new("/data");
        let on = OutboxConfig::from_spec(&ComponentSpec::for_test("pubsub.rabbitmq", &[]), d)
            .expect("valid")
            .expect("on by default");
        assert_eq!(on.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(on.dir, PathBuf::from("/data/outbox/ps"));
        assert!(
            OutboxConfig::from_spec(&ComponentSpec::for_test("pubsub.embedded", &[]), d)
                .expect("valid")
                .is_none()
        );
        let c = OutboxConfig::from_spec(
            &ComponentSpec::for_test(
                "pubsub.kafka",
                &[("outboxMaxBytes", "1024"), ("outboxDir", "/x")],
            ),
            d,
        )
        .expect("valid")
        .expect("on");
        assert_eq!((c.max_bytes, c.dir), (1024, PathBuf::from("/x")));
    }

    #[test]
    fn refused_with_the_component_name() {
        let err = OutboxConfig::from_spec(
            &ComponentSpec::for_test("pubsub.in-memory", &[("outbox", "true")]),
            Path::new("/data"),
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.starts_with("component ps: outbox=\"true\": the outbox is not available"),
            "{text}"
        );
    }
}
