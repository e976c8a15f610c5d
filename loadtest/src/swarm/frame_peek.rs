//! What a counting subscriber needs from a firehose frame: the header's
//! `op` and `t`, and the body's `seq`, found by walking the CBOR structure
//! without checking it.
//!
//! Why not `atrelay::wire::frame::{decode_header, peek_seq}`: those are the
//! relay's strict decoders. To reach `seq` in a commit they skip `ops`, and
//! a strict skip checks every string's UTF-8 and every CID; profiled in the
//! 1,000-subscriber swarm that was a third of the swarm's CPU, paid once
//! per delivery. Checkers still decode every frame strictly (and so catch
//! a malformed stream); the other subscribers only count, and counting
//! needs the structure, not its validity. Bounds are always checked: a
//! malformed frame is an error here, never a panic or a read past its end.

/// A frame's header fields and `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek<'a> {
    /// `1` for a message, `-1` for an error frame.
    pub op: i64,
    /// The message type (`#commit`, …), as bytes.
    pub t: Option<&'a [u8]>,
    /// The body's `seq`, if it has one (not `#info` or error frames).
    pub seq: Option<i64>,
}

/// The frame is not the CBOR it should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Nesting deeper than any firehose frame has (a commit's ops are at 3).
const MAX_DEPTH: usize = 32;

const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;

/// A cursor over the frame's bytes.
struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Walker<'a> {
    /// One item's head: major type and argument (a length, a value, a tag).
    /// Indefinite lengths are refused (DAG-CBOR has none).
    fn head(&mut self) -> Result<(u8, u64), Malformed> {
        let first = *self.buf.get(self.pos).ok_or(Malformed)?;
        self.pos += 1;
        let (major, info) = (first >> 5, first & 0x1f);
        let extra = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err(Malformed),
        };
        let bytes = self.take(extra)?;
        let arg = bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        Ok((major, arg))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Malformed> {
        let n = usize::try_from(n).map_err(|_| Malformed)?;
        let end = self.pos.checked_add(n).ok_or(Malformed)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Malformed)?;
        self.pos = end;
        Ok(bytes)
    }

    /// Steps over one whole item.
    fn skip(&mut self, depth: usize) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        let (major, arg) = self.head()?;
        match major {
            BYTES | TEXT => {
                self.take(arg)?;
            }
            ARRAY | MAP => {
                let items = if major == MAP {
                    arg.checked_mul(2)
                } else {
                    Some(arg)
                };
                for _ in 0..items.ok_or(Malformed)? {
                    self.skip(depth + 1)?;
                }
            }
            TAG => self.skip(depth + 1)?,
            // Integers, simple values and floats: the head was all of it.
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self) -> Result<&'a [u8], Malformed> {
        match self.head()? {
            (TEXT, len) => self.take(len),
            _ => Err(Malformed),
        }
    }

    fn int(&mut self) -> Result<i64, Malformed> {
        match self.head()? {
            (UNSIGNED, n) => i64::try_from(n).map_err(|_| Malformed),
            (NEGATIVE, n) => i64::try_from(n).map(|n| -1 - n).map_err(|_| Malformed),
            _ => Err(Malformed),
        }
    }

    fn map(&mut self) -> Result<u64, Malformed> {
        match self.head()? {
            (MAP, n) => Ok(n),
            _ => Err(Malformed),
        }
    }
}

/// The header's `op` and `t` and the body's `seq`. The body's keys are in
/// DAG-CBOR order (shorter first, then bytewise), so the walk stops at the
/// first key past `seq` (as `peek_seq` does) and never reaches `blocks`.
pub fn peek(frame: &[u8]) -> Result<Peek<'_>, Malformed> {
    let mut w = Walker { buf: frame, pos: 0 };
    let (mut op, mut t) = (None, None);
    for _ in 0..w.map()? {
        match w.text()? {
            b"op" => op = Some(w.int()?),
            b"t" => t = Some(w.text()?),
            _ => w.skip(1)?,
        }
    }
    let op = op.ok_or(Malformed)?;
    let mut seq = None;
    let n = w.map()?;
    for _ in 0..n {
        let key = w.text()?;
        match (key.len(), key).cmp(&(3, b"seq".as_slice())) {
            std::cmp::Ordering::Less => w.skip(1)?,
            std::cmp::Ordering::Equal => {
                seq = Some(w.int()?);
                break;
            }
            std::cmp::Ordering::Greater => break,
        }
    }
    Ok(Peek { op, t, seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::account::SyntheticAccount;
    use crate::fleet::mix::{Attack, Op, Planned};
    use atrelay::wire::frame::{decode_header, peek_seq, ErrorFrame, Event, Info};

    /// Frames of every kind the relay sends.
    fn frames() -> Vec<Vec<u8>> {
        let mut a = SyntheticAccount::new(5, 1);
        let mut out: Vec<Vec<u8>> = [
            Op::Post,
            Op::Like,
            Op::Follow,
            Op::Repost,
            Op::Profile,
            Op::Delete,
            Op::Identity,
            Op::Account,
            Op::Sync,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, op)| a.event(Planned::Normal(op), 1_000_000_000 + i as i64))
        .collect();
        out.push(a.event(Planned::Attack(Attack::Oversize), 7));
        for event in [
            Event::Info(Info {
                name: "OutdatedCursor",
                message: Some("x"),
            }),
            Event::Error(ErrorFrame {
                error: "ConsumerTooSlow",
                message: None,
            }),
        ] {
            let mut f = Vec::new();
            event.encode(&mut f);
            out.push(f);
        }
        out
    }

    #[test]
    fn agrees_with_the_strict_decoders() {
        for frame in frames() {
            let (header, body) = decode_header(&frame).unwrap();
            let strict = (
                header.op,
                header.t.map(str::as_bytes),
                peek_seq(body).unwrap(),
            );
            let p = peek(&frame).unwrap();
            assert_eq!((p.op, p.t, p.seq), strict);
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for frame in frames() {
            // A prefix may still hold everything up to `seq`; short of
            // that, it must be refused.
            let needed = (1..=frame.len())
                .find(|&n| peek(&frame[..n]) == peek(&frame))
                .unwrap();
            for n in 0..needed {
                assert_eq!(peek(&frame[..n]), Err(Malformed), "cut at {n}");
            }
        }
        assert_eq!(peek(b"\xff\x00"), Err(Malformed));
        // A map claiming 2^63 entries ends at the buffer, not in a loop.
        assert_eq!(
            peek(b"\xa1\x62op\x01\xbb\x7f\xff\xff\xff\xff\xff\xff\xff"),
            Err(Malformed)
        );
        // Nesting past the limit.
        let mut deep = b"\xa2\x62op\x01\x61t\x61x\xa1\x61a".to_vec();
        deep.extend(std::iter::repeat_n(0x81, 100));
        deep.push(0x00);
        assert_eq!(peek(&deep), Err(Malformed));
    }
}
