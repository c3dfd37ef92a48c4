//! Go duration strings (`300ms`, `10s`, `1m30s`, `1h`), as daprd's YAML
//! writes them. Bare integers are read as milliseconds, matching daprd's
//! metadata decoder for duration fields.

use std::time::Duration;

/// Parses a Go duration. Negative durations and unknown units are errors.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in {text:?}"))?;
        if num_len == 0 {
            return Err(format!("expected a number in {text:?}"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("bad number in {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit {other:?} in {text:?}")),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * scale)
            .map_err(|_| format!("duration {text:?} out of range"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_forms() {
        assert!(parse("").is_err());
        assert!(parse("10").is_ok());
        assert!(parse("10x").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("s").is_err());
        assert!(parse("5 s").is_err());
    }
}
