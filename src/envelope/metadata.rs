//! The well-known publish metadata (`docs/http-api.md`), parsed once per request so
//! every bad value is reported before anything is built.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::EnvelopeError;
use crate::broker::Metadata;

/// `metadata.rawPayload`: send the body untouched.
const RAW_PAYLOAD: &str = "rawPayload";
/// `metadata.ttlInSeconds`: integer seconds.
const TTL_IN_SECONDS: &str = "ttlInSeconds";
/// `metadata.ttl`: integer seconds or a Go duration (`90s`, `1h30m`).
const TTL: &str = "ttl";
/// Partition key keys, in order of precedence.
const PARTITION_KEYS: [&str; 2] = ["partitionKey", "__key"];
/// Prefix of CloudEvent overrides and extensions (matched case-insensitively).
const CLOUDEVENT_PREFIX: &str = "cloudevent.";
/// Attributes an extension may not set. They hold the payload or describe how to
/// read it, or the sidecar owns them (`topic`, `pubsubname`, `time`); `expiration`
/// has one source, the TTL keys, which native-TTL brokers honour as well.
/// Rejecting them beats silently ignoring the value.
const RESERVED: [&str; 8] = [
    "data",
    "data_base64",
    "specversion",
    "datacontenttype",
    "topic",
    "pubsubname",
    "time",
    "expiration",
];

/// Go's largest `time.Duration`: `i64::MAX` nanoseconds.
const MAX_GO_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// daprd's `cloudevent.*` overrides of a new envelope (empty values ignored, as daprd does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `cloudevent.id`
    pub id: Option<String>,
    /// `cloudevent.source`
    pub source: Option<String>,
    /// `cloudevent.type`
    pub event_type: Option<String>,
    /// `cloudevent.subject`
    pub subject: Option<String>,
    /// `cloudevent.traceid`
    pub traceid: Option<String>,
    /// `cloudevent.traceparent` (wins over `traceid`)
    pub traceparent: Option<String>,
    /// `cloudevent.tracestate`
    pub tracestate: Option<String>,
}

/// The request metadata the envelope acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishMetadata {
    /// `rawPayload=true`: no envelope.
    pub raw_payload: bool,
    /// Requested time to live (`ttlInSeconds`, else `ttl`).
    pub ttl: Option<Duration>,
    /// Explicit partition key (`partitionKey`, else `__key`).
    pub partition_key: Option<String>,
    /// daprd's CloudEvent overrides.
    pub overrides: Overrides,
    /// Our extension attributes from `cloudevent.<name>` (name lower-cased).
    pub extensions: BTreeMap<String, String>,
}

impl PublishMetadata {
    /// Parses the well-known keys; any invalid value is a `BadMetadata` error.
    pub fn parse(metadata: &Metadata) -> Result<Self, EnvelopeError> {
        let mut parsed = PublishMetadata::default();
        if let Some(value) = non_empty(metadata, RAW_PAYLOAD) {
            parsed.raw_payload = parse_bool(value)
                .ok_or_else(|| bad(RAW_PAYLOAD, value, "must be a valid boolean"))?;
        }
        parsed.ttl = parse_ttl(metadata)?;
        parsed.partition_key = PARTITION_KEYS
            .iter()
            .find_map(|key| non_empty(metadata, key))
            .map(str::to_owned);
        for (key, value) in metadata {
            let Some(prefix) = key.get(..CLOUDEVENT_PREFIX.len()) else {
                continue;
            };
            if !prefix.eq_ignore_ascii_case(CLOUDEVENT_PREFIX) || value.is_empty() {
                continue;
            }
            let name = key[CLOUDEVENT_PREFIX.len()..].to_ascii_lowercase();
            parsed.set_attribute(key, name, value)?;
        }
        Ok(parsed)
    }

    fn set_attribute(&mut self, key: &str, name: String, value: &str) -> Result<(), EnvelopeError> {
        let o = &mut self.overrides;
        let slot = match name.as_str() {
            "id" => &mut o.id,
            "source" => &mut o.source,
            "type" => &mut o.event_type,
            "subject" => &mut o.subject,
            "traceid" => &mut o.traceid,
            "traceparent" => &mut o.traceparent,
            "tracestate" => &mut o.tracestate,
            _ => {
                check_extension_name(&name).map_err(|reason| bad(key, value, reason))?;
                self.extensions.insert(name, value.to_owned());
                return Ok(());
            }
        };
        *slot = Some(value.to_owned());
        Ok(())
    }
}

