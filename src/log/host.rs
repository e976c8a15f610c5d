//! Per-upstream-host state, stored in the `hosts` column family.

use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};

use super::error::LogError;
use super::host_status::HostStatus;

/// What the relay remembers about one upstream host (digest §2.1, §2.8).
///
/// The crawler writes it in the same [`AppendBatch`](super::AppendBatch) as
/// the events it covers, so after a crash `cursor` never claims an upstream
/// event whose relay event was lost, and resuming from it duplicates at most
/// events the rev check drops.
///
/// Stored as a DAG-CBOR map with all five keys (`cursor`, `status`,
/// `lastSeqSeen`, `accountCount`, `firstSeenMicros`), for the same reasons as
/// [`AccountState`](super::AccountState): extensible, strict, cheap at this size.
///
/// ```
/// use atrelay::log::HostState;
/// let host = HostState::new(1_700_000_000_000_000);
/// let mut buf = Vec::new();
/// host.encode(&mut buf);
/// assert_eq!(HostState::decode(&buf).unwrap(), host);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    /// `active`, `idle`, `offline`, `throttled` or `banned`
    /// (`com.atproto.sync.defs#hostStatus`).
    pub status: HostStatus,
    /// Last upstream seq fully processed: the cursor to resume from.
    pub cursor: u64,
    /// Number of accounts whose current host this is (for the account limit).
    pub account_count: u64,
    /// When the relay first saw the host, microseconds since the Unix epoch.
    pub first_seen_micros: u64,
    /// Highest upstream seq seen on the socket, processed or not (diagnostics;
    /// can run ahead of `cursor`).
    pub last_seq_seen: u64,
}

impl HostState {
    /// A newly seen, active host with no cursor yet.
    pub fn new(first_seen_micros: u64) -> HostState {
        HostState {
            status: HostStatus::Active,
            cursor: 0,
            account_count: 0,
            first_seen_micros,
            last_seq_seen: 0,
        }
    }

    /// Appends the DAG-CBOR encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out);
        enc.map(5);
        // Canonical key order: shorter first, then bytewise.
        enc.text("cursor");
        enc.u64(self.cursor);
        enc.text("status");
        enc.text(self.status.as_str());
        enc.text("lastSeqSeen");
        enc.u64(self.last_seq_seen);
        enc.text("accountCount");
        enc.u64(self.account_count);
        enc.text("firstSeenMicros");
        enc.u64(self.first_seen_micros);
    }

    /// Decodes a stored value. Unknown keys are skipped; a missing field or a
    /// malformed value is [`LogError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<HostState, LogError> {
        decode_inner(bytes).map_err(|e| LogError::Corrupt(format!("host state: {e}")))
    }
}

fn decode_inner(bytes: &[u8]) -> Result<HostState, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let n = dec.map()?;
    let mut keys = KeyOrder::new();
    let (mut cursor, mut status, mut last_seq_seen, mut account_count, mut first_seen) =
        (None, None, None, None, None);
    for _ in 0..n {
        match keys.next(&mut dec)? {
            "cursor" => cursor = Some(dec.u64()?),
            "status" => {
                let text = dec.text()?;
                status = Some(HostStatus::parse(text).ok_or_else(|| {
                    DecodeError::invalid("status", format!("unknown host status {text:?}"))
                })?);
            }
            "lastSeqSeen" => last_seq_seen = Some(dec.u64()?),
            "accountCount" => account_count = Some(dec.u64()?),
            "firstSeenMicros" => first_seen = Some(dec.u64()?),
            _ => dec.skip()?,
        }
    }
    dec.finish()?;
    Ok(HostState {
        status: status.ok_or(DecodeError::MissingField("status"))?,
        cursor: cursor.ok_or(DecodeError::MissingField("cursor"))?,
        account_count: account_count.ok_or(DecodeError::MissingField("accountCount"))?,
        first_seen_micros: first_seen.ok_or(DecodeError::MissingField("firstSeenMicros"))?,
        last_seq_seen: last_seq_seen.ok_or(DecodeError::MissingField("lastSeqSeen"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HostState {
        HostState {
            status: HostStatus::Throttled,
            cursor: 1 << 40,
            account_count: 12_345,
            first_seen_micros: 1_700_000_000_000_000,
            last_seq_seen: (1 << 40) + 7,
        }
    }

    #[test]
    fn round_trip() {
        for h in [sample(), HostState::new(0)] {
            let mut buf = Vec::new();
            h.encode(&mut buf);
            assert_eq!(HostState::decode(&buf).unwrap(), h);
            let mut dec = Decoder::new(&buf);
            dec.skip().unwrap();
            dec.finish().unwrap();
        }
    }

    #[test]
    fn corrupt_values_are_errors() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(
                HostState::decode(&buf[..cut]),
                Err(LogError::Corrupt(_))
            ));
        }
        let mut buf = Vec::new();
        let mut enc = Encoder::new(&mut buf);
        enc.map(1);
        enc.text("cursor");
        enc.u64(1);
        assert!(matches!(HostState::decode(&buf), Err(LogError::Corrupt(_))));
    }
}
