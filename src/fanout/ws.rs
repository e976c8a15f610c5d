//! The WebSocket wire format (RFC 6455), server side, as much as a firehose
//! needs: headers for the frames we send, a strict parser for the frames a
//! client sends, close payloads, and the handshake's accept key.
//!
//! Why not a WebSocket library for the server side: a library owns the
//! payload it sends (one copy per subscriber per frame) and writes one frame
//! per call. The firehose sends the *same* bytes to thousands of sockets, so
//! we write headers computed on the stack next to the shared `Bytes` from the
//! ring, many frames per `writev` (see [`FrameQueue`](super::FrameQueue)).
//!
//! ```
//! use atrelay::fanout::ws::{accept_key, frame_header, OP_BINARY};
//!
//! // RFC 6455 §1.3's example
//! assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//!
//! let mut header = [0u8; 10];
//! let n = frame_header(OP_BINARY, 300, &mut header);
//! assert_eq!(&header[..n], &[0x82, 126, 0x01, 0x2c]); // FIN|binary, 16-bit length
//! ```

use bytes::Bytes;
use thiserror::Error;

/// Continuation frame opcode.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode: every firehose message is one.
pub const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// Close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: the peer broke the protocol (malformed frame).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: a text payload (here: a close reason) that is not UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code: policy violation. The reference implementation uses it after
/// an error frame (`FutureCursor`, `ConsumerTooSlow`), with the error name as
/// the reason.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: a client frame larger than we accept.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: the server hit an internal error (e.g. the log is unreadable).
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Longest control-frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest frame header a client can send: 2 + 8 (64-bit length) + 4 (mask).
pub const MAX_CLIENT_HEADER: usize = 14;

/// The `Sec-WebSocket-Accept` value answering a client's `Sec-WebSocket-Key`
/// (base64 of SHA-1 over the key and the RFC's GUID). Surrounding whitespace
/// in the header value is ignored.
pub fn accept_key(sec_websocket_key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(
        sec_websocket_key.trim().as_bytes(),
    )
}

/// Appends a complete client frame (FIN set, masked with `mask`) carrying
/// `payload` to `out`: the other side of [`parse_client_frame`], for
/// firehose clients (the load generator's swarm) and tests.
pub fn encode_client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// Writes the header of a final (FIN), unmasked server frame with `opcode`
/// and a payload of `len` bytes into `buf`; returns the header length (2, 4
/// or 10 bytes).
#[inline]
pub fn frame_header(opcode: u8, len: usize, buf: &mut [u8; 10]) -> usize {
    buf[0] = 0x80 | (opcode & 0x0f);
    if len < 126 {
        buf[1] = len as u8;
        2
    } else if len <= u16::MAX as usize {
        buf[1] = 126;
        buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        buf[1] = 127;
        buf[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Header length [`frame_header`] uses for a `len`-byte payload.
#[inline]
pub fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= u16::MAX as usize {
        4
    } else {
        10
    }
}

/// A close-frame payload: the code, then `reason` cut to fit the 125-byte
/// control-frame limit (at a character boundary).
pub fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = Vec::with_capacity(2 + end);
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(&reason.as_bytes()[..end]);
    Bytes::from(v)
}

/// Why a client's bytes are not an acceptable WebSocket frame. Each maps to
/// the close code we answer with ([`WsError::close_code`]).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WsError {
    /// The frame breaks RFC 6455 (unmasked, reserved bits or opcode, bad
    /// fragmentation, oversized control frame, bad close code). Close 1002.
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    /// A frame larger than the server accepts from a client. Close 1009.
    #[error("client frame of {len} bytes exceeds the {max}-byte limit")]
    TooBig {
        /// Announced payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A close reason that is not UTF-8. Close 1007.
    #[error("close reason is not valid UTF-8")]
    InvalidUtf8,
}

impl WsError {
    /// The close code to send before dropping the connection.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::Protocol(_) => CLOSE_PROTOCOL_ERROR,
            WsError::TooBig { .. } => CLOSE_TOO_BIG,
            WsError::InvalidUtf8 => CLOSE_INVALID_PAYLOAD,
        }
    }
}

/// A complete client frame, unmasked in place, borrowing its payload.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// A ping: answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (e.g. answering our idle ping): proof of life, nothing to do.
    Pong,
    /// A close, with the status code if the client sent one.
    Close(Option<u16>),
    /// A text, binary or continuation frame: the firehose is one-way, so the
    /// content is ignored (as the spec says servers do).
    Data,
}

/// The result of trying to parse one frame from the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole frame, occupying the first `len` bytes of the buffer.
    Frame {
        /// The frame.
        frame: ClientFrame<'a>,
        /// Bytes it occupied (header and payload).
        len: usize,
    },
    /// Not a whole frame yet: at least this many bytes in total are needed.
    Need(usize),
}

/// Fragmentation state across client frames: whether a fragmented text or
/// binary message is in progress (so a continuation frame is expected).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadState {
    in_message: bool,
}

