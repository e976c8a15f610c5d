//! Outbound frames, encoded by the verifier threads with the relay's seq left
//! open, so the single sequencer thread only splices a seq in.
//!
//! A frame is encoded once with a placeholder seq of a fixed, distinctive
//! 9-byte encoding and split around it. Canonical key order puts `seq` after
//! only short validated text fields (`ops`/`rev` for `#commit`, `did` for the
//! others), which cannot contain the placeholder's bytes, so the first match is
//! the seq. The sequencer then writes `head + seq + tail` into one buffer:
//! one copy, no re-encode, and `blocks` stays byte-for-byte.

use bytes::Bytes;

use crate::wire::cbor::Encoder;
use crate::wire::frame::Event;

/// `"seq"` followed by an 8-byte unsigned integer no real seq uses.
const PLACEHOLDER: [u8; 13] = [
    0x63, b's', b'e', b'q', 0x1b, 0x7f, 0xa5, 0x5a, 0x0f, 0xf0, 0x3c, 0xc3, 0x99,
];
const PLACEHOLDER_SEQ: u64 = 0x7fa5_5a0f_f03c_c399;

/// A frame waiting for its relay seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingFrame {
    /// Everything up to and including the `"seq"` key.
    head: Vec<u8>,
    /// Everything after the seq value.
    tail: Vec<u8>,
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
        let tail = bytes.split_off(at + PLACEHOLDER.len());
        bytes.truncate(at + 4); // keep `0x63 "seq"`
        Some(PendingFrame { head: bytes, tail })
    }

    /// The finished frame with `seq` spliced in.
    pub fn with_seq(&self, seq: u64) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + 9 + self.tail.len());
        out.extend_from_slice(&self.head);
        Encoder::new(&mut out).u64(seq);
        out.extend_from_slice(&self.tail);
        Bytes::from(out)
    }

    /// Approximate encoded size.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len() + 9
    }

    /// Never true: a frame always has a header.
    pub fn is_empty(&self) -> bool {
        false
    }
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
            for seq in [1u64, 23, 24, 255, 256, 65_536, 1 << 40] {
                let mut direct = ev.clone();
                direct.set_seq(seq as i64);
                let mut want = Vec::new();
                direct.encode(&mut want);
                assert_eq!(&pending.with_seq(seq)[..], &want[..], "seq {seq}");
                assert_eq!(
                    Event::decode(&pending.with_seq(seq)).unwrap().seq(),
                    Some(seq as i64)
                );
            }
        }
    }
}
