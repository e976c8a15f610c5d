//! The `#account` body: an account's hosting status at the emitting service
//! (hop by hop), not a record of what changed.

use super::field::{self, required};
use super::{Body, FrameError};
use crate::wire::cbor::{Decoder, Encoder, KeyOrder};

/// An `#account` body. Strings borrow from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account<'a> {
    /// Stream sequence number.
    pub seq: i64,
    /// The account DID (validated DID syntax).
    pub did: &'a str,
    /// Informal broadcast time (validated datetime syntax).
    pub time: &'a str,
    /// Whether the emitter serves the account's content.
    pub active: bool,
    /// Why the account is inactive, kept as sent: the lexicon's values are
    /// open ("known values"), so an unfamiliar status is not an error. Use
    /// [`Account::known_status`] to interpret it. `active: false` with no
    /// status is tolerated and means generic inactive. A `null` is read as
    /// absent, as the reference relay does.
    pub status: Option<&'a str>,
}

impl<'a> Account<'a> {
    /// The header `t` of this body.
    pub const TYPE: &'static str = "#account";

    /// The status, if it is one of the values the lexicon knows.
    pub fn known_status(&self) -> Option<AccountStatus> {
        self.status.and_then(AccountStatus::parse)
    }
}

impl<'a> Body<'a> for Account<'a> {
    /// Reads one `#account` map from `d`; unknown keys are skipped.
    fn read(d: &mut Decoder<'a>) -> Result<Account<'a>, FrameError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let (mut seq, mut did, mut time, mut active, mut status) = (None, None, None, None, None);
        for _ in 0..n {
            match keys.next(d)? {
                "did" => did = Some(field::did("did", d.text()?)?),
                "seq" => seq = Some(d.i64()?),
                "time" => time = Some(field::datetime("time", d.text()?)?),
                "active" => active = Some(d.bool()?),
                "status" => status = field::nullable_text(d)?,
                _ => d.skip()?,
            }
        }
        Ok(Account {
            seq: required(seq, "seq")?,
            did: required(did, "did")?,
            time: required(time, "time")?,
            active: required(active, "active")?,
            status,
        })
    }

    /// Writes the body map in canonical key order: `did, seq, time, active,
    /// status`; `status` is omitted when `None`.
    fn encode(&self, e: &mut Encoder) {
        e.map(4 + usize::from(self.status.is_some()));
        e.text("did");
        e.text(self.did);
        e.text("seq");
        e.i64(self.seq);
        e.text("time");
        e.text(self.time);
        e.text("active");
        e.bool(self.active);
        if let Some(status) = self.status {
            e.text("status");
            e.text(status);
        }
    }
}

/// The `#account.status` values the lexicon lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    /// Removed by the service's moderation; may be reversed.
    Takendown,
    /// Temporarily suspended by the service.
    Suspended,
    /// Deleted by the account holder.
    Deleted,
    /// Deactivated by the account holder; may be reactivated.
    Deactivated,
    /// The relay lost sync with the repo and stopped passing on its events.
    Desynchronized,
    /// Events are being rate-limited or dropped.
    Throttled,
}

impl AccountStatus {
    /// Every known status, in lexicon order.
    pub const ALL: [AccountStatus; 6] = [
        AccountStatus::Takendown,
        AccountStatus::Suspended,
        AccountStatus::Deleted,
        AccountStatus::Deactivated,
        AccountStatus::Desynchronized,
        AccountStatus::Throttled,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Takendown => "takendown",
            AccountStatus::Suspended => "suspended",
            AccountStatus::Deleted => "deleted",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Desynchronized => "desynchronized",
            AccountStatus::Throttled => "throttled",
        }
    }

    /// The known status spelled `s` (exact, lowercase), if any.
    pub fn parse(s: &str) -> Option<AccountStatus> {
        AccountStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The XRPC error a repo read answers when the repo exists but is not
    /// served because of this status, if the sync lexicons name one
    /// (`getRepo`, `getLatestCommit`, ...: `RepoTakendown`, `RepoSuspended`,
    /// `RepoDeactivated`). Defined here, next to the statuses, so the relay's
    /// and the PDS's endpoints map them the same way.
    pub fn repo_error(self) -> Option<&'static str> {
        match self {
            AccountStatus::Takendown => Some("RepoTakendown"),
            AccountStatus::Suspended => Some("RepoSuspended"),
            AccountStatus::Deactivated => Some("RepoDeactivated"),
            AccountStatus::Deleted | AccountStatus::Desynchronized | AccountStatus::Throttled => {
                None
            }
        }
    }
}

impl std::fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cbor::{DecodeError, Value};
    use crate::wire::frame::testutil::*;
    use crate::wire::frame::Event;

    fn sample() -> Account<'static> {
        Account {
            seq: 9,
            did: DID,
            time: TIME,
            active: false,
            status: Some("takendown"),
        }
    }

    fn sample_map() -> Entries {
        let mut body = Vec::new();
        sample().encode(&mut Encoder::new(&mut body));
        map_entries(&body)
    }

    #[test]
    fn round_trip_and_canonical_order() {
        for a in [
            sample(),
            Account {
                active: true,
                status: None,
                ..sample()
            },
            Account {
                status: Some("some-future-status"),
                ..sample()
            },
        ] {
            let frame = frame_of(&Event::Account(a.clone()));
            let (_, body) = crate::wire::frame::decode_header(&frame).unwrap();
            assert_canonical(body);
            let ev = Event::decode(&frame).unwrap();
            assert_eq!(ev, Event::Account(a));
            assert_eq!(frame_of(&ev), frame);
        }
        let keys: Vec<_> = sample_map().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["did", "seq", "time", "active", "status"]);
    }

    #[test]
    fn fields() {
        for key in ["did", "seq", "time", "active"] {
            let mut m = sample_map();
            remove(&mut m, key);
            assert_eq!(
                Account::decode(&build_map(&m)),
                Err(FrameError::Body(DecodeError::MissingField(key)))
            );
        }
        let mut m = sample_map();
        set(&mut m, "status", Value::Null);
        set(&mut m, "x", Value::Bool(true));
        assert_eq!(Account::decode(leak(build_map(&m))).unwrap().status, None);
        set(&mut m, "active", text("false"));
        assert!(matches!(
            Account::decode(&build_map(&m)),
            Err(FrameError::Body(DecodeError::Type { .. }))
        ));
    }

    #[test]
    fn statuses() {
        for st in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(st.as_str()), Some(st));
            let a = Account {
                status: Some(st.as_str()),
                ..sample()
            };
            assert_eq!(a.known_status(), Some(st));
        }
        let odd = Account {
            status: Some("Takendown"),
            ..sample()
        };
        assert_eq!(odd.known_status(), None);
        assert_eq!(
            Account {
                status: None,
                ..sample()
            }
            .known_status(),
            None
        );
    }
}
