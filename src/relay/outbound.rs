//! Outbound frames, encoded by the verifier threads with the relay's seq left
//! open, so the single sequencer thread only splices a seq in.
//!
//! A frame is encoded once with a placeholder seq of a fixed, distinctive
//! 9-byte encoding and split around it. Canonical key order puts `seq` after
//! only short validated text fields (`ops`/`rev` for `#commit`, `did` for the
//! others), which cannot contain the placeholder's bytes, so the first match is
//! the seq. The sequencer then writes the seq over the placeholder in place
//! ([`PendingFrame::into_frame`]) and moves the rest of the frame down over the
//! bytes the real seq does not need: no allocation, no re-encode, and `blocks`
//! stays byte-for-byte.

use bytes::Bytes;

use crate::wire::frame::Event;

/// `"seq"` followed by an 8-byte unsigned integer no real seq uses.
const PLACEHOLDER: [u8; 13] = [
    0x63, b's', b'e', b'q', 0x1b, 0x7f, 0xa5, 0x5a, 0x0f, 0xf0, 0x3c, 0xc3, 0x99,
];
const PLACEHOLDER_SEQ: u64 = 0x7fa5_5a0f_f03c_c399;

/// Encoded length of the placeholder seq value (`0x1b` + 8 bytes).
const PLACEHOLDER_VALUE_LEN: usize = 9;

/// A frame waiting for its relay seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingFrame {
    /// The whole frame with the placeholder seq value.
    buf: Vec<u8>,
    /// Where the placeholder seq value starts (just after the `"seq"` key).
    at: usize,
}

impl PendingFrame {
    /// Encodes `event` (its own `seq` is ignored) with the seq left open.
    /// `None` for events without a seq (`#info`, errors, unknown).
    pub fn new(event: &Event) -> Option<PendingFrame> {
        let mut with_placeholder = event.clone();
        if !with_placeholder.set_seq(PLACEHOLDER_SEQ as i64) {
            return None;
        }
        let mut bytes = Vec::with_capacity(256);
        with_placeholder.encode(&mut bytes);
        let at = bytes
            .windows(PLACEHOLDER.len())
            .position(|w| w == PLACEHOLDER)?;
        Some(PendingFrame {
            buf: bytes,
            at: at + 4, // after `0x63 "seq"`
        })
    }

    /// The finished frame with `seq` spliced in, leaving this one as it is.
    pub fn with_seq(&self, seq: u64) -> Bytes {
        self.clone().into_frame(seq)
    }

    /// The finished frame with `seq` spliced in, in place: the seq overwrites
    /// the placeholder and the rest moves down by what it does not use.
    pub fn into_frame(self, seq: u64) -> Bytes {
        let PendingFrame { mut buf, at } = self;
        let (value, n) = cbor_uint(seq);
        buf[at..at + n].copy_from_slice(&value[..n]);
        if n < PLACEHOLDER_VALUE_LEN {
            buf.copy_within(at + PLACEHOLDER_VALUE_LEN.., at + n);
            buf.truncate(buf.len() - (PLACEHOLDER_VALUE_LEN - n));
        }
        Bytes::from(buf)
    }

    /// Approximate encoded size.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never true: a frame always has a header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The canonical CBOR encoding of the unsigned integer `v` (major type 0,
/// shortest form), on the stack: the bytes and how many are used.
fn cbor_uint(v: u64) -> ([u8; PLACEHOLDER_VALUE_LEN], usize) {
    let mut out = [0u8; PLACEHOLDER_VALUE_LEN];
    let n = match v {
        0..=23 => {
            out[0] = v as u8;
            1
        }
        24..=0xff => {
            out[0] = 0x18;
            out[1] = v as u8;
            2
        }
        0x100..=0xffff => {
            out[0] = 0x19;
            out[1..3].copy_from_slice(&(v as u16).to_be_bytes());
            3
        }
        0x1_0000..=0xffff_ffff => {
            out[0] = 0x1a;
            out[1..5].copy_from_slice(&(v as u32).to_be_bytes());
            5
        }
        _ => {
            out[0] = 0x1b;
            out[1..9].copy_from_slice(&v.to_be_bytes());
            9
        }
    };
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{Account, Identity};

    #[test]
    fn spliced_frames_equal_direct_encoding() {
        let events = [
            Event::Identity(Identity {
                seq: 5,
                did: "did:plc:abcdefghijklmnopqrstuvwx",
                time: "2026-11-24T12:00:00.000Z",
                handle: Some("alice.example.com"),
            }),
            Event::Account(Account {
                seq: 5,
                did: "did:plc:abcdefghijklmnopqrstuvwx",
                time: "2026-11-24T12:00:00.000Z",
                active: false,
                status: Some("deactivated"),
            }),
        ];
        for ev in events {
            let pending = PendingFrame::new(&ev).unwrap();
            for seq in [
                1u64,
                23,
                24,
                255,
                256,
                65_535,
                65_536,
                u32::MAX as u64,
                1 << 32,
                1 << 40,
                i64::MAX as u64,
            ] {
                let mut direct = ev.clone();
                direct.set_seq(seq as i64);
                let mut want = Vec::new();
                direct.encode(&mut want);
                assert_eq!(&pending.with_seq(seq)[..], &want[..], "seq {seq}");
                assert_eq!(&pending.clone().into_frame(seq)[..], &want[..], "seq {seq}");
                assert_eq!(
                    Event::decode(&pending.with_seq(seq)).unwrap().seq(),
                    Some(seq as i64)
                );
            }
        }
    }
}
