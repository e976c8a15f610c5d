//! What a mirror accepts from one upstream frame: [`check`].
//!
//! The mirror trusts its upstream's events (no signatures, no MST), not its
//! bytes: a frame it stores is served byte for byte to every subscriber, so
//! it must be a frame a strict consumer can read. The contract:
//!
//! - always checked: the 5 MB frame limit, the header, and that the body
//!   decodes strictly as the type the header announces, with a positive
//!   `seq` (unknown types: one well-formed CBOR map with a `seq`);
//! - not checked here: that the seq is above the last one stored (the
//!   follower knows that), signatures, repo contents, identities (the
//!   upstream relay checked those; see the module docs of [`super`]).

use crate::wire::frame::{decode_header, peek_seq, Event, FrameError, MAX_FRAME_LEN};
use crate::wire::syntax::parse_datetime;

/// A frame worth keeping or acting on.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked<'a> {
    /// A sequenced event, to store as is.
    Event {
        seq: u64,
        /// Its `time` field, microseconds since the Unix epoch, when it has
        /// a readable one (for the lag metric only).
        time_micros: Option<i64>,
    },
    /// `#info` (no seq, never stored).
    Info {
        name: &'a str,
        message: Option<&'a str>,
    },
    /// An error frame; the upstream closes the stream after it.
    Error {
        error: &'a str,
        message: Option<&'a str>,
    },
}

/// Why a frame was dropped (the `reason` label of
/// `atrelay_mirror_frames_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Over the protocol's 5 MB frame limit.
    Oversize,
    /// Not a readable frame (header, body or seq).
    Malformed,
    /// An unknown type without a seq: nothing to order it by.
    Unsequenced,
    /// A seq at or below the last one stored (found by the follower).
    NonIncreasing,
    /// A text websocket message on this binary stream.
    Text,
}

impl Dropped {
    /// Every reason, for registering the counter at zero.
    pub const ALL: [Dropped; 5] = [
        Dropped::Oversize,
        Dropped::Malformed,
        Dropped::Unsequenced,
        Dropped::NonIncreasing,
        Dropped::Text,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Oversize => "oversize",
            Dropped::Malformed => "malformed",
            Dropped::Unsequenced => "unsequenced",
            Dropped::NonIncreasing => "non_increasing",
            Dropped::Text => "text",
        }
    }
}

/// Checks one upstream frame (see the module docs for what is checked).
/// Never panics, whatever the bytes.
pub fn check(frame: &[u8]) -> Result<Checked<'_>, Dropped> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(Dropped::Oversize);
    }
    let event = match Event::decode(frame) {
        Ok(event) => event,
        Err(FrameError::TooLarge { .. }) => return Err(Dropped::Oversize),
        Err(_) => return Err(Dropped::Malformed),
    };
    let seq = match &event {
        Event::Info(i) => {
            return Ok(Checked::Info {
                name: i.name,
                message: i.message,
            })
        }
        Event::Error(e) => {
            return Ok(Checked::Error {
                error: e.error,
                message: e.message,
            })
        }
        Event::Unknown { .. } => {
            // The header decoded above, so this cannot fail; a body without
            // a seq cannot be placed in the log.
            let body = decode_header(frame).map_err(|_| Dropped::Malformed)?.1;
            match peek_seq(body) {
                Ok(Some(seq)) => seq,
                Ok(None) => return Err(Dropped::Unsequenced),
                Err(_) => return Err(Dropped::Malformed),
            }
        }
        known => known.seq().ok_or(Dropped::Malformed)?,
    };
    let seq = u64::try_from(seq)
        .ok()
        .filter(|&s| s > 0)
        .ok_or(Dropped::Malformed)?;
    let time_micros = event.time().and_then(|t| parse_datetime(t).ok());
    Ok(Checked::Event { seq, time_micros })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{Account, ErrorFrame, Info};

    fn frame(event: Event<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        event.encode(&mut out);
        out
    }

    #[test]
    fn sorts_frames() {
        let account = frame(Event::Account(Account {
            seq: 7,
            did: "did:plc:abc",
            time: "2024-01-01T00:00:00.000Z",
            active: true,
            status: None,
        }));
        assert_eq!(
            check(&account),
            Ok(Checked::Event {
                seq: 7,
                time_micros: Some(1_704_067_200_000_000)
            })
        );
        let info = frame(Event::Info(Info {
            name: Info::OUTDATED_CURSOR,
            message: None,
        }));
        assert!(matches!(
            check(&info),
            Ok(Checked::Info {
                name: "OutdatedCursor",
                ..
            })
        ));
        let error = frame(Event::Error(ErrorFrame {
            error: ErrorFrame::FUTURE_CURSOR,
            message: Some("ahead"),
        }));
        assert!(matches!(
            check(&error),
            Ok(Checked::Error {
                error: "FutureCursor",
                ..
            })
        ));
        let zero = frame(Event::Account(Account {
            seq: 0,
            did: "did:plc:abc",
            time: "2024-01-01T00:00:00.000Z",
            active: true,
            status: None,
        }));
        assert_eq!(check(&zero), Err(Dropped::Malformed));
        assert_eq!(check(b"\xff\x00garbage"), Err(Dropped::Malformed));
        assert_eq!(check(&[]), Err(Dropped::Malformed));
        assert_eq!(
            check(&account[..account.len() - 1]),
            Err(Dropped::Malformed)
        );
        let mut big = account.clone();
        big.resize(MAX_FRAME_LEN + 1, 0);
        assert_eq!(check(&big), Err(Dropped::Oversize));
    }
}
