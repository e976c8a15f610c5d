//! `com.atproto.sync.subscribeRepos` event-stream frames: the envelope (a
//! header map `{t, op}` followed by exactly one body map) and the typed bodies
//! `#commit`, `#sync`, `#identity`, `#account`, `#info` and error frames.
//!
//! Decoding is strict and zero-copy: every CBOR item must be canonical DRISL
//! (see [`crate::wire::cbor`]), body keys must come in canonical order, required
//! fields must be present, identifiers must have valid syntax, and strings and
//! `blocks` are borrowed from the frame. Unknown fields are skipped (after being
//! validated as CBOR), and frames of an unknown or deprecated type decode to
//! [`Event::Unknown`] so a consumer can ignore them, as the spec requires.
//!
//! What this module does *not* check: the semantic rules of a `#commit` (op
//! shapes such as "create has no `prev`", `rebase`/`tooBig` being false,
//! `blocks` being a CAR whose root is `commit`, `rev` matching the signed
//! commit, `seq` ordering). Those belong to the verifier, which has the context
//! (and the leniency settings) to decide.
//!
//! ```
//! use atrelay::wire::frame::{decode_header, Event, EventKind, ErrorFrame};
//! let event = Event::Error(ErrorFrame { error: "FutureCursor", message: None });
//! let mut frame = Vec::new();
//! event.encode(&mut frame);
//! assert_eq!(&frame[..5], b"\xa1\x62op\x20"); // header {op:-1}
//! let (header, _body) = decode_header(&frame).unwrap();
//! assert_eq!(header.kind(), EventKind::Error);
//! assert_eq!(Event::decode(&frame).unwrap(), event);
//! ```

mod account;
mod commit;
mod error;
mod error_frame;
mod field;
mod identity;
mod info;
mod sync;
#[cfg(test)]
mod testutil;

pub use account::{Account, AccountStatus};
pub use commit::{Action, Commit, RepoOp, MAX_COMMIT_BLOCKS_LEN, MAX_COMMIT_OPS};
pub use error::FrameError;
pub use error_frame::ErrorFrame;
pub use identity::Identity;
pub use info::Info;
pub use sync::{Sync, MAX_SYNC_BLOCKS_LEN};

use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};

/// Largest whole frame (header + body) accepted, in bytes (spec digest §1.3:
/// 5 MB hard). The reference relay sets this as its WebSocket read limit;
/// anything larger is refused before a single byte of it is parsed. The one
/// definition: the crawler's WebSocket limits, the mirror and the load
/// generator's recordings all read it.
pub const MAX_FRAME_LEN: usize = 5_000_000;

/// Header `op` of a regular message.
pub const OP_MESSAGE: i64 = 1;

/// Header `op` of an error frame.
pub const OP_ERROR: i64 = -1;

/// The full NSID form of the type names, which some producers write instead of
/// the bare `#fragment`; both are accepted on input.
const NSID_PREFIX: &str = "com.atproto.sync.subscribeRepos";

/// A frame header: `{t, op}`. `t` is borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// `1` for a regular message, `-1` for an error; anything else is unknown
    /// and ignored.
    pub op: i64,
    /// The message type, e.g. `#commit`. Required when `op` is 1; absent (or,
    /// from indigo, `""`) on error frames.
    pub t: Option<&'a str>,
}

impl<'a> Header<'a> {
    /// The header of a regular message of type `t` (e.g. `"#commit"`).
    pub fn message(t: &'a str) -> Header<'a> {
        Header {
            op: OP_MESSAGE,
            t: Some(t),
        }
    }

    /// The canonical error-frame header, `{op:-1}`.
    pub fn error() -> Header<'a> {
        Header {
            op: OP_ERROR,
            t: None,
        }
    }

    /// Which body this header announces.
    pub fn kind(&self) -> EventKind {
        EventKind::of(self.op, self.t)
    }

    /// Reads a header map. `op` is required; `t` is required when `op` is 1.
    /// Unknown keys are skipped. Errors are [`FrameError::Header`] or
    /// [`FrameError::MissingType`].
    pub fn read(d: &mut Decoder<'a>) -> Result<Header<'a>, FrameError> {
        let (op, t) = Header::read_fields(d).map_err(FrameError::Header)?;
        let op = op.ok_or(FrameError::Header(DecodeError::MissingField("op")))?;
        if op == OP_MESSAGE && t.is_none() {
            return Err(FrameError::MissingType);
        }
        Ok(Header { op, t })
    }

    fn read_fields(d: &mut Decoder<'a>) -> Result<(Option<i64>, Option<&'a str>), DecodeError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let (mut op, mut t) = (None, None);
        for _ in 0..n {
            match keys.next(d)? {
                "t" => t = Some(d.text()?),
                "op" => op = Some(d.i64()?),
                _ => d.skip()?,
            }
        }
        Ok((op, t))
    }

