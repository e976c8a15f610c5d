//! The `#info` body: an informational message from the server, such as
//! `OutdatedCursor`. It has no `seq` and is not persisted.

use super::field::{self, required};
use super::{Body, FrameError};
use crate::wire::cbor::{Decoder, Encoder, KeyOrder};

/// An `#info` body. Strings borrow from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info<'a> {
    /// The message name; the one known value is `OutdatedCursor`. Open set,
    /// not validated.
    pub name: &'a str,
    /// Human-readable detail. A `null` is read as absent.
    pub message: Option<&'a str>,
}

impl<'a> Info<'a> {
    /// The header `t` of this body.
    pub const TYPE: &'static str = "#info";

    /// The `name` sent before replaying from the oldest retained event when a
    /// cursor is older than the retention window.
    pub const OUTDATED_CURSOR: &'static str = "OutdatedCursor";
}

impl<'a> Body<'a> for Info<'a> {
    /// Reads one `#info` map from `d`; unknown keys are skipped.
    fn read(d: &mut Decoder<'a>) -> Result<Info<'a>, FrameError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let (mut name, mut message) = (None, None);
        for _ in 0..n {
            match keys.next(d)? {
                "name" => name = Some(d.text()?),
                "message" => message = field::nullable_text(d)?,
                _ => d.skip()?,
            }
        }
        Ok(Info {
            name: required(name, "name")?,
            message,
        })
    }

    /// Writes the body map in canonical key order: `name, message`; `message`
    /// is omitted when `None`.
    fn encode(&self, e: &mut Encoder) {
        e.map(1 + usize::from(self.message.is_some()));
        e.text("name");
        e.text(self.name);
        if let Some(message) = self.message {
            e.text("message");
            e.text(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cbor::{DecodeError, Value};
    use crate::wire::frame::testutil::*;
    use crate::wire::frame::Event;

    #[test]
    fn round_trip_and_canonical_order() {
        for info in [
            Info {
                name: Info::OUTDATED_CURSOR,
                message: Some("cursor is older than the backfill window"),
            },
            Info {
                name: "Whatever",
                message: None,
            },
        ] {
            let frame = frame_of(&Event::Info(info.clone()));
            let (_, body) = crate::wire::frame::decode_header(&frame).unwrap();
            assert_canonical(body);
            let ev = Event::decode(&frame).unwrap();
            assert_eq!(ev.seq(), None);
            assert_eq!(ev, Event::Info(info));
            assert_eq!(frame_of(&ev), frame);
        }
    }

    #[test]
    fn fields() {
        let mut m: Entries = vec![("message".into(), text("hi"))];
        assert_eq!(
            Info::decode(&build_map(&m)),
            Err(FrameError::Body(DecodeError::MissingField("name")))
        );
        set(&mut m, "name", text("OutdatedCursor"));
        set(&mut m, "message", Value::Null);
        set(&mut m, "seq", Value::Int(5));
        assert_eq!(
            Info::decode(leak(build_map(&m))),
            Ok(Info {
                name: "OutdatedCursor",
                message: None
            })
        );
    }
}
