//! The emit timestamp: how an emulated host tells every subscriber when an
//! event left it, so end-to-end latency can be measured across processes
//! (the load generator's swarm, the pipeline bench's subscribers).
//!
//! Frames are signed and encoded ahead of time with a placeholder `time` of a
//! fixed width (27 bytes, microsecond precision). When a host writes the
//! frame to its socket it overwrites the placeholder with the current time,
//! in place, in a copy of the frame. `time` is a frame field, outside the
//! signed commit, so the signature stays valid; the relay keeps it when it
//! re-sequences the event, and a subscriber reads it back on receipt.
//!
//! Canonical DAG-CBOR orders `time` before `blocks`, so the first match of
//! the key + placeholder is the field, never record content.

pub use crate::clock::now_micros;
use crate::wire::syntax::{format_datetime_micros, parse_datetime};

/// A valid datetime of the final width; no real event carries it.
pub const PLACEHOLDER: &str = "1970-01-01T00:00:00.000001Z";

/// `"time"` as a CBOR text key, then the 27-byte text header.
const KEY_AND_HEADER: [u8; 7] = [0x64, b't', b'i', b'm', b'e', 0x78, 27];

/// Where the placeholder's bytes start in `frame`, if it has one.
pub fn locate(frame: &[u8]) -> Option<u32> {
    let mut needle = KEY_AND_HEADER.to_vec();
    needle.extend_from_slice(PLACEHOLDER.as_bytes());
    frame
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .map(|at| (at + KEY_AND_HEADER.len()) as u32)
}

/// Writes `micros` as the frame's time at `at` (from [`locate`]).
pub fn stamp(frame: &mut [u8], at: u32, micros: u64) {
    let text = format_micros(micros);
    let at = at as usize;
    if text.len() == PLACEHOLDER.len() && at + text.len() <= frame.len() {
        frame[at..at + text.len()].copy_from_slice(text.as_bytes());
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: the library's millisecond form with the
/// microseconds appended, so every stamp has the placeholder's width.
fn format_micros(micros: u64) -> String {
    let millis = format_datetime_micros(micros);
    format!("{}{:03}Z", &millis[..millis.len() - 1], micros % 1_000)
}

/// The emit time in a received `time` field, in µs; `None` for a time that
/// was never stamped (the placeholder) or cannot be read.
pub fn emitted_at(time: &str) -> Option<u64> {
    if time == PLACEHOLDER {
        return None;
    }
    parse_datetime(time)
        .ok()
        .and_then(|t| u64::try_from(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{Event, Identity};

    #[test]
    fn stamping_rewrites_only_the_time_field() {
        let ev = Event::Identity(Identity {
            seq: 5,
            did: "did:plc:abcdefghijklmnopqrstuvwx",
            time: PLACEHOLDER,
            handle: Some("a.test"),
        });
        let mut frame = Vec::new();
        ev.encode(&mut frame);
        let at = locate(&frame).expect("placeholder found");
        stamp(&mut frame, at, 1_764_000_000_123_456);
        let Event::Identity(back) = Event::decode(&frame).unwrap() else {
            panic!("not an identity")
        };
        assert_eq!(back.seq, 5);
        assert_eq!(back.handle, Some("a.test"));
        assert_eq!(emitted_at(back.time), Some(1_764_000_000_123_456));
        assert_eq!(emitted_at(PLACEHOLDER), None);
    }
}