    /// Writes the header canonically: `{t, op}`, or `{op}` when `t` is `None`.
    pub fn encode(&self, e: &mut Encoder) {
        e.map(1 + usize::from(self.t.is_some()));
        if let Some(t) = self.t {
            e.text("t");
            e.text(t);
        }
        e.text("op");
        e.i64(self.op);
    }
}

/// The kinds of frame, as announced by a header. Routing on this needs only
/// [`decode_header`], not a body decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `#commit`: a repo change with its CAR diff.
    Commit,
    /// `#sync`: a repo's current state, possibly breaking continuity.
    Sync,
    /// `#identity`: a hint to refresh the DID document and handle.
    Identity,
    /// `#account`: hosting status at the emitting service.
    Account,
    /// `#info`: an informational message (e.g. `OutdatedCursor`).
    Info,
    /// An error frame (`op: -1`).
    Error,
    /// An unknown `op` or `t`, including the deprecated `#handle`, `#migrate`
    /// and `#tombstone`: consumers ignore these.
    Unknown,
}

impl EventKind {
    /// The kind of a frame whose header has `op` and `t`. Accepts `t` both as
    /// a fragment (`#commit`) and in full NSID form
    /// (`com.atproto.sync.subscribeRepos#commit`). Any `t` on an error frame is
    /// ignored (indigo writes `""`).
    pub fn of(op: i64, t: Option<&str>) -> EventKind {
        match op {
            OP_ERROR => EventKind::Error,
            OP_MESSAGE => {
                let Some(t) = t else {
                    return EventKind::Unknown;
                };
                let fragment = t.strip_prefix(NSID_PREFIX).unwrap_or(t);
                match fragment {
                    Commit::TYPE => EventKind::Commit,
                    Sync::TYPE => EventKind::Sync,
                    Identity::TYPE => EventKind::Identity,
                    Account::TYPE => EventKind::Account,
                    Info::TYPE => EventKind::Info,
                    _ => EventKind::Unknown,
                }
            }
            _ => EventKind::Unknown,
        }
    }

    /// The header `t` written for this kind (`"#commit"`, …); `None` for
    /// errors (whose header has no `t`) and unknown frames.
    pub const fn type_name(self) -> Option<&'static str> {
        match self {
            EventKind::Commit => Some(Commit::TYPE),
            EventKind::Sync => Some(Sync::TYPE),
            EventKind::Identity => Some(Identity::TYPE),
            EventKind::Account => Some(Account::TYPE),
            EventKind::Info => Some(Info::TYPE),
            EventKind::Error | EventKind::Unknown => None,
        }
    }

    /// The `type` label of the relay's event counters (received, accepted)
    /// and the load generator's tallies: the one mapping from kind to label.
    pub const fn label(self) -> &'static str {
        match self {
            EventKind::Commit => "commit",
            EventKind::Sync => "sync",
            EventKind::Identity => "identity",
            EventKind::Account => "account",
            EventKind::Info => "info",
            EventKind::Error => "error",
            EventKind::Unknown => "unknown",
        }
    }
}

/// Splits a frame into its decoded header and the raw body bytes, so a caller
/// can route on the type (and [`peek_seq`]) without decoding the body.
///
/// Checks the size limit first, then the header; the body must be non-empty
/// but is not otherwise examined (use [`Event::decode_body`]).
pub fn decode_header(frame: &[u8]) -> Result<(Header<'_>, &[u8]), FrameError> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: frame.len() });
    }
    let mut d = Decoder::new(frame);
    let header = Header::read(&mut d)?;
    let body = d.remaining();
    if body.is_empty() {
        return Err(FrameError::MissingBody);
    }
    Ok((header, body))
}

