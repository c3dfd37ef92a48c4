//! Component and subscription metadata (`spec.metadata`): the shared
//! vocabulary (the [`Metadata`] map, [`MetadataProblem`], [`Validation`]) and
//! the one reader every component's config is parsed with
//! ([`MetadataReader`], in `metadata_reader.rs`).
//!
//! Rules every reader follows, as daprd does: keys match case-insensitively,
//! booleans are Go's `strconv.ParseBool`, durations follow
//! [`duration::parse_metadata`](super::duration::parse_metadata), and values
//! of keys that look secret never appear in a problem.

use std::collections::BTreeMap;
use std::fmt;

pub use super::metadata_reader::MetadataReader;

/// String metadata: component and subscription `spec.metadata`, request
/// metadata on publish, broker headers on receive.
pub type Metadata = BTreeMap<String, String>;

/// Shown instead of a secret value anywhere one would be printed.
pub const SECRET_MASK: &str = "<secret>";

/// One problem with one metadata key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataProblem {
    /// The metadata key (`spec.metadata[].name`).
    pub key: String,
    /// The offending value (secrets are never shown: [`SECRET_MASK`]).
    pub value: String,
    /// Why it is wrong, as a short sentence.
    pub reason: String,
}

impl MetadataProblem {
    /// A problem with `value` shown as given; use [`MetadataProblem::masked`]
    /// when the value may be a secret.
    pub fn new(key: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// A problem whose value is masked when the key looks secret and whose
    /// URL passwords are removed (see [`shown_value`]).
    pub fn masked(key: &str, value: &str, reason: impl Into<String>) -> Self {
        Self::new(key, &shown_value(key, value), reason)
    }
}

impl fmt::Display for MetadataProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.key, self.value, self.reason)
    }
}

/// Every problem found in one metadata map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Problems that stop sidebus from starting.
    pub errors: Vec<MetadataProblem>,
    /// Keys that are ignored (unknown to us, e.g. daprd-only settings).
    pub warnings: Vec<MetadataProblem>,
}

impl Validation {
    /// What a parse result says, the config thrown away: the factories'
    /// `validate` is exactly their `parse` through this.
    pub fn of<T>(parsed: &Result<Parsed<T>, Validation>) -> Validation {
        match parsed {
            Ok(p) => Validation {
                errors: Vec::new(),
                warnings: p.warnings.clone(),
            },
            Err(v) => v.clone(),
        }
    }

    /// The errors on one line, for a build error or a log.
    pub fn describe_errors(&self) -> String {
        self.errors
            .iter()
            .map(MetadataProblem::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A typed config parsed from metadata, with the keys that were ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The typed settings.
    pub config: T,
    /// Ignored keys (unknown or fixed behaviour).
    pub warnings: Vec<MetadataProblem>,
}

/// The key as spelled in `meta` and its trimmed value, for the first key
/// equal to `key` ignoring ASCII case (as daprd matches metadata keys);
/// `None` when absent or blank.
pub fn lookup<'a>(meta: &'a Metadata, key: &str) -> Option<(&'a str, &'a str)> {
    meta.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(k, v)| (k.as_str(), v.trim()))
        .filter(|(_, v)| !v.is_empty())
}

/// The trimmed, non-blank value of `key` in `meta` (see [`lookup`]).
pub fn get<'a>(meta: &'a Metadata, key: &str) -> Option<&'a str> {
    lookup(meta, key).map(|(_, v)| v)
}

/// Go's `strconv.ParseBool`, which daprd uses for every boolean setting.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Metadata keys the runtime handles for every component (scopes, consumer
/// id, partition key attribute, outbox); components must not warn about them.
pub const COMMON_KEYS: &[&str] = &[
    "consumerID",
    "publishingScopes",
    "subscriptionScopes",
    "allowedTopics",
    "protectedTopics",
    "partitionKeyAttribute",
    "outbox",
    "outboxMaxBytes",
    "outboxDir",
];

/// Whether `key` is one of [`COMMON_KEYS`] (case-insensitively).
pub fn common_key(key: &str) -> bool {
    COMMON_KEYS.iter().any(|c| c.eq_ignore_ascii_case(key))
}

/// Whether a key's value must never be shown: passwords, tokens, secrets,
/// SASL settings and private keys. Connection strings are shown with their
/// credentials removed instead (see [`shown_value`]).
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    const PARTS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "sasl",
        "privatekey",
        "clientkey",
        "accesskey",
        "apikey",
    ];
    PARTS.iter().any(|p| k.contains(p))
}

/// `value` as it may be shown for `key`: [`SECRET_MASK`] when the key looks
/// secret or the value embeds a `password=`/`key=`-style credential,
/// otherwise the value with the password of any `scheme://user:pass@` URL in
/// it (comma-separated lists included) replaced by the mask.
pub fn shown_value(key: &str, value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    let embedded = ["password=", "key=", "secret=", "token="]
        .iter()
        .any(|p| lower.contains(p));
    if looks_secret(key) || embedded {
        return SECRET_MASK.to_string();
    }
    if !value.contains("://") {
        // `user:password@host` without `//` (a malformed URI) still carries
        // a password: everything before the `@` goes.
        return match value.rfind('@') {
            Some(at) if value[..at].contains(':') => format!("{SECRET_MASK}{}", &value[at..]),
            _ => value.to_string(),
        };
    }
    value
        .split(',')
        .map(redact_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// `scheme://user:pass@host…` → `scheme://user:<secret>@host…`.
fn redact_url(part: &str) -> String {
    let Some((scheme, rest)) = part.split_once("://") else {
        return part.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return part.to_string();
    };
    let Some((user, _password)) = rest[..at].split_once(':') else {
        return part.to_string();
    };
    format!("{scheme}://{user}:{SECRET_MASK}{}", &rest[at..])
}

/// `pairs` as a [`Metadata`] map, for unit tests.
#[cfg(test)]
pub(crate) fn test_metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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
        for bad in ["yes", "tRUE", "", "2", "on"] {
            assert_eq!(parse_go_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        for k in [
            "password",
            "saslPassword",
            "saslUsername",
            "token",
            "clientKey",
            "oidcClientSecret",
        ] {
            assert_eq!(shown_value(k, "x"), SECRET_MASK, "{k}");
        }
        assert_eq!(
            shown_value("connectionString", "Endpoint=sb://h/;SharedAccessKey=abc"),
            SECRET_MASK
        );
        assert_eq!(shown_value("routingKey", "k"), "k");
        assert_eq!(
            shown_value("hostname", "amqp://u:pw@h:1/%2f, amqp://h2"),
            "amqp://u:<secret>@h:1/%2f, amqp://h2"
        );
        assert_eq!(shown_value("url", "http://h/a@b"), "http://h/a@b");
        let p = MetadataProblem::masked("saslPassword", "hunter2", "bad");
        assert_eq!(p.to_string(), "saslPassword=\"<secret>\": bad");
    }

    #[test]
    fn common_keys_match_any_case() {
        assert!(common_key("consumerId"));
        assert!(common_key("OUTBOX"));
        assert!(!common_key("brokers"));
    }
}
