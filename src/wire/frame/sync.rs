//! The `#sync` body: "this is the repo's current state", carrying only the
//! signed commit block. It may break continuity with earlier commits.

use super::field::{self, required};
use super::{Body, FrameError};
use crate::wire::cbor::{Decoder, Encoder, KeyOrder};

/// Longest `#sync.blocks`, in bytes: the lexicon's `maxLength` of 10,000 (the
/// CAR holds only the commit block). The reference relay checks the looser
/// `#commit` limit instead; we follow the lexicon.
pub const MAX_SYNC_BLOCKS_LEN: usize = 10_000;

/// A `#sync` body. Strings and `blocks` borrow from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sync<'a> {
    /// Stream sequence number.
    pub seq: i64,
    /// The account DID (validated DID syntax).
    pub did: &'a str,
    /// A CAR whose only block is the signed commit, its first root. Borrowed
    /// untouched.
    pub blocks: &'a [u8],
    /// The commit's revision. The lexicon gives it no `format`, but it is a
    /// commit `rev`, so TID syntax is enforced.
    pub rev: &'a str,
    /// Informal broadcast time (validated datetime syntax).
    pub time: &'a str,
}

impl<'a> Sync<'a> {
    /// The header `t` of this body.
    pub const TYPE: &'static str = "#sync";
}

impl<'a> Body<'a> for Sync<'a> {
    /// Reads one `#sync` map from `d`; unknown keys are skipped.
    fn read(d: &mut Decoder<'a>) -> Result<Sync<'a>, FrameError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let (mut seq, mut did, mut blocks, mut rev, mut time) = (None, None, None, None, None);
        for _ in 0..n {
            match keys.next(d)? {
                "did" => did = Some(field::did("did", d.text()?)?),
                "rev" => rev = Some(field::tid("rev", d.text()?)?),
                "seq" => seq = Some(d.i64()?),
                "time" => time = Some(field::datetime("time", d.text()?)?),
                "blocks" => {
                    let b = d.bytes()?;
                    if b.len() > MAX_SYNC_BLOCKS_LEN {
                        return Err(FrameError::BlocksTooLarge {
                            event: Sync::TYPE,
                            len: b.len(),
                            max: MAX_SYNC_BLOCKS_LEN,
                        });
                    }
                    blocks = Some(b);
                }
                _ => d.skip()?,
            }
        }
        Ok(Sync {
            seq: required(seq, "seq")?,
            did: required(did, "did")?,
            blocks: required(blocks, "blocks")?,
            rev: required(rev, "rev")?,
            time: required(time, "time")?,
        })
    }

    /// Writes the body map in canonical key order: `did, rev, seq, time,
    /// blocks`.
    fn encode(&self, e: &mut Encoder) {
        e.map(5);
        e.text("did");
        e.text(self.did);
        e.text("rev");
        e.text(self.rev);
        e.text("seq");
        e.i64(self.seq);
        e.text("time");
        e.text(self.time);
        e.text("blocks");
        e.bytes(self.blocks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cbor::{DecodeError, Value};
    use crate::wire::frame::testutil::*;
    use crate::wire::frame::Event;

    fn sample() -> Sync<'static> {
        Sync {
            seq: 42,
            did: DID,
            blocks: b"\x3a\xa2a commit",
            rev: REV,
            time: TIME,
        }
    }

    fn sample_map() -> Entries {
        let mut body = Vec::new();
        sample().encode(&mut Encoder::new(&mut body));
        map_entries(&body)
    }

    #[test]
    fn round_trip_and_canonical_order() {
        let frame = frame_of(&Event::Sync(sample()));
        let (header, body) = crate::wire::frame::decode_header(&frame).unwrap();
        assert_eq!(header, crate::wire::frame::Header::message("#sync"));
        assert_canonical(body);
        let keys: Vec<_> = map_entries(body).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["did", "rev", "seq", "time", "blocks"]);
        let ev = Event::decode(&frame).unwrap();
        assert_eq!(ev, Event::Sync(sample()));
        assert_eq!(frame_of(&ev), frame);
    }

    #[test]
    fn required_fields_and_unknown_fields() {
        for key in ["did", "rev", "seq", "time", "blocks"] {
            let mut m = sample_map();
            remove(&mut m, key);
            assert_eq!(
                Sync::decode(&build_map(&m)),
                Err(FrameError::Body(DecodeError::MissingField(key)))
            );
        }
        let mut m = sample_map();
        set(&mut m, "newField", Value::Map(vec![]));
        assert_eq!(Sync::decode(leak(build_map(&m))), Ok(sample()));
        set(&mut m, "did", text("did:bad"));
        assert!(matches!(
            Sync::decode(&build_map(&m)),
            Err(FrameError::Body(DecodeError::InvalidField {
                field: "did",
                ..
            }))
        ));
    }

    #[test]
    fn blocks_limit_is_the_lexicons() {
        let big = vec![1u8; MAX_SYNC_BLOCKS_LEN + 1];
        let ok = Sync {
            blocks: &big[..MAX_SYNC_BLOCKS_LEN],
            ..sample()
        };
        assert_eq!(
            Event::decode(&frame_of(&Event::Sync(ok.clone()))),
            Ok(Event::Sync(ok))
        );
        let frame = frame_of(&Event::Sync(Sync {
            blocks: &big,
            ..sample()
        }));
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::BlocksTooLarge {
                event: "#sync",
                len: 10_001,
                max: 10_000
            })
        );
    }
}
