//! The on-disk record frame: `[len u32][crc32 u32][body]`, little endian,
//! where the CRC covers the body. The body holds the offset (so a segment is
//! self-describing and a misplaced record is detected), the append time, the
//! key, the content type, the metadata and the data.

use bytes::Bytes;

use crate::broker::Metadata;

/// Bytes before the body: length and checksum.
pub const HEADER_LEN: usize = 8;
/// Marks an absent key in the body.
const NO_KEY: u32 = u32::MAX;

/// A record as the caller hands it to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Ordering key, if any.
    pub key: Option<String>,
    /// Content type of `data`.
    pub content_type: String,
    /// String metadata stored with the record.
    pub metadata: Metadata,
    /// The payload.
    pub data: Bytes,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Position in its partition.
    pub offset: u64,
    /// Append time, milliseconds since the Unix epoch (non-decreasing per partition).
    pub timestamp_ms: i64,
    /// What was appended.
    pub record: NewRecord,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the frame needs: a torn write or the end of data.
    #[error("frame is incomplete")]
    Incomplete,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// The length or the body's fields are impossible.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// Appends the frame of `rec` at `offset` and `timestamp_ms` to `buf`.
pub fn encode(buf: &mut Vec<u8>, offset: u64, timestamp_ms: i64, rec: &NewRecord) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    match &rec.key {
        Some(k) => put_bytes(buf, k.as_bytes()),
        None => buf.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    put_bytes(buf, rec.content_type.as_bytes());
    put_len(buf, rec.metadata.len());
    for (k, v) in &rec.metadata {
        put_bytes(buf, k.as_bytes());
        put_bytes(buf, v.as_bytes());
    }
    put_bytes(buf, &rec.data);
    let body = &buf[start + HEADER_LEN..];
    let crc = crc32fast::hash(body);
    let len = len_u32(body.len());
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Size of the frame `encode` would write for `rec`.
pub fn encoded_len(rec: &NewRecord) -> usize {
    let meta: usize = rec
        .metadata
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum();
    HEADER_LEN
        + 16
        + 4
        + rec.key.as_ref().map_or(0, String::len)
        + 4
        + rec.content_type.len()
        + 4
        + meta
        + 4
        + rec.data.len()
}

/// Reads the body length from a frame header, rejecting lengths above `max_body`.
pub fn body_len(header: &[u8; HEADER_LEN], max_body: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len < 16 + 4 * 5 || len > max_body {
        return Err(FrameError::Malformed("impossible length"));
    }
    Ok(len)
}

/// Decodes a body after checking it against the header's checksum.
pub fn decode(header: &[u8; HEADER_LEN], body: &[u8]) -> Result<StoredRecord, FrameError> {
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if crc32fast::hash(body) != crc {
        return Err(FrameError::Checksum);
    }
    let mut cur = Cursor { buf: body, pos: 0 };
    let offset = u64::from_le_bytes(cur.array()?);
    let timestamp_ms = i64::from_le_bytes(cur.array()?);
    let key_len = u32::from_le_bytes(cur.array()?);
    let key = if key_len == NO_KEY {
        None
    } else {
        Some(cur.string(key_len as usize)?)
    };
    let ct_len = cur.len()?;
    let content_type = cur.string(ct_len)?;
    let mut metadata = Metadata::new();
    for _ in 0..cur.len()? {
        let kl = cur.len()?;
        let k = cur.string(kl)?;
        let vl = cur.len()?;
        metadata.insert(k, cur.string(vl)?);
    }
    let dl = cur.len()?;
    let data = Bytes::copy_from_slice(cur.take(dl)?);
    if cur.pos != body.len() {
        return Err(FrameError::Malformed("trailing bytes in body"));
    }
    let record = NewRecord {
        key,
        content_type,
        metadata,
        data,
    };
    Ok(StoredRecord {
        offset,
        timestamp_ms,
        record,
    })
}

fn len_u32(n: usize) -> u32 {
    // Records are bounded by maxMessageBytes (checked before encoding), far
    // below 4 GiB, so the conversion cannot saturate in practice.
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_len(buf: &mut Vec<u8>, n: usize) {
    buf.extend_from_slice(&len_u32(n).to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_len(buf, b.len());
    buf.extend_from_slice(b);
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(FrameError::Malformed("field runs past the body"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self) -> Result<usize, FrameError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn string(&mut self, n: usize) -> Result<String, FrameError> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| FrameError::Malformed("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewRecord {
        let mut metadata = Metadata::new();
        metadata.insert("a".into(), "b".into());
        NewRecord {
            key: Some("k".into()),
            content_type: "application/json".into(),
            metadata,
            data: Bytes::from_static(b"{\"x\":1}"),
        }
    }

    #[test]
    fn round_trip_and_checksum() {
        let rec = sample();
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1234, &rec);
        assert_eq!(buf.len(), encoded_len(&rec));
        let header: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("header");
        let len = body_len(&header, 1 << 20).expect("len");
        let got = decode(&header, &buf[HEADER_LEN..HEADER_LEN + len]).expect("decode");
        assert_eq!((got.offset, got.timestamp_ms), (7, 1234));
        assert_eq!(got.record, rec);
        buf[HEADER_LEN + 20] ^= 0xff;
        assert_eq!(
            decode(&header, &buf[HEADER_LEN..HEADER_LEN + len]),
            Err(FrameError::Checksum)
        );
    }

    #[test]
    fn keyless_record_round_trips() {
        let rec = NewRecord {
            key: None,
            ..sample()
        };
        let mut buf = Vec::new();
        encode(&mut buf, 0, 0, &rec);
        let header: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("header");
        let got = decode(&header, &buf[HEADER_LEN..]).expect("decode");
        assert_eq!(got.record.key, None);
    }
}