/// CloudEvents attribute names are lower-case ASCII letters and digits; the spec
/// recommends ≤ 20 characters, which we do not enforce (existing events exceed it).
fn check_extension_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("extension attribute name is empty");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err("extension attribute names may only contain a-z and 0-9");
    }
    if RESERVED.contains(&name) {
        return Err("attribute is reserved and cannot be set through metadata");
    }
    Ok(())
}

fn parse_ttl(metadata: &Metadata) -> Result<Option<Duration>, EnvelopeError> {
    if let Some(value) = non_empty(metadata, TTL_IN_SECONDS) {
        return positive_seconds(value)
            .map(Some)
            .map_err(|reason| bad(TTL_IN_SECONDS, value, reason));
    }
    let Some(value) = non_empty(metadata, TTL) else {
        return Ok(None);
    };
    let ttl = match positive_seconds(value) {
        Ok(ttl) => ttl,
        Err(_) => crate::config::duration::parse(value)
            .map_err(|err| bad(TTL, value, &err.to_string()))?,
    };
    if ttl.is_zero() {
        return Err(bad(TTL, value, "must be greater than zero"));
    }
    Ok(Some(ttl))
}

/// Go's `strconv.ParseInt` of a TTL that must be > 0, capped like daprd at the
/// largest Go duration (~292 years) so `now + ttl` cannot overflow.
fn positive_seconds(value: &str) -> Result<Duration, &'static str> {
    let seconds: i64 = value.parse().map_err(|_| "must be a valid integer")?;
    u64::try_from(seconds)
        .ok()
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s).min(MAX_GO_DURATION))
        .ok_or("must be greater than zero")
}

fn non_empty<'m>(metadata: &'m Metadata, key: &str) -> Option<&'m str> {
    metadata
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn bad(key: &str, value: &str, reason: &str) -> EnvelopeError {
    EnvelopeError::BadMetadata {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`.
pub use crate::config::metadata::parse_go_bool as parse_bool;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_well_known_key() {
        let metadata: Metadata = [
            ("rawPayload", "t"),
            ("ttl", "2m"),
            ("__key", "k"),
            ("CLOUDEVENT.Subject", "s"),
            ("cloudevent.traceparent", "tp"),
            ("cloudevent.TenantID", "acme"),
            ("cloudevent.userid", ""),
            ("cloudeventX", "not a prefix match"),
            ("unrelated", "kept for the component only"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let parsed = PublishMetadata::parse(&metadata).unwrap();
        assert!(parsed.raw_payload);
        assert_eq!(parsed.ttl, Some(Duration::from_secs(120)));
        assert_eq!(parsed.partition_key.as_deref(), Some("k"));
        assert_eq!(parsed.overrides.subject.as_deref(), Some("s"));
        assert_eq!(parsed.overrides.traceparent.as_deref(), Some("tp"));
        assert_eq!(parsed.overrides.id, None);
        let extensions: Vec<_> = parsed.extensions.iter().collect();
        assert_eq!(extensions, [(&"tenantid".to_owned(), &"acme".to_owned())]);
    }

    #[test]
    fn empty_metadata_is_all_defaults() {
        assert_eq!(
            PublishMetadata::parse(&Metadata::new()).unwrap(),
            PublishMetadata::default()
        );
    }

    #[test]
    fn go_durations_parse_like_go() {
        let ok = [
            ("0", Duration::ZERO),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5s", Duration::from_millis(1500)),
            (".5m", Duration::from_secs(30)),
            ("250ms", Duration::from_millis(250)),
            ("3us", Duration::from_micros(3)),
            ("3\u{b5}s", Duration::from_micros(3)),
            ("3\u{3bc}s", Duration::from_micros(3)),
            ("7ns", Duration::from_nanos(7)),
            ("+2h", Duration::from_secs(7200)),
        ];
        for (s, want) in ok {
            assert_eq!(crate::config::duration::parse(s).ok(), Some(want), "{s}");
        }
        for s in ["", "1", "1d", "s", ".s", "1..5s", "-1s", "9999999999h"] {
            assert!(crate::config::duration::parse(s).is_err(), "{s}");
        }
    }
}
