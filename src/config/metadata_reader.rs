//! [`MetadataReader`]: typed getters over a [`Metadata`] map that record
//! every problem (key, shown value, reason) instead of stopping at the
//! first, so `sidebus validate` lists everything to fix in one run.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use super::duration;
use super::metadata::{
    common_key, lookup, parse_go_bool, Metadata, MetadataProblem, Parsed, Validation,
};

/// Reads one metadata map, remembering every problem.
#[derive(Debug)]
pub struct MetadataReader<'a> {
    meta: &'a Metadata,
    validation: Validation,
}

impl<'a> MetadataReader<'a> {
    /// A reader over `meta` with no problems yet.
    pub fn new(meta: &'a Metadata) -> Self {
        Self {
            meta,
            validation: Validation::default(),
        }
    }

    /// The key as the user spelled it and its trimmed, non-empty value
    /// (names match case-insensitively, as daprd's).
    pub fn entry(&self, key: &str) -> Option<(&'a str, &'a str)> {
        lookup(self.meta, key)
    }

    /// The trimmed, non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Records an error; secret values are masked.
    pub fn fail(&mut self, key: &str, value: &str, reason: impl Into<String>) {
        let p = MetadataProblem::masked(key, value, reason);
        self.validation.errors.push(p);
    }

    /// Records a warning (an ignored key); secret values are masked.
    pub fn warn(&mut self, key: &str, value: &str, reason: impl Into<String>) {
        let p = MetadataProblem::masked(key, value, reason);
        self.validation.warnings.push(p);
    }

    /// Whether an error was recorded so far.
    pub fn has_errors(&self) -> bool {
        !self.validation.errors.is_empty()
    }

    /// A Go boolean (`strconv.ParseBool`), `default` when absent or invalid.
    pub fn bool(&mut self, key: &str, default: bool) -> bool {
        let Some((k, v)) = self.entry(key) else {
            return default;
        };
        parse_go_bool(v).unwrap_or_else(|| {
            self.fail(k, v, "must be a boolean (true, false, 1, 0, t, f)");
            default
        })
    }

    /// An integer within `range`; `None` when absent or invalid (recorded
    /// with `reason`, or "must be an integer from LO to HI").
    pub fn int<T>(&mut self, key: &str, range: RangeInclusive<T>, reason: &str) -> Option<T>
    where
        T: FromStr + PartialOrd + Display,
    {
        let (k, v) = self.entry(key)?;
        match v.parse::<T>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                let reason = if reason.is_empty() {
                    format!(
                        "must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    )
                } else {
                    reason.to_string()
                };
                self.fail(k, v, reason);
                None
            }
        }
    }

    /// A duration ([`duration::parse_metadata`]: a Go duration, or whole
    /// seconds); `None` when absent or invalid (recorded).
    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        let (k, v) = self.entry(key)?;
        match duration::parse_metadata(v) {
            Ok(d) => Some(d),
            Err(e) => {
                self.fail(
                    k,
                    v,
                    format!("must be a duration such as 500ms, 5s or 1m30s, or whole seconds: {e}"),
                );
                None
            }
        }
    }

    /// One of `allowed` (names matched case-insensitively); `None` when
    /// absent or invalid (recorded).
    pub fn choice<T: Copy>(&mut self, key: &str, allowed: &[(&str, T)]) -> Option<T> {
        let (k, v) = self.entry(key)?;
        match allowed
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(v))
        {
            Some((_, t)) => Some(*t),
            None => {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                self.fail(k, v, format!("must be one of {}", names.join(", ")));
                None
            }
        }
    }

    /// The result of a component's parse: warnings for every key neither in
    /// `known` nor common to all components (with `unknown` as the reason),
    /// then `config` if no error was recorded, every problem otherwise.
    pub fn finish<T>(
        mut self,
        config: T,
        known: &[&str],
        unknown: &str,
    ) -> Result<Parsed<T>, Validation> {
        let meta = self.meta;
        for (k, v) in meta {
            if !common_key(k) && !known.iter().any(|n| n.eq_ignore_ascii_case(k)) {
                self.warn(k, v, unknown);
            }
        }
        self.validation.warnings.sort_by(|a, b| a.key.cmp(&b.key));
        self.finish_open(config)
    }

    /// Like [`finish`](Self::finish) for metadata shared with another
    /// reader (subscription metadata also goes to the component), so
    /// unknown keys are not reported.
    pub fn finish_open<T>(self, config: T) -> Result<Parsed<T>, Validation> {
        if self.validation.errors.is_empty() {
            Ok(Parsed {
                config,
                warnings: self.validation.warnings,
            })
        } else {
            Err(self.validation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metadata::test_metadata as md;

    #[test]
    fn keys_match_in_any_case_and_every_problem_is_kept() {
        let meta = md(&[
            ("MaxItems", "0"),
            ("enabled", "yes"),
            ("wait", "1m30s"),
            ("Timeout", "soon"),
            ("mode", "FAST"),
            ("password", "hunter2"),
            ("mystery", "1"),
            ("consumerId", "app"),
        ]);
        let mut r = MetadataReader::new(&meta);
        assert_eq!(r.int("maxItems", 1..=10u32, ""), None);
        assert!(r.bool("enabled", true));
        assert_eq!(r.duration("WAIT"), Some(Duration::from_secs(90)));
        assert_eq!(r.duration("timeout"), None);
        assert_eq!(r.choice("mode", &[("fast", 1), ("slow", 2)]), Some(1));
        assert_eq!(r.get("absent"), None);
        r.fail("password", "hunter2", "too short");
        let v = r
            .finish(
                (),
                &["maxItems", "enabled", "wait", "timeout", "mode", "password"],
                "ignored",
            )
            .expect_err("errors");
        let errors: Vec<String> = v.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "MaxItems=\"0\": must be an integer from 1 to 10",
                "enabled=\"yes\": must be a boolean (true, false, 1, 0, t, f)",
                "Timeout=\"soon\": must be a duration such as 500ms, 5s or 1m30s, or whole seconds: expected a number before the unit",
                "password=\"<secret>\": too short",
            ]
        );
        let warned: Vec<&str> = v.warnings.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(warned, ["mystery"]);
    }

    #[test]
    fn a_clean_read_returns_the_config_and_its_warnings() {
        let meta = md(&[("n", " 7 "), ("extra", "x")]);
        let mut r = MetadataReader::new(&meta);
        let n = r.int("n", 0..=9u8, "");
        let parsed = r.finish(n, &["n"], "ignored").expect("no errors");
        assert_eq!(parsed.config, Some(7));
        assert_eq!(parsed.warnings.len(), 1);
    }
}
