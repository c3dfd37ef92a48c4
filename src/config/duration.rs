//! Go duration strings (`5s`, `1m30s`, `500ms`, `1.5h`), as daprd's YAML uses
//! them. Parsed exactly like Go's `time.ParseDuration`, except that negative
//! durations are refused: no setting of ours means anything with them.
//!
//! This is the only duration parser of the crate. [`parse`] is strict Go
//! (Resiliency policies); [`parse_metadata`] is the one rule for component
//! and subscription metadata: a Go duration, or a bare whole number meaning
//! **seconds**, as dapr/kit's metadata decoder reads `time.Duration` fields.
//! All arithmetic is checked: a value past Go's limit (max int64
//! nanoseconds, about 292 years) is [`DurationError::Overflow`].

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty input.
    #[error("empty duration")]
    Empty,
    /// Leading `-`.
    #[error("negative durations are not allowed")]
    Negative,
    /// A number without a unit (other than a lone `0`).
    #[error("missing unit (use ns, us, ms, s, m or h, e.g. \"5s\")")]
    MissingUnit,
    /// A unit we do not know.
    #[error("unknown unit {0:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    /// Something that is not a number where one is expected.
    #[error("expected a number before the unit")]
    BadNumber,
    /// More than about 292 years, Go's limit.
    #[error("duration too large")]
    Overflow,
}

/// Nanoseconds per unit, longest unit names first so `ms` wins over `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's `time.ParseDuration` limit (max int64 nanoseconds).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a metadata duration: a bare whole number is seconds (`90` = 90 s),
/// anything else must be a Go duration ([`parse`]).
pub fn parse_metadata(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u128 = s.parse().map_err(|_| DurationError::Overflow)?;
        let nanos = secs
            .checked_mul(1_000_000_000)
            .filter(|n| *n <= MAX_NANOS)
            .ok_or(DurationError::Overflow)?;
        return Ok(Duration::from_nanos(to_u64(nanos)?));
    }
    parse(s)
}

/// Parses a Go duration string such as `1h2m3.5s` or `250ms`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(num_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::BadNumber);
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit);
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        total = total
            .checked_add(scaled(number, scale)?)
            .ok_or(DurationError::Overflow)?;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
        rest = next;
    }
    Ok(Duration::from_nanos(to_u64(total)?))
}

/// A nanosecond count already checked against [`MAX_NANOS`] as `u64`.
fn to_u64(nanos: u128) -> Result<u64, DurationError> {
    u64::try_from(nanos).map_err(|_| DurationError::Overflow)
}

/// `number` (decimal, maybe with a fraction) times `scale` nanoseconds,
/// computed in integers so `0.1s` is exactly 100ms.
fn scaled(number: &str, scale: u128) -> Result<u128, DurationError> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| DurationError::Overflow)?
    };
    let mut nanos = whole.checked_mul(scale).ok_or(DurationError::Overflow)?;
    let mut unit = scale;
    for digit in frac.chars() {
        unit /= 10;
        if unit == 0 {
            break; // finer than a nanosecond: Go drops it too
        }
        let d = u128::from(digit.to_digit(10).ok_or(DurationError::BadNumber)?);
        nanos = d
            .checked_mul(unit)
            .and_then(|f| nanos.checked_add(f))
            .ok_or(DurationError::Overflow)?;
    }
    Ok(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_examples() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2h45m10s"), Ok(Duration::from_secs(9910)));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("+3s"), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("-1s"), Err(DurationError::Negative));
        assert_eq!(parse("5"), Err(DurationError::MissingUnit));
        assert_eq!(parse("5d"), Err(DurationError::UnknownUnit("d".into())));
        assert_eq!(parse("s"), Err(DurationError::BadNumber));
        assert_eq!(parse("1..2s"), Err(DurationError::BadNumber));
        assert_eq!(parse("1s5"), Err(DurationError::MissingUnit));
        assert_eq!(parse("3000000h"), Err(DurationError::Overflow));
        assert_eq!(parse("abc"), Err(DurationError::BadNumber));
    }

    #[test]
    fn edges_are_checked_never_wrapped() {
        let max = Duration::from_nanos(i64::MAX as u64);
        assert_eq!(parse("9223372036854775807ns"), Ok(max));
        assert_eq!(parse("9223372036854775808ns"), Err(DurationError::Overflow));
        assert_eq!(parse("2562047h47m16.854775807s"), Ok(max));
        assert_eq!(
            parse("2562047h47m16.854775808s"),
            Err(DurationError::Overflow)
        );
        let huge = "9".repeat(60) + "h";
        assert_eq!(parse(&huge), Err(DurationError::Overflow));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1µs1μs1us"), Ok(Duration::from_micros(3)));
        assert_eq!(parse("1.000000000001s"), Ok(Duration::from_secs(1)));
        let many = "1ns".repeat(10_000);
        assert_eq!(parse(&many), Ok(Duration::from_nanos(10_000)));
        let many_hours = "2000000h".repeat(2);
        assert_eq!(parse(&many_hours), Err(DurationError::Overflow));
        assert_eq!(parse("1s-1s"), Err(DurationError::UnknownUnit("s-".into())));
    }

    #[test]
    fn bare_numbers_in_metadata_are_seconds() {
        assert_eq!(parse_metadata("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_metadata(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse_metadata("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_metadata("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_metadata("1.5"), Err(DurationError::MissingUnit));
        assert_eq!(parse_metadata("-1"), Err(DurationError::Negative));
        assert_eq!(parse_metadata("bad"), Err(DurationError::BadNumber));
        assert_eq!(
            parse_metadata("9223372036"),
            Ok(Duration::from_secs(9_223_372_036))
        );
        assert_eq!(parse_metadata("9223372037"), Err(DurationError::Overflow));
        let huge = "9".repeat(60);
        assert_eq!(parse_metadata(&huge), Err(DurationError::Overflow));
    }
}
