//! The engine of `sidebus validate`. CEL expressions are checked by
//! [`cel::check`](crate::config::cel::check); subscription metadata by
//! [`SubscriptionOptions::parse`](crate::config::subscription::SubscriptionOptions::parse),
//! the same parser delivery uses at run time.

use std::io::Write;
use std::path::PathBuf;

use crate::config::error::ConfigError;
use crate::config::resources::{self, ComponentTypes};

/// Exit code for configuration errors (`EX_CONFIG` from sysexits.h), for
/// `sidebus validate` and for a start-up refused by its configuration.
pub const EXIT_CONFIG: u8 = 78;

/// What `sidebus validate` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Problems that stop sidebus from starting.
    pub errors: Vec<ConfigError>,
    /// Problems sidebus starts with (ignored resources, unknown keys…).
    pub warnings: Vec<ConfigError>,
    /// Components, subscriptions and resiliencies that would be used.
    pub counts: (usize, usize, usize),
}

impl Report {
    /// 0 when sidebus would start, [`EXIT_CONFIG`] otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.errors.is_empty() {
            0
        } else {
            EXIT_CONFIG
        }
    }

    /// Human-readable listing: every error, every warning, a summary line.
    pub fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for e in &self.errors {
            writeln!(out, "error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(out, "warning: {w}")?;
        }
        let (c, s, r) = self.counts;
        if self.errors.is_empty() {
            writeln!(
                out,
                "ok: {c} component(s), {s} subscription(s), {r} resiliency resource(s); {} warning(s)",
                self.warnings.len()
            )
        } else {
            writeln!(
                out,
                "invalid: {} error(s), {} warning(s)",
                self.errors.len(),
                self.warnings.len()
            )
        }
    }
}

/// Loads and checks every resource without any I/O beyond reading files,
/// exactly as start-up does ([`resources::load`]); `types` is the component
/// registry. Without paths there is nothing to check, which is reported as
/// an error so a mistyped flag cannot pass silently.
pub fn validate(paths: &[PathBuf], app_id: &str, types: &dyn ComponentTypes) -> Report {
    if paths.is_empty() {
        return Report {
            errors: vec![ConfigError::file(
                std::path::Path::new("<flags>"),
                "no --resources-path given; nothing to validate",
            )],
            ..Report::default()
        };
    }
    match resources::load(paths, app_id, types) {
        Ok(loaded) => Report {
            counts: (
                loaded.resources.components.len(),
                loaded.resources.subscriptions.len(),
                loaded.resources.resiliencies.len(),
            ),
            errors: Vec::new(),
            warnings: loaded.warnings,
        },
        Err(errors) => Report {
            errors,
            ..Report::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metadata::Validation;
    use crate::config::model::ComponentSpec;

    /// A registry without any component type.
    struct NoTypes;

    impl ComponentTypes for NoTypes {
        fn type_names(&self) -> Vec<&'static str> {
            Vec::new()
        }
        fn default_type(&self) -> &'static str {
            "pubsub.in-memory"
        }
        fn validate(&self, _: &ComponentSpec) -> Option<Validation> {
            None
        }
    }

    #[test]
    fn report_exit_codes_and_text() {
        let ok = Report::default();
        assert_eq!(ok.exit_code(), 0);
        let bad = validate(&[], "app", &NoTypes);
        assert_eq!(bad.exit_code(), EXIT_CONFIG);
        let mut out = Vec::new();
        bad.write_to(&mut out).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("error: <flags>: no --resources-path given"),
            "{text}"
        );
        assert!(
            text.ends_with("invalid: 1 error(s), 0 warning(s)\n"),
            "{text}"
        );
    }
}