/// The `seq` of a body, read without decoding the rest: keys are in canonical
/// order, so only the keys sorting before `seq` (for `#commit`, `ops` and
/// `rev`) are read, and they are validated as CBOR on the way. `Ok(None)` when
/// the body has no `seq` (`#info`, errors). Does not check that the body is
/// otherwise valid.
pub fn peek_seq(body: &[u8]) -> Result<Option<i64>, FrameError> {
    let mut d = Decoder::new(body);
    let n = d.map()?;
    let mut keys = KeyOrder::new();
    for _ in 0..n {
        let key = keys.next(&mut d)?;
        match (key.len(), key).cmp(&(3, "seq")) {
            std::cmp::Ordering::Less => d.skip()?,
            std::cmp::Ordering::Equal => return Ok(Some(d.i64()?)),
            std::cmp::Ordering::Greater => return Ok(None),
        }
    }
    Ok(None)
}

/// The account DID of a body of `kind` (`#commit.repo`, the `did` of
/// `#sync`, `#identity` and `#account`), read without decoding the rest, so a
/// router can shard on it: keys are in canonical order, so only the keys
/// sorting before it (for `#commit`, `ops`, `rev` and `seq`; for the others,
/// none) are read, and they are validated as CBOR on the way. The DID's syntax
/// is checked. `Ok(None)` for kinds without a DID (`#info`, errors, unknown)
/// and bodies without the field. Does not check that the body is otherwise
/// valid: the full decode that follows still can fail.
pub fn peek_did(kind: EventKind, body: &[u8]) -> Result<Option<&str>, FrameError> {
    let target: &str = match kind {
        EventKind::Commit => "repo",
        EventKind::Sync | EventKind::Identity | EventKind::Account => "did",
        EventKind::Info | EventKind::Error | EventKind::Unknown => return Ok(None),
    };
    let mut d = Decoder::new(body);
    let n = d.map()?;
    let mut keys = KeyOrder::new();
    for _ in 0..n {
        let key = keys.next(&mut d)?;
        match (key.len(), key).cmp(&(target.len(), target)) {
            std::cmp::Ordering::Less => d.skip()?,
            std::cmp::Ordering::Equal => {
                return Ok(Some(field::did(target_field(kind), d.text()?)?));
            }
            std::cmp::Ordering::Greater => return Ok(None),
        }
    }
    Ok(None)
}

/// The field name [`peek_did`] reports in a syntax error.
fn target_field(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Commit => "repo",
        _ => "did",
    }
}

/// A message body: one CBOR map, read strictly and written canonically. Every
/// event type implements it, so decoding a bare body is written once.
pub trait Body<'a>: Sized {
    /// Reads one body map from `d`; unknown keys are skipped (still validated).
    fn read(d: &mut Decoder<'a>) -> Result<Self, FrameError>;

    /// Writes the body map in canonical key order.
    fn encode(&self, e: &mut Encoder);

    /// Decodes a body that must be exactly one map: anything after it is a
    /// [`FrameError::TrailingItem`].
    fn decode(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut d = Decoder::new(body);
        let value = Self::read(&mut d)?;
        end_of_body(&d)?;
        Ok(value)
    }
}

/// Fails with [`FrameError::TrailingItem`] unless the decoder is at the end:
/// a body is exactly one item.
fn end_of_body(d: &Decoder<'_>) -> Result<(), FrameError> {
    match d.remaining().len() {
        0 => Ok(()),
        len => Err(FrameError::TrailingItem { len }),
    }
}

