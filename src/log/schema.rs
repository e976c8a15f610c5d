//! The on-disk layout: column family names, key encodings and the fixed
//! binary values of the `events` and `meta` column families.
//!
//! | CF | key | value |
//! |---|---|---|
//! | `events` | seq, u64 big-endian (8 bytes) | received_micros u64 BE (8 bytes) ‖ exact outbound frame bytes |
//! | `accounts` | DID, UTF-8 | [`AccountState`](super::AccountState) as a DAG-CBOR map |
//! | `hosts` | hostname, UTF-8 | [`HostState`](super::HostState) as a DAG-CBOR map |
//! | `meta` | `log/schema_version` | u32 BE |
//! | `meta` | `log/seg/` ‖ first seq u64 BE | segment record: bytes_start, bytes_end, min_received, max_received, 4 × u64 BE |
//! | `meta` | any other UTF-8 key | caller bytes ([`EventLog::put_meta`](super::EventLog::put_meta)) |
//!
//! Event values are a fixed binary layout rather than CBOR because they sit on
//! the hot path twice (append and every catch-up read) and the frame must come
//! back byte-for-byte: a fixed 8-byte prefix is sliced off with no parsing.
//! Big-endian keys make RocksDB's bytewise order equal seq order, so a
//! catch-up read is one forward scan and the last key is the highest seq.

use super::error::LogError;

/// Column family holding the sequenced events.
pub const CF_EVENTS: &str = "events";
/// Column family holding per-DID account state.
pub const CF_ACCOUNTS: &str = "accounts";
/// Column family holding per-upstream-host state.
pub const CF_HOSTS: &str = "hosts";
/// Column family holding schema version, the segment index and caller metadata.
pub const CF_META: &str = "meta";

/// The on-disk layout version this build reads and writes. Bump it on any
/// incompatible change to a key or value encoding.
pub const SCHEMA_VERSION: u32 = 1;

/// Prefix of the `meta` keys the log owns; callers may not write under it.
pub const RESERVED_META_PREFIX: &str = "log/";
/// `meta` key of the schema version (u32 BE).
pub const META_SCHEMA_VERSION: &[u8] = b"log/schema_version";
/// `meta` key prefix of the segment index; the suffix is the segment's first
/// seq as u64 BE, so the index iterates in seq order.
pub const META_SEGMENT_PREFIX: &[u8] = b"log/seg/";

/// Length of the `received_micros` prefix of an event value.
pub const EVENT_TIME_LEN: usize = 8;

/// The `events` key of `seq`.
#[inline]
pub fn event_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Decodes an `events` key.
#[inline]
pub fn decode_event_key(key: &[u8]) -> Result<u64, LogError> {
    let arr: [u8; 8] = key
        .try_into()
        .map_err(|_| LogError::Corrupt(format!("event key of {} bytes, expected 8", key.len())))?;
    Ok(u64::from_be_bytes(arr))
}

/// Writes an `events` value into `out` (cleared first): time prefix, frame.
#[inline]
pub fn encode_event_value(received_micros: u64, frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(EVENT_TIME_LEN + frame.len());
    out.extend_from_slice(&received_micros.to_be_bytes());
    out.extend_from_slice(frame);
}

/// Splits an `events` value into `(received_micros, frame)`.
#[inline]
pub fn decode_event_value(seq: u64, value: &[u8]) -> Result<(u64, &[u8]), LogError> {
    if value.len() < EVENT_TIME_LEN {
        return Err(LogError::Corrupt(format!(
            "event {seq}: value of {} bytes is shorter than its {EVENT_TIME_LEN}-byte time prefix",
            value.len()
        )));
    }
    let (time, frame) = value.split_at(EVENT_TIME_LEN);
    let mut arr = [0u8; EVENT_TIME_LEN];
    arr.copy_from_slice(time);
    Ok((u64::from_be_bytes(arr), frame))
}

/// The logical size an event occupies in the `events` CF (key + value), the
/// unit of [`LogOptions::retention_max_bytes`](super::LogOptions::retention_max_bytes).
#[inline]
pub fn event_logical_size(frame_len: usize) -> u64 {
    (8 + EVENT_TIME_LEN + frame_len) as u64
}

/// The `meta` key of the segment starting at `first_seq`.
pub fn segment_key(first_seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(META_SEGMENT_PREFIX);
    k[8..].copy_from_slice(&first_seq.to_be_bytes());
    k
}

/// Decodes a `meta` segment key into the segment's first seq.
pub fn decode_segment_key(key: &[u8]) -> Result<u64, LogError> {
    key.strip_prefix(META_SEGMENT_PREFIX)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| LogError::Corrupt(format!("malformed segment key {key:02x?}")))
}

/// Encodes the schema version value.
pub fn encode_schema_version(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// Decodes the schema version value.
pub fn decode_schema_version(value: &[u8]) -> Result<u32, LogError> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_be_bytes)
        .map_err(|_| {
            LogError::Corrupt(format!(
                "schema version value of {} bytes, expected 4",
                value.len()
            ))
        })
}

/// Reads `N` big-endian u64s from a fixed-length value, naming `what` in the error.
pub(crate) fn decode_u64s<const N: usize>(value: &[u8], what: &str) -> Result<[u64; N], LogError> {
    if value.len() != 8 * N {
        return Err(LogError::Corrupt(format!(
            "{what}: value of {} bytes, expected {}",
            value.len(),
            8 * N
        )));
    }
    let mut out = [0u64; N];
    for (o, chunk) in out.iter_mut().zip(value.chunks_exact(8)) {
        let mut arr = [0u8; 8];
        arr.copy_from_slice(chunk);
        *o = u64::from_be_bytes(arr);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_like_seqs() {
        let seqs = [1u64, 2, 255, 256, 65_535, 1 << 40, u64::MAX - 1];
        for w in seqs.windows(2) {
            assert!(event_key(w[0]) < event_key(w[1]));
        }
        assert_eq!(decode_event_key(&event_key(1 << 40)).unwrap(), 1 << 40);
        assert!(matches!(
            decode_event_key(b"short"),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn event_value_round_trip_and_corruption() {
        let mut buf = vec![0xff; 3];
        encode_event_value(0x0102_0304_0506_0708, b"frame", &mut buf);
        assert_eq!(&buf[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let (t, f) = decode_event_value(1, &buf).unwrap();
        assert_eq!((t, f), (0x0102_0304_0506_0708, &b"frame"[..]));
        let (_, empty) = decode_event_value(1, &buf[..8]).unwrap();
        assert!(empty.is_empty());
        assert!(matches!(
            decode_event_value(1, &buf[..7]),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn segment_keys() {
        let k = segment_key(42);
        assert!(k.starts_with(META_SEGMENT_PREFIX));
        assert_eq!(decode_segment_key(&k).unwrap(), 42);
        assert!(segment_key(255) < segment_key(256));
        assert!(decode_segment_key(b"log/seg/short").is_err());
        assert!(decode_segment_key(b"other/key_8bytes").is_err());
    }

    #[test]
    fn schema_version_value() {
        assert_eq!(decode_schema_version(&encode_schema_version(7)).unwrap(), 7);
        assert!(decode_schema_version(b"\x00\x01").is_err());
    }

    #[test]
    fn fixed_u64s() {
        let mut v = Vec::new();
        for x in [1u64, u64::MAX] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(decode_u64s::<2>(&v, "t").unwrap(), [1, u64::MAX]);
        assert!(decode_u64s::<3>(&v, "t").is_err());
    }
}
