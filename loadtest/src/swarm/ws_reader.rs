//! Splits a socket's byte stream, chunk by chunk, into WebSocket messages.
//!
//! ```text
//! read 64 KiB ─▶ [frame][frame][frame][fra│  ─▶ payloads handed out in place
//!                                      └── kept in `carry` until the next chunk
//! ```
//!
//! Why this shape: the swarm reads big chunks into one buffer shared by
//! every socket of a thread, so a frame's payload is handed to the caller
//! as a slice of that chunk, never copied. Only a frame cut by the chunk's
//! end is copied (into the connection's `carry`, whose capacity is kept),
//! and only fragmented messages are assembled (the relay sends none, but
//! the RFC allows them). No allocation per frame once `carry` has grown.

use super::ws_frame::{
    parse_head, FrameError, Head, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT,
};

/// What the reader hands its caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// A whole binary message (a firehose frame).
    Binary(&'a [u8]),
    /// A whole text message (not part of the firehose; counted by nobody).
    Text(&'a [u8]),
    /// The caller answers with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// The server is closing: the payload is its status code and reason.
    /// Nothing after it is read.
    Close(&'a [u8]),
}

/// Whether the stream goes on after a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fed {
    More,
    /// A close frame arrived; the rest of the chunk was ignored.
    Closed,
}

/// Per-connection reading state; reset with [`FrameReader::reset`] on a
/// new connection (keeping capacity).
#[derive(Default)]
pub struct FrameReader {
    /// The start of a frame that the previous chunk cut off.
    carry: Vec<u8>,
    /// Payloads of a fragmented message so far.
    message: Vec<u8>,
    /// The opcode of the fragmented message being assembled, if any.
    message_opcode: Option<u8>,
}

/// `carry` capacity above which it is released once empty: a rare huge
/// frame should not pin megabytes on each of thousands of connections.
const KEEP_CAPACITY: usize = 256 << 10;

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Forgets a half-read frame or message (a new connection starts clean).
    pub fn reset(&mut self) {
        self.carry.clear();
        self.message.clear();
        self.message_opcode = None;
    }

    /// Bytes held over from earlier chunks (a cut frame, a partial message).
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.carry.len() + self.message.len()
    }

    /// Reads every complete frame in `chunk` (after the one `carry` holds
    /// the start of), calling `on` for each message, ping and close, and
    /// keeps a trailing partial frame for the next call.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on: impl FnMut(Received<'_>),
    ) -> Result<Fed, FrameError> {
        if !self.carry.is_empty() {
            // Complete the cut frame from the chunk's start: first its head,
            // then its payload, copying only what that frame needs.
            let head = loop {
                match parse_head(&self.carry)? {
                    Some(head) => break head,
                    None => {
                        let Some((&b, rest)) = chunk.split_first() else {
                            return Ok(Fed::More);
                        };
                        self.carry.push(b);
                        chunk = rest;
                    }
                }
            };
            let take = (head.frame_len() - self.carry.len()).min(chunk.len());
            self.carry.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.carry.len() < head.frame_len() {
                return Ok(Fed::More);
            }
            let carry = std::mem::take(&mut self.carry);
            let fed = self.dispatch(head, &carry[head.head_len..], &mut on);
            self.carry = carry;
            self.carry.clear();
            if self.carry.capacity() > KEEP_CAPACITY {
                self.carry = Vec::new();
            }
            if fed? == Fed::Closed {
                return Ok(Fed::Closed);
            }
        }
        while let Some(head) = parse_head(chunk)? {
            if chunk.len() < head.frame_len() {
                break;
            }
            let (frame, rest) = chunk.split_at(head.frame_len());
            if self.dispatch(head, &frame[head.head_len..], &mut on)? == Fed::Closed {
                return Ok(Fed::Closed);
            }
            chunk = rest;
        }
        self.carry.extend_from_slice(chunk);
        Ok(Fed::More)
    }

    /// One complete frame: control frames go out at once (they may come
    /// between a message's fragments), data frames whole or assembled.
    fn dispatch(
        &mut self,
        head: Head,
        payload: &[u8],
        on: &mut impl FnMut(Received<'_>),
    ) -> Result<Fed, FrameError> {
        match head.opcode {
            OP_PING => on(Received::Ping(payload)),
            OP_CLOSE => {
                on(Received::Close(payload));
                return Ok(Fed::Closed);
            }
            OP_TEXT | OP_BINARY => {
                if self.message_opcode.is_some() {
                    return Err(FrameError::BadFragment);
                }
                if head.fin {
                    on(message(head.opcode, payload));
                } else {
                    self.message.clear();
                    self.message.extend_from_slice(payload);
                    self.message_opcode = Some(head.opcode);
                }
            }
            OP_CONTINUATION => {
                let Some(opcode) = self.message_opcode else {
                    return Err(FrameError::BadFragment);
                };
                self.message.extend_from_slice(payload);
                if head.fin {
                    on(message(opcode, &self.message));
                    self.message.clear();
                    self.message_opcode = None;
                }
            }
            // Pongs answer pings we never send.
            _ => {}
        }
        Ok(Fed::More)
    }
}

