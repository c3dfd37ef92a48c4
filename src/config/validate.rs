//! The engine of `sidebus validate`, and the value checks that are shared by
//! every origin of a setting (declarative YAML, `GET /dapr/subscribe`,
//! streaming subscriptions): Go booleans, CEL, subscription metadata keys.

use std::io::Write;
use std::path::PathBuf;

use crate::broker::registry::{MetadataProblem, Registry};
use crate::broker::Metadata;
use crate::config::duration;
use crate::config::error::ConfigError;
use crate::config::resources;

/// Exit code for configuration errors (`EX_CONFIG` from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// Largest `maxInFlight` a subscription may ask for.
pub const MAX_IN_FLIGHT: i64 = 100_000;

pub use crate::envelope::parse_bool as parse_go_bool;

/// Compiles a CEL expression (routing `match`, breaker `trip`); the error
/// is the compiler's text on one line. Empty is valid (means "always").
pub fn cel(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Ok(());
    }
    cel::Program::compile(expr).map(|_| ()).map_err(|e| {
        let msgs: Vec<String> = e
            .errors
            .iter()
            .map(|p| format!("{} (line {}, column {})", p.msg, p.pos.0, p.pos.1))
            .collect();
        format!("CEL does not compile: {}", msgs.join("; "))
    })
}

/// Checks the sidebus-specific subscription metadata keys (`rawPayload`,
/// `ordering`, `maxInFlight`, `maxRetries`, `retryInitialInterval`,
/// `retryMaxInterval`). Other keys belong to the component and pass.
pub fn subscription_metadata(metadata: &Metadata) -> Vec<MetadataProblem> {
    let mut problems = Vec::new();
    for (key, value) in metadata {
        let reason = match key.as_str() {
            "rawPayload" => parse_go_bool(value).is_none().then(|| {
                "must be a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)"
                    .to_string()
            }),
            "ordering" => (!matches!(value.as_str(), "key" | "partition" | "none"))
                .then(|| "must be one of key, partition, none".to_string()),
            "maxInFlight" => match value.parse::<i64>() {
                Ok(n) if (1..=MAX_IN_FLIGHT).contains(&n) => None,
                _ => Some(format!("must be an integer from 1 to {MAX_IN_FLIGHT}")),
            },
            "maxRetries" => match value.parse::<i64>() {
                Ok(n) if n >= -1 => None,
                _ => Some("must be an integer >= -1 (-1 retries forever)".to_string()),
            },
            "retryInitialInterval" | "retryMaxInterval" => duration::parse(value)
                .err()
                .map(|e| format!("must be a duration such as 500ms or 5s: {e}")),
            _ => None,
        };
        if let Some(reason) = reason {
            problems.push(MetadataProblem::new(key, value, reason));
        }
    }
    problems
}

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
    pub fn exit_code(&self) -> i32 {
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

/// Loads and checks every resource without any I/O beyond reading files.
/// Without paths there is nothing to check, which is reported as an error
/// so a mistyped flag cannot pass silently.
pub fn validate(paths: &[PathBuf], app_id: &str, registry: &Registry) -> Report {
    if paths.is_empty() {
        return Report {
            errors: vec![ConfigError::file(
                std::path::Path::new("<flags>"),
                "no --resources-path given; nothing to validate",
            )],
            ..Report::default()
        };
    }
    match resources::load(paths, app_id, registry) {
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

    #[test]
    fn go_bools() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "tRUE", "", "2"] {
            assert_eq!(parse_go_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn cel_compiles_or_explains() {
        assert_eq!(cel(r#"event.type == "widget""#), Ok(()));
        assert_eq!(cel(""), Ok(()));
        let err = cel("event.type ==").unwrap_err();
        assert!(err.starts_with("CEL does not compile: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn subscription_metadata_keys() {
        let md: Metadata = [
            ("rawPayload", "yes"),
            ("ordering", "key"),
            ("maxInFlight", "0"),
            ("maxRetries", "-2"),
            ("retryInitialInterval", "5"),
            ("retryMaxInterval", "1m"),
            ("queueName", "anything"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let keys: Vec<String> = subscription_metadata(&md)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "maxInFlight",
                "maxRetries",
                "rawPayload",
                "retryInitialInterval"
            ]
        );
    }

    #[test]
    fn report_exit_codes_and_text() {
        let ok = Report::default();
        assert_eq!(ok.exit_code(), 0);
        let bad = validate(&[], "app", &Registry::builtin());
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