/// Parses one client frame from the start of `buf`, unmasking its payload in
/// place. Strict: client frames must be masked, have no reserved bits, no
/// reserved opcodes, proper fragmentation, control frames final and ≤ 125
/// bytes, valid close codes and UTF-8 close reasons. Payloads longer than
/// `max_payload` are refused from the header alone, before they are read.
pub fn parse_client_frame<'a>(
    buf: &'a mut [u8],
    max_payload: usize,
    state: &mut ReadState,
) -> Result<Parsed<'a>, WsError> {
    if buf.len() < 2 {
        return Ok(Parsed::Need(2));
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol(
            "reserved bits set (no extension was negotiated)",
        ));
    }
    let opcode = b0 & 0x0f;
    let control = opcode & 0x08 != 0;
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
        _ => return Err(WsError::Protocol("reserved opcode")),
    }
    if b1 & 0x80 == 0 {
        return Err(WsError::Protocol("client frame is not masked"));
    }
    let len7 = b1 & 0x7f;
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header = 2 + ext + 4;
    if buf.len() < 2 + ext {
        return Ok(Parsed::Need(header));
    }
    let len: u64 = match ext {
        0 => u64::from(len7),
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(WsError::Protocol("64-bit length with the high bit set"));
            }
            len
        }
    };
    if control {
        if !fin {
            return Err(WsError::Protocol("fragmented control frame"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(WsError::Protocol("control frame payload over 125 bytes"));
        }
    } else if len > max_payload as u64 {
        return Err(WsError::TooBig {
            len,
            max: max_payload,
        });
    }
    // `len` ≤ max(max_payload, 125) here, so it fits in usize.
    let total = header + len as usize;
    if buf.len() < total {
        return Ok(Parsed::Need(total));
    }
    if !control {
        match (opcode, state.in_message) {
            (OP_CONTINUATION, false) => {
                return Err(WsError::Protocol("continuation frame without a message"))
            }
            (OP_TEXT | OP_BINARY, true) => {
                return Err(WsError::Protocol("new message inside a fragmented message"))
            }
            _ => state.in_message = !fin,
        }
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[header - 4..header]);
    let payload = &mut buf[header..total];
    let frame = match opcode {
        OP_PING => {
            unmask(payload, mask);
            ClientFrame::Ping(payload)
        }
        OP_PONG => ClientFrame::Pong,
        OP_CLOSE => {
            unmask(payload, mask);
            ClientFrame::Close(parse_close(payload)?)
        }
        _ => ClientFrame::Data,
    };
    Ok(Parsed::Frame { frame, len: total })
}

/// Validates a close payload: empty, or a valid code plus a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Option<u16>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::Protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(WsError::Protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(WsError::InvalidUtf8);
            }
            Ok(Some(code))
        }
    }
}

