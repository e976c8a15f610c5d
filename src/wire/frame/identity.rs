//! The `#identity` body: a hint to refresh an account's cached DID document and
//! handle. It does not say what changed.

use super::field::{self, required};
use super::{Body, FrameError};
use crate::wire::cbor::{Decoder, Encoder, KeyOrder};

/// An `#identity` body. Strings borrow from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Stream sequence number.
    pub seq: i64,
    /// The account DID (validated DID syntax).
    pub did: &'a str,
    /// Informal broadcast time (validated datetime syntax).
    pub time: &'a str,
    /// The handle the emitter currently sees (validated handle syntax; may be
    /// `handle.invalid`). Its presence does not mean it changed. A `null` is
    /// read as absent, as the reference relay does.
    pub handle: Option<&'a str>,
}

impl<'a> Identity<'a> {
    /// The header `t` of this body.
    pub const TYPE: &'static str = "#identity";
}

impl<'a> Body<'a> for Identity<'a> {
    /// Reads one `#identity` map from `d`; unknown keys are skipped.
    fn read(d: &mut Decoder<'a>) -> Result<Identity<'a>, FrameError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let (mut seq, mut did, mut time, mut handle) = (None, None, None, None);
        for _ in 0..n {
            match keys.next(d)? {
                "did" => did = Some(field::did("did", d.text()?)?),
                "seq" => seq = Some(d.i64()?),
                "time" => time = Some(field::datetime("time", d.text()?)?),
                "handle" => {
                    handle = match field::nullable_text(d)? {
                        Some(h) => Some(field::handle("handle", h)?),
                        None => None,
                    }
                }
                _ => d.skip()?,
            }
        }
        Ok(Identity {
            seq: required(seq, "seq")?,
            did: required(did, "did")?,
            time: required(time, "time")?,
            handle,
        })
    }

    /// Writes the body map in canonical key order: `did, seq, time, handle`;
    /// `handle` is omitted when `None`.
    fn encode(&self, e: &mut Encoder) {
        e.map(3 + usize::from(self.handle.is_some()));
        e.text("did");
        e.text(self.did);
        e.text("seq");
        e.i64(self.seq);
        e.text("time");
        e.text(self.time);
        if let Some(handle) = self.handle {
            e.text("handle");
            e.text(handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cbor::{DecodeError, Value};
    use crate::wire::frame::testutil::*;
    use crate::wire::frame::Event;

    fn sample() -> Identity<'static> {
        Identity {
            seq: 7,
            did: DID,
            time: TIME,
            handle: Some("alice.bsky.social"),
        }
    }

    fn sample_map() -> Entries {
        let mut body = Vec::new();
        sample().encode(&mut Encoder::new(&mut body));
        map_entries(&body)
    }

    #[test]
    fn round_trip_and_canonical_order() {
        for id in [
            sample(),
            Identity {
                handle: None,
                ..sample()
            },
            Identity {
                handle: Some("handle.invalid"),
                ..sample()
            },
        ] {
            let frame = frame_of(&Event::Identity(id.clone()));
            let (_, body) = crate::wire::frame::decode_header(&frame).unwrap();
            assert_canonical(body);
            let ev = Event::decode(&frame).unwrap();
            assert_eq!(ev, Event::Identity(id));
            assert_eq!(frame_of(&ev), frame);
        }
        let keys: Vec<_> = sample_map().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["did", "seq", "time", "handle"]);
    }

    #[test]
    fn fields() {
        for key in ["did", "seq", "time"] {
            let mut m = sample_map();
            remove(&mut m, key);
            assert_eq!(
                Identity::decode(&build_map(&m)),
                Err(FrameError::Body(DecodeError::MissingField(key)))
            );
        }
        let mut m = sample_map();
        set(&mut m, "handle", Value::Null);
        set(&mut m, "unknown", Value::Int(-3));
        let id = Identity::decode(leak(build_map(&m))).unwrap();
        assert_eq!(id.handle, None);
        set(&mut m, "handle", text("not a handle"));
        assert!(matches!(
            Identity::decode(&build_map(&m)),
            Err(FrameError::Body(DecodeError::InvalidField {
                field: "handle",
                ..
            }))
        ));
    }
}
