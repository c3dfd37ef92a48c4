//! W3C Trace Context `traceparent` (version 00) for the envelope's `traceid` and
//! `traceparent` attributes: the publish span is a child of the caller's span, or
//! the root of a new trace.

use std::fmt;

/// A parsed `traceparent`: `00-<trace id>-<parent id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id (never all zero).
    pub trace_id: [u8; 16],
    /// 8-byte id of the span that is the parent of the receiver (never all zero).
    pub span_id: [u8; 8],
    /// Trace flags (bit 0 = sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value; `None` when it is not a valid W3C traceparent.
    ///
    /// Future versions may append fields after the flags; they are accepted and
    /// dropped, as the spec asks. Version `ff` is invalid.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let header = header.trim();
        let mut parts = header.splitn(5, '-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let extra = parts.next();
        let version = decode_hex::<1>(version)?[0];
        if version == 0xff || (version == 0 && extra.is_some()) {
            return None;
        }
        let trace_id = decode_hex::<16>(trace)?;
        let span_id = decode_hex::<8>(span)?;
        let flags = decode_hex::<1>(flags)?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A new span in the same trace, keeping the flags.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            span_id: random_nonzero(),
            ..*self
        }
    }

    /// The root span of a new, sampled trace.
    pub fn fresh() -> TraceParent {
        TraceParent {
            trace_id: random_nonzero(),
            span_id: random_nonzero(),
            flags: 0x01,
        }
    }

    /// The child of `incoming` when it is valid, else a fresh root.
    pub fn child_or_fresh(incoming: Option<&str>) -> TraceParent {
        incoming
            .and_then(TraceParent::parse)
            .map_or_else(TraceParent::fresh, |parent| parent.child())
    }
}

/// Length of a version-00 `traceparent`: `00-` 32 hex `-` 16 hex `-` 2 hex.
const TRACEPARENT_LEN: usize = 55;

impl fmt::Display for TraceParent {
    /// Encodes into a stack buffer and writes once: every publish formats one
    /// traceparent, and `{:02x}` per byte cost ~7,500 instructions an event
    /// (callgrind, `README` Performance → Profile); this costs a few hundred.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[..2].copy_from_slice(b"00");
        encode_hex(&self.trace_id, &mut out[3..35]);
        encode_hex(&self.span_id, &mut out[36..52]);
        encode_hex(&[self.flags], &mut out[53..55]);
        // Only ASCII hex digits and '-' were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// Lower-case hex of `bytes` into `out` (exactly twice as long).
fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// Lower-case hex of exactly `N` bytes (the spec forbids upper case).
fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Random id bytes; all-zero ids are invalid, so redraw in that (2^-64) case.
fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id != [0; N] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn parses_and_prints_round_trip() {
        let tp = TraceParent::parse(PARENT).expect("valid");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), PARENT);
    }

    #[test]
    fn child_keeps_trace_and_flags_with_new_span() {
        let parent = TraceParent::parse(PARENT).expect("valid");
        let child = TraceParent::child_or_fresh(Some(PARENT));
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(child.flags, parent.flags);
        assert_ne!(child.span_id, parent.span_id);
        assert_eq!(child.to_string().len(), 55);
    }

    #[test]
    fn rejects_invalid_headers() {
        for bad in [
            "",
            "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn future_version_fields_are_dropped() {
        let tp = TraceParent::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz")
            .expect("future versions parse");
        assert_eq!(tp.to_string(), PARENT);
    }

    #[test]
    fn fresh_when_missing_or_invalid() {
        let a = TraceParent::child_or_fresh(None);
        let b = TraceParent::child_or_fresh(Some("garbage"));
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(a.flags, 1);
        assert!(TraceParent::parse(&a.to_string()).is_some());
    }
}
