//! One configuration problem, located precisely enough to fix it without
//! reading the loader: file, resource, field, offending value and reason.
//! Loading collects every problem before returning, so `sidebus validate`
//! can list them all at once (linkerd2-proxy style).

use std::fmt;
use std::path::{Path, PathBuf};

/// What `sidebus validate` and the loader report for each problem (errors
/// and warnings share the shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in (a folder for folder-level problems).
    pub file: PathBuf,
    /// `Kind/name`, e.g. `Component/orders`, or `<document 3>` when the
    /// document has no usable name; empty for file-level problems.
    pub resource: String,
    /// Dotted path of the field, e.g. `spec.metadata.brokers`; may be empty.
    pub field: String,
    /// The offending value (secrets are shown as `<secret>`); may be empty.
    pub value: String,
    /// Why it is wrong, as a short sentence.
    pub reason: String,
}

impl ConfigError {
    /// A problem with a whole file or folder (unreadable, missing, syntax).
    pub fn file(file: &Path, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            resource: String::new(),
            field: String::new(),
            value: String::new(),
            reason: reason.into(),
        }
    }

    /// A problem with one field of one resource.
    pub fn field(
        file: &Path,
        resource: &str,
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            resource: resource.to_string(),
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line: `{file}: {resource}: {field}={value:?}: {reason}`; empty
    /// parts are left out together with their separator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if !self.resource.is_empty() {
            write!(f, ": {}", self.resource)?;
        }
        match (self.field.is_empty(), self.value.is_empty()) {
            (false, false) => write!(f, ": {}={:?}", self.field, self.value)?,
            (false, true) => write!(f, ": {}", self.field)?,
            (true, false) => write!(f, ": {:?}", self.value)?,
            (true, true) => {}
        }
        // Reasons are single sentences; flatten any embedded line breaks (CEL
        // and YAML errors carry snippets) so one problem stays one line.
        let reason = self.reason.replace('\n', " ");
        write!(f, ": {reason}")
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_every_part() {
        let e = ConfigError::field(
            Path::new("c/kafka.yaml"),
            "Component/orders",
            "spec.metadata.brokers",
            "",
            "is required",
        );
        assert_eq!(
            e.to_string(),
            "c/kafka.yaml: Component/orders: spec.metadata.brokers: is required"
        );
        let e = ConfigError::field(
            Path::new("a.yaml"),
            "Subscription/s",
            "spec.topic",
            "x\"y",
            "bad",
        );
        assert_eq!(
            e.to_string(),
            "a.yaml: Subscription/s: spec.topic=\"x\\\"y\": bad"
        );
    }

    #[test]
    fn display_omits_empty_parts_and_newlines() {
        let e = ConfigError::file(Path::new("dir"), "line one\nline two");
        assert_eq!(e.to_string(), "dir: line one line two");
    }
}