fn message(opcode: u8, payload: &[u8]) -> Received<'_> {
    if opcode == OP_BINARY {
        Received::Binary(payload)
    } else {
        Received::Text(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ws_frame::{encode_server_frame, OP_PONG};
    use super::*;

    /// What a reader reports, owned, for comparing runs.
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Binary(Vec<u8>),
        Text(Vec<u8>),
        Ping(Vec<u8>),
        Close(Vec<u8>),
    }

    fn collect(reader: &mut FrameReader, chunks: &[&[u8]]) -> (Vec<Got>, Fed) {
        let mut got = Vec::new();
        let mut fed = Fed::More;
        for chunk in chunks {
            fed = reader
                .feed(chunk, |r| {
                    got.push(match r {
                        Received::Binary(p) => Got::Binary(p.to_vec()),
                        Received::Text(p) => Got::Text(p.to_vec()),
                        Received::Ping(p) => Got::Ping(p.to_vec()),
                        Received::Close(p) => Got::Close(p.to_vec()),
                    })
                })
                .unwrap();
            if fed == Fed::Closed {
                break;
            }
        }
        (got, fed)
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Lengths in every form: 7-bit, 16-bit, 64-bit.
    const LONG: [usize; 8] = [0, 1, 125, 126, 1_000, 65_535, 65_536, 70_000];
    /// Short enough to cut at every byte; the 64-bit form comes from the
    /// non-minimal frame every stream has.
    const SHORT: [usize; 5] = [0, 1, 125, 126, 700];

    /// A stream of binary frames of `lengths`, one more whose 200-byte
    /// payload has a 64-bit length (legal to parse, if not minimal), a ping
    /// between two fragments of a message, a pong, a text frame, and a
    /// close at the end.
    fn stream(lengths: &[usize]) -> (Vec<u8>, Vec<Got>) {
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for (i, &len) in lengths.iter().enumerate() {
            let p = payload(len, i as u8);
            encode_server_frame(&mut bytes, true, OP_BINARY, &p);
            want.push(Got::Binary(p));
        }
        let p = payload(200, 99);
        bytes.extend_from_slice(&[0x82, 127]);
        bytes.extend_from_slice(&200u64.to_be_bytes());
        bytes.extend_from_slice(&p);
        want.push(Got::Binary(p));
        encode_server_frame(&mut bytes, true, OP_PING, b"are you there");
        want.push(Got::Ping(b"are you there".to_vec()));
        let (a, b, c) = (payload(300, 1), payload(5, 2), payload(70, 3));
        encode_server_frame(&mut bytes, false, OP_BINARY, &a);
        encode_server_frame(&mut bytes, true, OP_PING, b"");
        want.push(Got::Ping(Vec::new()));
        encode_server_frame(&mut bytes, false, OP_CONTINUATION, &b);
        encode_server_frame(&mut bytes, true, OP_PONG, b"x");
        encode_server_frame(&mut bytes, true, OP_CONTINUATION, &c);
        want.push(Got::Binary([a, b, c].concat()));
        encode_server_frame(&mut bytes, true, OP_TEXT, b"hi");
        want.push(Got::Text(b"hi".to_vec()));
        encode_server_frame(&mut bytes, true, OP_CLOSE, &[0x03, 0xe8]);
        want.push(Got::Close(vec![0x03, 0xe8]));
        (bytes, want)
    }

    #[test]
    fn whole_stream_in_one_chunk() {
        let (bytes, want) = stream(&LONG);
        let (got, fed) = collect(&mut FrameReader::new(), &[&bytes]);
        assert_eq!(got, want);
        assert_eq!(fed, Fed::Closed);
    }

    #[test]
    fn split_at_every_byte_offset() {
        let (bytes, want) = stream(&SHORT);
        let mut reader = FrameReader::new();
        for cut in 0..=bytes.len() {
            reader.reset();
            let (a, b) = bytes.split_at(cut);
            let (got, fed) = collect(&mut reader, &[a, b]);
            assert_eq!(fed, Fed::Closed, "cut at {cut}");
            assert!(got == want, "cut at {cut}");
        }
    }

    #[test]
    fn one_byte_at_a_time_and_in_odd_chunks() {
        let (bytes, want) = stream(&LONG);
        let ones: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(collect(&mut FrameReader::new(), &ones).0, want);
        for size in [2, 3, 7, 13, 125, 4_096, 65_536] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            assert_eq!(collect(&mut FrameReader::new(), &chunks).0, want, "{size}");
        }
    }

    #[test]
    fn a_partial_frame_waits_and_nothing_after_close_is_read() {
        let mut bytes = Vec::new();
        encode_server_frame(&mut bytes, true, OP_BINARY, b"abc");
        let mut reader = FrameReader::new();
        let (got, _) = collect(&mut reader, &[&bytes[..4]]);
        assert!(got.is_empty());
        assert_eq!(reader.buffered(), 4);
        let (got, _) = collect(&mut reader, &[&bytes[4..]]);
        assert_eq!(got, [Got::Binary(b"abc".to_vec())]);
        assert_eq!(reader.buffered(), 0);

        let mut closing = Vec::new();
        encode_server_frame(&mut closing, true, OP_CLOSE, b"");
        encode_server_frame(&mut closing, true, OP_BINARY, b"late");
        let (got, fed) = collect(&mut FrameReader::new(), &[&closing]);
        assert_eq!((got, fed), (vec![Got::Close(Vec::new())], Fed::Closed));
    }

    #[test]
    fn fragments_out_of_order_are_refused() {
        let mut lone = Vec::new();
        encode_server_frame(&mut lone, true, OP_CONTINUATION, b"x");
        assert_eq!(
            FrameReader::new().feed(&lone, |_| {}),
            Err(FrameError::BadFragment)
        );
        let mut nested = Vec::new();
        encode_server_frame(&mut nested, false, OP_BINARY, b"x");
        encode_server_frame(&mut nested, true, OP_BINARY, b"y");
        assert_eq!(
            FrameReader::new().feed(&nested, |_| {}),
            Err(FrameError::BadFragment)
        );
    }
}
