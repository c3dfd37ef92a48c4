//! [`Secret`]: a string that never shows itself. Tokens, SASL passwords and
//! the like are held in it, so a `{:?}` of a settings or config struct, a
//! log line or an error message cannot leak them; the value is read only
//! where it is used, through [`Secret::expose`].

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use super::metadata::SECRET_MASK;

/// A secret string whose `Debug` and `Display` print `<secret>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_MASK)
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("s3cret");
        assert_eq!(
            format!("{s} {s:?} {:?}", Some(&s)),
            "<secret> <secret> Some(<secret>)"
        );
        assert_eq!(s.expose(), "s3cret");
    }

    /// Settings and component specs are logged and printed with `{:?}`;
    /// neither may show a token or a resolved secret.
    #[test]
    fn settings_and_component_specs_do_not_print_secrets() {
        let settings = crate::config::Settings {
            api_token: Some("api-t0ken".into()),
            app_api_token: Some("app-t0ken".into()),
            ..crate::config::Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("t0ken"), "{shown}");
        let spec = crate::config::ComponentSpec {
            name: "pubsub".into(),
            type_name: "pubsub.kafka".into(),
            version: "v1".into(),
            metadata: [
                ("saslPassword", "s3cret"),
                ("connectionString", "amqp://u:s3cret@h/"),
                ("brokers", "k:9092"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            scopes: Vec::new(),
            source: "c.yaml".into(),
        };
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("k:9092"),
            "{shown}"
        );
    }
}
