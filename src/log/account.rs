//! Per-DID account state, stored in the `accounts` column family.

use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use crate::wire::cid::Cid;

use super::error::LogError;

/// What the relay remembers about one account (digest §2.1): the host it
/// belongs to, its statuses, and the head of its repo chain, which the
/// verifier needs to check the next `#commit` without storing any MST.
///
/// Stored as a DAG-CBOR map (keys `rev`, `data`, `host`, `commit`,
/// `localStatus`, `upstreamStatus`; absent optionals are omitted). CBOR rather
/// than a fixed layout because the value is a handful of variable-length
/// optional fields that will grow over time; the strict codec is already in
/// the crate and decoding ~150 bytes is negligible next to a RocksDB read.
///
/// ```
/// use atrelay::log::AccountState;
/// let acct = AccountState::new("pds.example.com");
/// assert!(acct.is_active());
/// let mut buf = Vec::new();
/// acct.encode(&mut buf);
/// assert_eq!(AccountState::decode(&buf).unwrap(), acct);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountState {
    /// Hostname of the upstream the account's events are accepted from (the
    /// host-matching rule, digest §2.6).
    pub host: String,
    /// Status the account's host last reported (`takendown`, `deactivated`,
    /// ...); `None` means active upstream.
    pub upstream_status: Option<String>,
    /// Status set by this relay's operator (admin takedown etc.); `None` means
    /// none. Overrides the upstream status in the combined view.
    pub local_status: Option<String>,
    /// Rev of the last accepted commit (TID string); revs must strictly increase.
    pub rev: Option<String>,
    /// CID of the last accepted commit object.
    pub commit: Option<Cid>,
    /// MST root (`data`) of the last accepted commit, checked against the
    /// next commit's `prevData`.
    pub data: Option<Cid>,
}

impl AccountState {
    /// A fresh, active account on `host` with no commit seen yet.
    pub fn new(host: impl Into<String>) -> AccountState {
        AccountState {
            host: host.into(),
            upstream_status: None,
            local_status: None,
            rev: None,
            commit: None,
            data: None,
        }
    }

    /// Whether the account is hosted and redistributable: neither the
    /// operator nor the upstream host has set a status.
    pub fn is_active(&self) -> bool {
        self.local_status.is_none() && self.upstream_status.is_none()
    }

    /// The relay's combined status (digest §2.5): a local status overrides
    /// the upstream one; `None` means active.
    pub fn status(&self) -> Option<&str> {
        self.local_status
            .as_deref()
            .or(self.upstream_status.as_deref())
    }

    /// Appends the DAG-CBOR encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let opt = |o: bool| o as usize;
        let n = 1
            + opt(self.rev.is_some())
            + opt(self.data.is_some())
            + opt(self.commit.is_some())
            + opt(self.local_status.is_some())
            + opt(self.upstream_status.is_some());
        let mut enc = Encoder::new(out);
        enc.map(n);
        // Canonical key order: shorter first, then bytewise.
        if let Some(rev) = &self.rev {
            enc.text("rev");
            enc.text(rev);
        }
        if let Some(data) = &self.data {
            enc.text("data");
            enc.cid(data);
        }
        enc.text("host");
        enc.text(&self.host);
        if let Some(commit) = &self.commit {
            enc.text("commit");
            enc.cid(commit);
        }
        if let Some(s) = &self.local_status {
            enc.text("localStatus");
            enc.text(s);
        }
        if let Some(s) = &self.upstream_status {
            enc.text("upstreamStatus");
            enc.text(s);
        }
    }

    /// Decodes a stored value. Unknown keys are skipped (a later minor
    /// version may add fields); a missing `host` or a malformed value is
    /// [`LogError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<AccountState, LogError> {
        decode_inner(bytes).map_err(|e| LogError::Corrupt(format!("account state: {e}")))
    }
}

fn opt_text(dec: &mut Decoder<'_>) -> Result<Option<String>, DecodeError> {
    if dec.take_null() {
        Ok(None)
    } else {
        Ok(Some(dec.text()?.to_owned()))
    }
}

fn decode_inner(bytes: &[u8]) -> Result<AccountState, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let n = dec.map()?;
    let mut keys = KeyOrder::new();
    let mut host = None;
    let mut acct = AccountState::new(String::new());
    for _ in 0..n {
        match keys.next(&mut dec)? {
            "rev" => acct.rev = opt_text(&mut dec)?,
            "data" => acct.data = dec.cid_or_null()?,
            "host" => host = Some(dec.text()?.to_owned()),
            "commit" => acct.commit = dec.cid_or_null()?,
            "localStatus" => acct.local_status = opt_text(&mut dec)?,
            "upstreamStatus" => acct.upstream_status = opt_text(&mut dec)?,
            _ => dec.skip()?,
        }
    }
    dec.finish()?;
    acct.host = host.ok_or(DecodeError::MissingField("host"))?;
    Ok(acct)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> AccountState {
        AccountState {
            host: "pds.example.com".into(),
            upstream_status: Some("deactivated".into()),
            local_status: Some("takendown".into()),
            rev: Some("3l3qo2vuowo2b".into()),
            commit: Some(Cid::for_cbor(b"\xa0")),
            data: Some(Cid::for_cbor(b"\x80")),
        }
    }

    #[test]
    fn round_trip_full_and_minimal() {
        for acct in [full(), AccountState::new("h")] {
            let mut buf = Vec::new();
            acct.encode(&mut buf);
            assert_eq!(AccountState::decode(&buf).unwrap(), acct);
        }
    }

    #[test]
    fn encoding_is_canonical_dag_cbor() {
        // The generic value decoder re-checks key order and shortest forms.
        let mut buf = Vec::new();
        full().encode(&mut buf);
        let mut dec = Decoder::new(&buf);
        dec.skip().unwrap();
        dec.finish().unwrap();
    }

    #[test]
    fn statuses() {
        let mut a = AccountState::new("h");
        assert!(a.is_active());
        assert_eq!(a.status(), None);
        a.upstream_status = Some("deactivated".into());
        assert!(!a.is_active());
        assert_eq!(a.status(), Some("deactivated"));
        a.local_status = Some("takendown".into());
        assert_eq!(a.status(), Some("takendown"));
    }

    #[test]
    fn corrupt_values_are_errors() {
        let mut buf = Vec::new();
        full().encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(
                AccountState::decode(&buf[..cut]),
                Err(LogError::Corrupt(_))
            ));
        }
        // Missing host.
        let mut buf = Vec::new();
        let mut enc = Encoder::new(&mut buf);
        enc.map(1);
        enc.text("rev");
        enc.text("x");
        assert!(matches!(
            AccountState::decode(&buf),
            Err(LogError::Corrupt(_))
        ));
        // Trailing garbage.
        let mut buf = Vec::new();
        AccountState::new("h").encode(&mut buf);
        buf.push(0);
        assert!(AccountState::decode(&buf).is_err());
    }

    #[test]
    fn unknown_keys_are_skipped() {
        let mut buf = Vec::new();
        let mut enc = Encoder::new(&mut buf);
        enc.map(2);
        enc.text("host");
        enc.text("h");
        enc.text("future");
        enc.u64(7);
        assert_eq!(AccountState::decode(&buf).unwrap(), AccountState::new("h"));
    }
}