/// One decoded `subscribeRepos` frame, borrowing from the frame bytes.
///
/// `Commit` is held inline although it is much larger than the other
/// variants: nearly every frame is a `#commit`, and boxing it would add an
/// allocation per frame on the hot path for no saving.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// `#commit`.
    Commit(Commit<'a>),
    /// `#sync`.
    Sync(Sync<'a>),
    /// `#identity`.
    Identity(Identity<'a>),
    /// `#account`.
    Account(Account<'a>),
    /// `#info`.
    Info(Info<'a>),
    /// An error frame (`op: -1`); the stream ends after it.
    Error(ErrorFrame<'a>),
    /// An unknown `op` or `t` (including the deprecated `#handle`, `#migrate`
    /// and `#tombstone`). The body was checked to be one valid CBOR map and
    /// then ignored; `t` is `""` when the header had none. Decoding never
    /// produces `op: -1` here (that is always [`Event::Error`]).
    Unknown { op: i64, t: &'a str },
}

impl<'a> Event<'a> {
    /// Decodes a whole frame: size limit, header, then exactly one body map of
    /// the type the header announces.
    pub fn decode(frame: &'a [u8]) -> Result<Event<'a>, FrameError> {
        let (header, body) = decode_header(frame)?;
        Event::decode_body(&header, body)
    }

    /// Decodes the body that follows `header` (as returned by
    /// [`decode_header`]). The body must be exactly one CBOR map.
    pub fn decode_body(header: &Header<'a>, body: &'a [u8]) -> Result<Event<'a>, FrameError> {
        if body.is_empty() {
            return Err(FrameError::MissingBody);
        }
        let mut d = Decoder::new(body);
        let event = match header.kind() {
            EventKind::Commit => Event::Commit(Commit::read(&mut d)?),
            EventKind::Sync => Event::Sync(Sync::read(&mut d)?),
            EventKind::Identity => Event::Identity(Identity::read(&mut d)?),
            EventKind::Account => Event::Account(Account::read(&mut d)?),
            EventKind::Info => Event::Info(Info::read(&mut d)?),
            EventKind::Error => Event::Error(ErrorFrame::read(&mut d)?),
            EventKind::Unknown => {
                // Still one well-formed map: malformed CBOR is fatal even in a
                // frame we are going to ignore.
                d.clone().map()?;
                d.skip()?;
                Event::Unknown {
                    op: header.op,
                    t: header.t.unwrap_or(""),
                }
            }
        };
        end_of_body(&d)?;
        Ok(event)
    }

    /// Appends the frame (header, then body) to `out`, canonically encoded.
    /// Error frames get the header `{op:-1}`. [`Event::Unknown`] has no body to
    /// write, so it is written with an empty body map `{}`.
    ///
    /// Encoding does not check limits or syntax: encode only what you decoded
    /// or built from valid parts.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let body_hint = match self {
            Event::Commit(c) => c.blocks.len() + 128 * c.ops.len() + 256,
            Event::Sync(s) => s.blocks.len() + 192,
            _ => 128,
        };
        out.reserve(body_hint + 16);
        let mut e = Encoder::new(out);
        self.header().encode(&mut e);
        match self {
            Event::Commit(c) => c.encode(&mut e),
            Event::Sync(s) => s.encode(&mut e),
            Event::Identity(i) => i.encode(&mut e),
            Event::Account(a) => a.encode(&mut e),
            Event::Info(i) => i.encode(&mut e),
            Event::Error(err) => err.encode(&mut e),
            Event::Unknown { .. } => e.map(0),
        }
    }

    /// The header [`Event::encode`] writes for this event.
    pub fn header(&self) -> Header<'a> {
        match self {
            Event::Error(_) => Header::error(),
            Event::Unknown { op, t } => Header {
                op: *op,
                t: (!t.is_empty() || *op == OP_MESSAGE).then_some(*t),
            },
            _ => Header::message(self.kind().type_name().unwrap_or_default()),
        }
    }

    /// Which kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Commit(_) => EventKind::Commit,
            Event::Sync(_) => EventKind::Sync,
            Event::Identity(_) => EventKind::Identity,
            Event::Account(_) => EventKind::Account,
            Event::Info(_) => EventKind::Info,
            Event::Error(_) => EventKind::Error,
            Event::Unknown { .. } => EventKind::Unknown,
        }
    }

    /// The stream sequence number; `None` for `#info`, errors and unknown
    /// frames, which have none.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Event::Commit(c) => Some(c.seq),
            Event::Sync(s) => Some(s.seq),
            Event::Identity(i) => Some(i.seq),
            Event::Account(a) => Some(a.seq),
            Event::Info(_) | Event::Error(_) | Event::Unknown { .. } => None,
        }
    }

    /// Sets the sequence number (a sequencer assigning its own); `false`
    /// for the kinds that have none.
    pub fn set_seq(&mut self, seq: i64) -> bool {
        match self {
            Event::Commit(c) => c.seq = seq,
            Event::Sync(s) => s.seq = seq,
            Event::Identity(i) => i.seq = seq,
            Event::Account(a) => a.seq = seq,
            Event::Info(_) | Event::Error(_) | Event::Unknown { .. } => return false,
        }
        true
    }

    /// The account the event is about (`#commit.repo` or `did`); `None` for
    /// `#info`, errors and unknown frames.
    pub fn did(&self) -> Option<&'a str> {
        match self {
            Event::Commit(c) => Some(c.repo),
            Event::Sync(s) => Some(s.did),
            Event::Identity(i) => Some(i.did),
            Event::Account(a) => Some(a.did),
            Event::Info(_) | Event::Error(_) | Event::Unknown { .. } => None,
        }
    }

    /// Same as [`Event::did`]; `#commit` calls the field `repo`.
    pub fn repo(&self) -> Option<&'a str> {
        self.did()
    }

    /// The event's `time` (an informal broadcast time); `None` for `#info`,
    /// errors and unknown frames.
    pub fn time(&self) -> Option<&'a str> {
        match self {
            Event::Commit(c) => Some(c.time),
            Event::Sync(s) => Some(s.time),
            Event::Identity(i) => Some(i.time),
            Event::Account(a) => Some(a.time),
            Event::Info(_) | Event::Error(_) | Event::Unknown { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::wire::cbor::Value;

    fn info_body() -> Vec<u8> {
        build_map(&vec![("name".into(), text("OutdatedCursor"))])
    }

    fn identity() -> Event<'static> {
        Event::Identity(Identity {
            seq: 12,
            did: DID,
            time: TIME,
            handle: None,
        })
    }

    #[test]
    fn canonical_headers_from_the_digest() {
        let mut out = Vec::new();
        Header::message("#commit").encode(&mut Encoder::new(&mut out));
        assert_eq!(out, COMMIT_HEADER);
        out.clear();
        Header::error().encode(&mut Encoder::new(&mut out));
        assert_eq!(out, [0xa1, 0x62, 0x6f, 0x70, 0x20]);
    }

    #[test]
    fn decode_header_routes_without_the_body() {
        let frame = frame_of(&identity());
        let (header, body) = decode_header(&frame).unwrap();
        assert_eq!(header, Header::message("#identity"));
        assert_eq!(header.kind(), EventKind::Identity);
        assert_eq!(peek_seq(body), Ok(Some(12)));
        assert_eq!(Event::decode_body(&header, body), Ok(identity()));
        // a body that is garbage after its seq is not looked at by peek_seq
        let (_, body) = decode_header(&frame).unwrap();
        assert_eq!(peek_seq(&body[..body.len() - 3]), Ok(Some(12)));
        assert_eq!(peek_seq(&info_body()), Ok(None));
        assert!(peek_seq(b"\x01").is_err());
    }

    #[test]
    fn peek_seq_of_a_commit_reads_past_ops_and_rev() {
        let ops = Value::Array(vec![Value::Map(vec![("cid".into(), Value::Null)])]);
        let body = build_map(&vec![
            ("ops".into(), ops),
            ("rev".into(), text(REV)),
            ("seq".into(), Value::Int(99)),
            ("time".into(), text(TIME)),
        ]);
        assert_eq!(peek_seq(&body), Ok(Some(99)));
    }

    #[test]
    fn peek_did_reads_only_up_to_the_did() {
        // #identity: `did` is the first key.
        let frame = frame_of(&identity());
        let (header, body) = decode_header(&frame).unwrap();
        assert_eq!(peek_did(header.kind(), body), Ok(Some(DID)));
        // Garbage after the DID is not looked at.
        assert_eq!(
            peek_did(header.kind(), &body[..body.len() - 3]),
            Ok(Some(DID))
        );
        // #commit: `repo` comes after ops, rev and seq.
        let ops = Value::Array(vec![Value::Map(vec![("cid".into(), Value::Null)])]);
        let body = build_map(&vec![
            ("ops".into(), ops),
            ("rev".into(), text(REV)),
            ("seq".into(), Value::Int(99)),
            ("repo".into(), text(DID)),
            ("time".into(), Value::Int(1)),
        ]);
        assert_eq!(peek_did(EventKind::Commit, &body), Ok(Some(DID)));
        // The same body read as #account has no `did` (keys pass it by).
        assert_eq!(peek_did(EventKind::Account, &body), Ok(None));
        // Kinds without a DID.
        assert_eq!(peek_did(EventKind::Info, &info_body()), Ok(None));
        assert_eq!(peek_did(EventKind::Unknown, b"\x01"), Ok(None));
        // Bad syntax, bad CBOR, keys out of order.
        let bad = build_map(&vec![("repo".into(), text("not-a-did"))]);
        assert!(peek_did(EventKind::Commit, &bad).is_err());
        assert!(peek_did(EventKind::Commit, b"\x01").is_err());
        assert!(peek_did(EventKind::Commit, b"\xa2\x63rev\x01\x63ops\x01").is_err());
        // Agrees with the full decode on every kind that has a DID.
        for ev in [
            identity(),
            Event::Account(Account {
                seq: 3,
                did: DID,
                time: TIME,
                active: true,
                status: None,
            }),
        ] {
            let frame = frame_of(&ev);
            let (header, body) = decode_header(&frame).unwrap();
            assert_eq!(peek_did(header.kind(), body).unwrap(), ev.did());
        }
    }

    #[test]
    fn type_names() {
        for kind in [
            EventKind::Commit,
            EventKind::Sync,
            EventKind::Identity,
            EventKind::Account,
            EventKind::Info,
        ] {
            let t = kind.type_name().unwrap();
            assert_eq!(EventKind::of(1, Some(t)), kind);
            let full = format!("com.atproto.sync.subscribeRepos{t}");
            assert_eq!(EventKind::of(1, Some(&full)), kind);
            assert_eq!(EventKind::of(1, Some(&t[1..])), EventKind::Unknown);
            assert_eq!(EventKind::of(2, Some(t)), EventKind::Unknown);
        }
        assert_eq!(
            EventKind::of(1, Some("com.example.other#commit")),
            EventKind::Unknown
        );
        assert_eq!(EventKind::of(-1, Some("")), EventKind::Error);
        assert_eq!(EventKind::of(-1, None), EventKind::Error);
        assert_eq!(EventKind::Error.type_name(), None);
    }

    #[test]
    fn full_nsid_type_decodes() {
        let mut body = Vec::new();
        if let Event::Identity(i) = identity() {
            i.encode(&mut Encoder::new(&mut body));
        }
        let frame = raw_frame(Some("com.atproto.sync.subscribeRepos#identity"), 1, &body);
        let ev = Event::decode(&frame).unwrap();
        assert_eq!(ev, identity());
        // re-encoded with the short form
        assert_eq!(frame_of(&ev), raw_frame(Some("#identity"), 1, &body));
    }

    #[test]
    fn unknown_and_deprecated_types_are_unknown() {
        let handle_body = build_map(&vec![
            ("did".into(), text(DID)),
            ("seq".into(), Value::Int(3)),
            ("time".into(), text(TIME)),
            ("handle".into(), text("alice.test")),
        ]);
        for t in ["#handle", "#migrate", "#tombstone", "#labels", "", "commit"] {
            let frame = raw_frame(Some(t), 1, &handle_body);
            let ev = Event::decode(&frame).unwrap();
            assert_eq!(ev, Event::Unknown { op: 1, t }, "{t}");
            assert_eq!(ev.seq(), None);
            assert_eq!(ev.did(), None);
        }
        // unknown op, with and without t
        for (t, op) in [(Some("#commit"), 2), (None, 0), (None, i64::MIN)] {
            let frame = raw_frame(t, op, &info_body());
            assert_eq!(
                Event::decode(&frame),
                Ok(Event::Unknown {
                    op,
                    t: t.unwrap_or("")
                })
            );
        }
        // the ignored body must still be one valid map
        let frame = raw_frame(Some("#handle"), 1, b"\x01");
        assert!(matches!(
            Event::decode(&frame),
            Err(FrameError::Body(DecodeError::Type { .. }))
        ));
        let frame = raw_frame(Some("#handle"), 1, b"\xa1\x61a\xf9\x3c\x00");
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::Body(DecodeError::Float(3)))
        );
        let frame = raw_frame(Some("#handle"), 1, b"\xa0\xa0");
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::TrailingItem { len: 1 })
        );
        // Unknown re-encodes its header and an empty body
        let ev = Event::Unknown { op: 1, t: "#x" };
        assert_eq!(frame_of(&ev), raw_frame(Some("#x"), 1, b"\xa0"));
        assert_eq!(Event::decode(&frame_of(&ev)), Ok(ev));
        let ev = Event::Unknown { op: 5, t: "" };
        assert_eq!(frame_of(&ev), raw_frame(None, 5, b"\xa0"));
    }

    #[test]
    fn header_rules() {
        let body = info_body();
        // op=1 needs t
        assert_eq!(
            Event::decode(&raw_frame(None, 1, &body)),
            Err(FrameError::MissingType)
        );
        // op is required
        let mut frame = b"\xa1\x61t\x65#info".to_vec();
        frame.extend_from_slice(&body);
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::Header(DecodeError::MissingField("op")))
        );
        // unknown header keys are skipped
        let mut frame = b"\xa3\x61t\x65#info\x62op\x01\x63zzz\xf5".to_vec();
        frame.extend_from_slice(&body);
        assert_eq!(Event::decode(&frame).unwrap().kind(), EventKind::Info);
        // non-canonical header: op before t
        let mut frame = b"\xa2\x62op\x01\x61t\x65#info".to_vec();
        frame.extend_from_slice(&body);
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::Header(DecodeError::KeyOrder(5)))
        );
        // wrong types
        let mut frame = b"\xa2\x61t\x01\x62op\x01".to_vec();
        frame.extend_from_slice(&body);
        assert!(matches!(
            Event::decode(&frame),
            Err(FrameError::Header(DecodeError::Type { .. }))
        ));
        // header not a map
        let mut frame = b"\x01".to_vec();
        frame.extend_from_slice(&body);
        assert!(matches!(
            Event::decode(&frame),
            Err(FrameError::Header(DecodeError::Type { .. }))
        ));
    }

    #[test]
    fn item_count() {
        let frame = frame_of(&identity());
        let (_, body) = decode_header(&frame).unwrap();
        let header_len = frame.len() - body.len();
        // one item: header only
        assert_eq!(
            Event::decode(&frame[..header_len]),
            Err(FrameError::MissingBody)
        );
        // three items
        let mut three = frame.clone();
        three.extend_from_slice(&info_body());
        assert_eq!(
            Event::decode(&three),
            Err(FrameError::TrailingItem {
                len: info_body().len()
            })
        );
        // trailing garbage byte
        let mut extra = frame.clone();
        extra.push(0xff);
        assert_eq!(
            Event::decode(&extra),
            Err(FrameError::TrailingItem { len: 1 })
        );
        // truncated body
        assert!(matches!(
            Event::decode(&frame[..frame.len() - 1]),
            Err(FrameError::Body(DecodeError::Eof(_)))
        ));
        // empty input and garbage
        assert_eq!(
            Event::decode(b""),
            Err(FrameError::Header(DecodeError::Eof(0)))
        );
        assert!(matches!(
            Event::decode(b"\xff\xff\xff"),
            Err(FrameError::Header(_))
        ));
        assert!(Event::decode(b"hello world").is_err());
        // a body that is not a map
        let frame = raw_frame(Some("#info"), 1, b"\x80");
        assert!(matches!(
            Event::decode(&frame),
            Err(FrameError::Body(DecodeError::Type { .. }))
        ));
    }

    #[test]
    fn frame_size_limit() {
        // exactly the limit: fine (an unknown type with one big skipped field)
        let header_len = raw_frame(Some("#x"), 1, b"").len();
        let field_overhead = 1 + 2 + 5; // map head, key "a", 4-byte bytes length
        let payload = vec![0u8; MAX_FRAME_LEN - header_len - field_overhead];
        let body = build_map(&vec![(
            "a".into(),
            Value::Bytes(std::borrow::Cow::Owned(payload)),
        )]);
        let mut frame = raw_frame(Some("#x"), 1, &body);
        assert_eq!(frame.len(), MAX_FRAME_LEN);
        assert_eq!(Event::decode(&frame), Ok(Event::Unknown { op: 1, t: "#x" }));
        // one more byte: refused before parsing (it would be a trailing item)
        frame.push(0);
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::TooLarge { len: 5_000_001 })
        );
        assert_eq!(
            decode_header(&frame),
            Err(FrameError::TooLarge { len: 5_000_001 })
        );
    }

    #[test]
    fn accessors() {
        let ev = identity();
        assert_eq!(ev.seq(), Some(12));
        assert_eq!(ev.did(), Some(DID));
        assert_eq!(ev.repo(), Some(DID));
        assert_eq!(ev.time(), Some(TIME));
        assert_eq!(ev.kind(), EventKind::Identity);
        let err = Event::Error(ErrorFrame {
            error: "FutureCursor",
            message: None,
        });
        assert_eq!((err.seq(), err.did(), err.time()), (None, None, None));
    }

    #[test]
    fn error_messages_say_what_to_fix() {
        assert!(FrameError::MissingBody
            .to_string()
            .contains("header map followed by a body map"));
        assert!(FrameError::TooLarge { len: 5_000_001 }
            .to_string()
            .contains("5000000-byte limit"));
        assert!(FrameError::Body(DecodeError::MissingField("since"))
            .to_string()
            .contains("`since`"));
    }
}
