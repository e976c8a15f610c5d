//! The recording file: a firehose captured frame by frame, compact and
//! streamable.
//!
//! ```text
//! file    = magic *entry
//! magic   = "ATRREC01"
//! entry   = frame / doc
//! frame   = 0x01 varint(µs since the previous frame) varint(len) bytes   ; the frame as received
//! doc     = 0x02 varint(len) json                                         ; {"did": …, "doc": {…}}
//! ```
//!
//! Frames are stored as received (no re-encoding), so a recording of a real
//! relay replays byte-for-byte. DID documents captured during recording let a
//! replay serve them locally, so the original signatures still verify.

use std::io::{self, BufRead, Read, Write};

use atrelay::wire::frame::MAX_FRAME_LEN;
use serde_json::Value;

pub const MAGIC: &[u8; 8] = b"ATRREC01";
const TAG_FRAME: u8 = 1;
const TAG_DOC: u8 = 2;
/// Longest entry accepted when reading (the firehose's frame limit, plus room
/// for the entry's own header).
const MAX_ENTRY: u64 = MAX_FRAME_LEN as u64 + 1_024;

/// One entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Frame { delta_micros: u64, bytes: Vec<u8> },
    Doc { did: String, doc: Value },
}

fn put_varint(out: &mut impl Write, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[i] = b;
            i += 1;
            break;
        }
        buf[i] = b | 0x80;
        i += 1;
    }
    out.write_all(&buf[..i])
}

fn get_varint(r: &mut impl Read) -> io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "varint too long",
    ))
}

/// Writes entries after the magic.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        Ok(Writer { out })
    }

    pub fn frame(&mut self, delta_micros: u64, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(&[TAG_FRAME])?;
        put_varint(&mut self.out, delta_micros)?;
        put_varint(&mut self.out, bytes.len() as u64)?;
        self.out.write_all(bytes)
    }

    pub fn doc(&mut self, did: &str, doc: &Value) -> io::Result<()> {
        let json = serde_json::to_vec(&serde_json::json!({"did": did, "doc": doc}))?;
        self.out.write_all(&[TAG_DOC])?;
        put_varint(&mut self.out, json.len() as u64)?;
        self.out.write_all(&json)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads entries; checks the magic first.
pub struct Reader<R: BufRead> {
    input: R,
}

impl<R: BufRead> Reader<R> {
    pub fn new(mut input: R) -> io::Result<Reader<R>> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an atrelay recording (bad magic)",
            ));
        }
        Ok(Reader { input })
    }

    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let len = get_varint(&mut self.input)?;
        if len > MAX_ENTRY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry of {len} bytes is over the {MAX_ENTRY}-byte limit"),
            ));
        }
        let mut bytes = vec![0u8; len as usize];
        self.input.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    /// The next entry; `Ok(None)` at a clean end of file.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if self.input.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.input.read_exact(&mut tag)?;
        match tag[0] {
            TAG_FRAME => {
                let delta_micros = get_varint(&mut self.input)?;
                let bytes = self.bytes()?;
                Ok(Some(Entry::Frame {
                    delta_micros,
                    bytes,
                }))
            }
            TAG_DOC => {
                let json: Value = serde_json::from_slice(&self.bytes()?)?;
                let did = json["did"]
                    .as_str()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "doc without did"))?
                    .to_owned();
                Ok(Some(Entry::Doc {
                    did,
                    doc: json["doc"].clone(),
                }))
            }
            t => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown entry tag {t}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_input_is_an_error() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.frame(0, b"abc").unwrap();
        w.doc("did:plc:x", &serde_json::json!({"id": "did:plc:x"}))
            .unwrap();
        w.frame(300_000_000, &[7u8; 200]).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(
            r.next_entry().unwrap(),
            Some(Entry::Frame {
                delta_micros: 0,
                bytes: b"abc".to_vec()
            })
        );
        assert!(
            matches!(r.next_entry().unwrap(), Some(Entry::Doc { did, .. }) if did == "did:plc:x")
        );
        assert!(
            matches!(r.next_entry().unwrap(), Some(Entry::Frame { delta_micros: 300_000_000, bytes }) if bytes.len() == 200)
        );
        assert_eq!(r.next_entry().unwrap(), None);

        assert!(Reader::new(&b"NOTAREC!"[..]).is_err());
        let truncated = &bytes[..bytes.len() - 5];
        let mut r = Reader::new(truncated).unwrap();
        r.next_entry().unwrap();
        r.next_entry().unwrap();
        assert!(r.next_entry().is_err());
        let mut huge = MAGIC.to_vec();
        huge.push(TAG_FRAME);
        huge.push(0);
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(Reader::new(&huge[..]).unwrap().next_entry().is_err());
    }
}