/// XORs `payload` with the 4-byte masking key (RFC 6455 §5.3). Only used on
/// the small control payloads we look at.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A masked client frame, as a client would send it.
    pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_client_frame(&mut v, opcode, payload, [0x11, 0x22, 0x33, 0x44]);
        if !fin {
            v[0] &= 0x7f;
        }
        v
    }

    fn parse(buf: &mut [u8]) -> Result<Parsed<'_>, WsError> {
        parse_client_frame(buf, 1000, &mut ReadState::default())
    }

    #[test]
    fn headers() {
        let mut h = [0u8; 10];
        assert_eq!(frame_header(OP_BINARY, 0, &mut h), 2);
        assert_eq!(&h[..2], &[0x82, 0]);
        assert_eq!(frame_header(OP_BINARY, 125, &mut h), 2);
        assert_eq!(frame_header(OP_PING, 126, &mut h), 4);
        assert_eq!(&h[..4], &[0x89, 126, 0, 126]);
        assert_eq!(frame_header(OP_BINARY, 65535, &mut h), 4);
        assert_eq!(frame_header(OP_BINARY, 65536, &mut h), 10);
        assert_eq!(&h[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        for len in [0, 125, 126, 65535, 65536, 5_000_000] {
            assert_eq!(header_len(len), frame_header(OP_BINARY, len, &mut h));
        }
    }

    #[test]
    fn close_payload_fits_a_control_frame() {
        assert_eq!(
            &close_payload(1008, "FutureCursor")[..],
            b"\x03\xf0FutureCursor"
        );
        let long = "é".repeat(100);
        let p = close_payload(1000, &long);
        assert!(p.len() <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }

    #[test]
    fn parses_control_frames_and_unmasks() {
        let mut f = client_frame(true, OP_PING, b"hello");
        assert_eq!(
            parse(&mut f),
            Ok(Parsed::Frame {
                frame: ClientFrame::Ping(b"hello"),
                len: 11
            })
        );
        let mut f = client_frame(true, OP_PONG, b"x");
        assert!(matches!(
            parse(&mut f),
            Ok(Parsed::Frame {
                frame: ClientFrame::Pong,
                ..
            })
        ));
        let mut f = client_frame(true, OP_CLOSE, b"\x03\xe8bye");
        assert!(matches!(
            parse(&mut f),
            Ok(Parsed::Frame {
                frame: ClientFrame::Close(Some(1000)),
                ..
            })
        ));
        let mut f = client_frame(true, OP_CLOSE, b"");
        assert!(matches!(
            parse(&mut f),
            Ok(Parsed::Frame {
                frame: ClientFrame::Close(None),
                ..
            })
        ));
        let mut f = client_frame(true, OP_BINARY, &[0; 300]);
        assert_eq!(
            parse(&mut f),
            Ok(Parsed::Frame {
                frame: ClientFrame::Data,
                len: 2 + 2 + 4 + 300
            })
        );
    }

    #[test]
    fn asks_for_more_bytes() {
        let f = client_frame(true, OP_BINARY, &[0; 300]);
        assert_eq!(parse(&mut f[..0].to_vec()), Ok(Parsed::Need(2)));
        assert_eq!(parse(&mut f[..1].to_vec()), Ok(Parsed::Need(2)));
        assert_eq!(parse(&mut f[..3].to_vec()), Ok(Parsed::Need(8)));
        assert_eq!(parse(&mut f[..8].to_vec()), Ok(Parsed::Need(308)));
        assert_eq!(parse(&mut f[..307].to_vec()), Ok(Parsed::Need(308)));
        let g = client_frame(true, OP_BINARY, &[0; 70_000]);
        let mut head = g[..5].to_vec();
        let r = parse_client_frame(&mut head, 100_000, &mut ReadState::default());
        assert_eq!(r, Ok(Parsed::Need(14)));
    }

    #[test]
    fn rejects_malformed_frames() {
        use WsError::*;
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (vec![0x82, 0x00], Protocol("client frame is not masked")),
            (
                vec![0xc2, 0x80, 0, 0, 0, 0],
                Protocol("reserved bits set (no extension was negotiated)"),
            ),
            (vec![0x83, 0x80, 0, 0, 0, 0], Protocol("reserved opcode")),
            (vec![0x8b, 0x80, 0, 0, 0, 0], Protocol("reserved opcode")),
            (
                client_frame(false, OP_PING, b""),
                Protocol("fragmented control frame"),
            ),
            (
                client_frame(true, OP_PING, &[0; 126]),
                Protocol("control frame payload over 125 bytes"),
            ),
            (
                client_frame(true, OP_CLOSE, b"\x03"),
                Protocol("close payload of one byte"),
            ),
            (
                client_frame(true, OP_CLOSE, b"\x03\xed"),
                Protocol("invalid close code"),
            ),
            (client_frame(true, OP_CLOSE, b"\x03\xe8\xff"), InvalidUtf8),
            (
                client_frame(true, OP_CONTINUATION, b"x"),
                Protocol("continuation frame without a message"),
            ),
            (
                client_frame(true, OP_BINARY, &[0; 1001]),
                TooBig {
                    len: 1001,
                    max: 1000,
                },
            ),
            (
                vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                Protocol("64-bit length with the high bit set"),
            ),
            (
                vec![0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                TooBig {
                    len: i64::MAX as u64,
                    max: 1000,
                },
            ),
        ];
        for (mut bytes, want) in cases {
            let shown = format!("{bytes:02x?}");
            assert_eq!(parse(&mut bytes), Err(want.clone()), "{shown}");
            assert!([1002, 1007, 1009].contains(&want.close_code()));
        }
    }

    #[test]
    fn fragmentation_rules() {
        let mut st = ReadState::default();
        let mut first = client_frame(false, OP_TEXT, b"ab");
        let mut ping = client_frame(true, OP_PING, b"");
        let mut again = client_frame(true, OP_BINARY, b"x");
        let mut cont = client_frame(false, OP_CONTINUATION, b"cd");
        let mut last = client_frame(true, OP_CONTINUATION, b"ef");
        assert!(parse_client_frame(&mut first, 10, &mut st).is_ok());
        // control frames may be interleaved
        assert!(parse_client_frame(&mut ping, 10, &mut st).is_ok());
        assert!(parse_client_frame(&mut cont, 10, &mut st).is_ok());
        assert!(parse_client_frame(&mut again.clone(), 10, &mut st).is_err());
        assert!(parse_client_frame(&mut last, 10, &mut st).is_ok());
        assert!(parse_client_frame(&mut again, 10, &mut st).is_ok());
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let mut buf: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let mut st = ReadState::default();
            if let Ok(Parsed::Frame { len, .. }) = parse_client_frame(&mut buf, 64, &mut st) {
                assert!(len <= buf.len());
            }
        }
    }

    #[test]
    fn client_frames_are_masked() {
        let mut out = Vec::new();
        encode_client_frame(&mut out, OP_PONG, b"abc", [1, 2, 3, 4]);
        assert_eq!(out, [0x8a, 0x83, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2, b'c' ^ 3]);
        let mut long = Vec::new();
        encode_client_frame(&mut long, OP_BINARY, &[0; 300], [9; 4]);
        assert_eq!(&long[..4], &[0x82, 0x80 | 126, 1, 44]);
        assert_eq!(long.len(), 4 + 4 + 300);
    }
}
