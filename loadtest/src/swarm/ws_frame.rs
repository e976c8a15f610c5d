//! WebSocket framing (RFC 6455 §5) as a firehose client needs it: the head
//! of a server frame parsed from borrowed bytes, and the few frames a client
//! sends (pong, close), masked as the RFC requires of clients.
//!
//! Why our own: the swarm reads a thousand sockets or more on one thread,
//! and a general client (tokio-tungstenite) allocates a message per frame
//! and polls each socket through its own stream machinery; here a frame's
//! payload is a slice of the read buffer.

use std::fmt;

pub use atrelay::fanout::ws::{
    encode_client_frame, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING,
    OP_PONG, OP_TEXT,
};

/// Largest payload accepted: far above the firehose's 5 MB frame limit, so
/// only a corrupt length (not a real frame) is refused before we buffer it.
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// The parsed head of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub fin: bool,
    pub opcode: u8,
    /// Bytes of the head (2 to 14) before the payload.
    pub head_len: usize,
    pub payload_len: usize,
}

impl Head {
    /// Head plus payload.
    pub fn frame_len(&self) -> usize {
        self.head_len + self.payload_len
    }

    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Why a server's frame was refused: each is a protocol error after which
/// the client drops the connection (and the swarm reconnects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Servers must not mask (§5.1).
    Masked,
    /// RSV bits set, with no extension negotiated.
    Reserved,
    UnknownOpcode(u8),
    /// A control frame fragmented or over 125 bytes (§5.5).
    BadControl,
    TooLarge(u64),
    /// A continuation with no message begun, or a new message inside one.
    BadFragment,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Masked => f.write_str("masked frame from the server"),
            FrameError::Reserved => f.write_str("reserved bits set"),
            FrameError::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            FrameError::BadControl => f.write_str("fragmented or oversize control frame"),
            FrameError::TooLarge(n) => write!(f, "frame payload of {n} bytes"),
            FrameError::BadFragment => f.write_str("continuation frames out of order"),
        }
    }
}

/// The head at the start of `buf`: `Ok(None)` while `buf` is too short to
/// hold all of it. The payload may still be incomplete; compare
/// [`Head::frame_len`] with what is buffered.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(FrameError::UnknownOpcode(opcode));
    }
    let (head_len, payload_len) = match b1 & 0x7f {
        126 => {
            let Some(ext) = buf.get(2..4) else {
                return Ok(None);
            };
            (4, u64::from(u16::from_be_bytes([ext[0], ext[1]])))
        }
        127 => {
            let Some(ext) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(ext);
            (10, u64::from_be_bytes(be))
        }
        n => (2, u64::from(n)),
    };
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(payload_len));
    }
    let head = Head {
        fin,
        opcode,
        head_len,
        payload_len: payload_len as usize,
    };
    if head.is_control() && (!fin || head.payload_len > MAX_CONTROL_PAYLOAD) {
        return Err(FrameError::BadControl);
    }
    Ok(Some(head))
}

/// A server frame's bytes (unmasked), for tests of the reader: the head
/// the relay itself writes (`atrelay::fanout::ws::frame_header`), FIN
/// cleared for a fragment.
#[cfg(test)]
pub fn encode_server_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8]) {
    let mut head = [0u8; 10];
    let n = atrelay::fanout::ws::frame_header(opcode, payload.len(), &mut head);
    if !fin {
        head[0] &= 0x7f;
    }
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_with_7_16_and_64_bit_lengths() {
        for (len, head_len) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut f = Vec::new();
            encode_server_frame(&mut f, true, OP_BINARY, &vec![7; len]);
            let h = parse_head(&f).unwrap().unwrap();
            assert_eq!(
                h,
                Head {
                    fin: true,
                    opcode: OP_BINARY,
                    head_len,
                    payload_len: len
                }
            );
            assert_eq!(h.frame_len(), f.len());
            // Every prefix shorter than the head asks for more.
            for cut in 0..head_len {
                assert_eq!(parse_head(&f[..cut]), Ok(None), "len {len} cut {cut}");
            }
        }
    }

    #[test]
    fn protocol_errors_are_refused() {
        assert_eq!(parse_head(&[0x82, 0x81]), Err(FrameError::Masked));
        assert_eq!(parse_head(&[0xc2, 0x00]), Err(FrameError::Reserved));
        assert_eq!(parse_head(&[0x83, 0x00]), Err(FrameError::UnknownOpcode(3)));
        assert_eq!(parse_head(&[0x09, 0x00]), Err(FrameError::BadControl));
        assert_eq!(
            parse_head(&[0x89, 126, 0, 126]),
            Err(FrameError::BadControl)
        );
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(parse_head(&huge), Err(FrameError::TooLarge(_))));
    }
}
