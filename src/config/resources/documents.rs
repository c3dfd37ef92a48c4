//! Resource folders → YAML documents, and the small helpers every resource
//! kind uses to read fields out of a `serde_yaml_ng::Value`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::config::error::ConfigError;

/// One `---`-separated YAML document of one file.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The file it came from.
    pub file: PathBuf,
    /// 1-based position within the file.
    pub index: usize,
    /// The parsed document.
    pub value: Value,
}

/// Every document of every `*.yaml` / `*.yml` file directly inside each
/// folder (sorted by file name, not recursive, as daprd reads them). A path
/// that is a file is read as one file. Problems go to `errors`; the other
/// files are still read.
pub(crate) fn read_all(paths: &[PathBuf], errors: &mut Vec<ConfigError>) -> Vec<Document> {
    let mut docs = Vec::new();
    for path in paths {
        for file in yaml_files(path, errors) {
            match std::fs::read_to_string(&file) {
                Ok(text) => split(&file, &text, &mut docs, errors),
                Err(e) => errors.push(ConfigError::file(&file, format!("cannot read file: {e}"))),
            }
        }
    }
    docs
}

fn yaml_files(path: &Path, errors: &mut Vec<ConfigError>) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => {
            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                "resources folder does not exist".to_string()
            } else {
                format!("cannot read resources folder: {e}")
            };
            errors.push(ConfigError::file(path, reason));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x == "yaml" || x == "yml")
        })
        .collect();
    files.sort();
    files
}

fn split(file: &Path, text: &str, docs: &mut Vec<Document>, errors: &mut Vec<ConfigError>) {
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        match Value::deserialize(de) {
            Ok(value) => docs.push(Document {
                file: file.to_path_buf(),
                index,
                value,
            }),
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                    .unwrap_or_default();
                errors.push(ConfigError::field(
                    file,
                    &format!("<document {index}>"),
                    "",
                    "",
                    format!("YAML syntax error{at}: {}", strip_location(&e.to_string())),
                ));
                // The parser cannot resynchronise after a syntax error; the
                // rest of this file is not read.
                return;
            }
        }
    }
}

/// serde_yaml_ng appends " at line L column C" to its messages; we print the
/// location ourselves in a fixed place.
fn strip_location(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |at| &msg[..at])
}

/// A field of a mapping (tags such as `!!str` are looked through).
pub(crate) fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match untag(value) {
        Value::Mapping(map) => map.get(key).map(untag),
        _ => None,
    }
}

/// Follows a dotted path of mapping keys.
pub(crate) fn path<'a>(value: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(value, |v, key| get(v, key))
}

fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

/// A YAML scalar as daprd sees it in a string field: strings as is, numbers
/// and bools in their YAML spelling, null as empty. `None` for lists and maps.
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match untag(value) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Short description of a value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match untag(value) {
        Value::Sequence(_) => "<list>".to_string(),
        Value::Mapping(_) => "<map>".to_string(),
        other => scalar(other).unwrap_or_default(),
    }
}

/// A string list (`scopes`); scalars inside are converted.
pub(crate) fn string_list(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value.map(untag) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| scalar(v).ok_or_else(|| "list items must be strings".to_string()))
            .collect(),
        Some(_) => Err("must be a list of strings".to_string()),
    }
}

/// Whether the mapping is a `Value::Mapping` (after tags).
pub(crate) fn is_mapping(value: &Value) -> bool {
    matches!(untag(value), Value::Mapping(_))
}

/// The entries of a mapping with string-ish keys, in document order.
pub(crate) fn entries(value: &Value) -> Vec<(String, &Value)> {
    match untag(value) {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| (scalar(k).unwrap_or_else(|| describe(k)), untag(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The items of a sequence (empty for anything else).
pub(crate) fn items(value: &Value) -> &[Value] {
    match untag(value) {
        Value::Sequence(items) => items,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_reports_syntax_errors() {
        let mut docs = Vec::new();
        let mut errors = Vec::new();
        let text = "a: 1\n---\nb: 2\n---\nc: [unclosed\n";
        split(Path::new("f.yaml"), text, &mut docs, &mut errors);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 2);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].resource, "<document 3>");
        assert!(
            errors[0].reason.starts_with("YAML syntax error at line "),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn scalars_convert_like_daprd() {
        let v: Value = serde_yaml_ng::from_str("{a: 3, b: true, c: x, d: ~, e: [1]}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get(&v, "a").and_then(scalar).as_deref(), Some("3"));
        assert_eq!(get(&v, "b").and_then(scalar).as_deref(), Some("true"));
        assert_eq!(get(&v, "c").and_then(scalar).as_deref(), Some("x"));
        assert_eq!(get(&v, "d").and_then(scalar).as_deref(), Some(""));
        assert_eq!(get(&v, "e").and_then(scalar), None);
    }
}
