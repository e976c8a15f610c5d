//! A lean `subscribeRepos` client for the end-to-end benches: a plain TCP
//! socket, the WebSocket upgrade written by hand, and server frames parsed in
//! place from one reusable buffer (no copy, no allocation per frame), so a
//! hundred of them cost the bench little next to the relay they measure.
//!
//! Every frame's `seq` is read (`peek_seq`, which stops at the `seq` key) and
//! must follow the previous one exactly; frames are counted; optionally the
//! `time` field is parsed for latency (see `Upstream::start_stamped`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use atrelay::wire::cbor::{Decoder, KeyOrder};
use atrelay::wire::frame::{decode_header, peek_seq};
use atrelay::wire::syntax::parse_datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_BINARY: u8 = 0x2;

/// An upgraded connection and the bytes already read past the handshake.
pub struct WsConn {
    sock: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl WsConn {
    /// Connects to `subscribeRepos` at `addr` (`cursor` appended if given)
    /// and completes the WebSocket upgrade.
    pub async fn connect(addr: SocketAddr, cursor: Option<u64>) -> io::Result<WsConn> {
        let mut sock = TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        let query = cursor.map(|c| format!("?cursor={c}")).unwrap_or_default();
        let req = format!(
            "GET /xrpc/com.atproto.sync.subscribeRepos{query} HTTP/1.1\r\nHost: {addr}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             User-Agent: atrelay-bench\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await?;
        WsConn::after_request(sock).await
    }

    /// Reads the server's answer to an upgrade request already sent on
    /// `sock`; fails unless it is `101`.
    pub async fn after_request(mut sock: TcpStream) -> io::Result<WsConn> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut end = 0;
        let head_end = loop {
            let n = sock.read(&mut buf[end..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the upgrade",
                ));
            }
            end += n;
            if let Some(i) = buf[..end].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if end == buf.len() {
                return Err(io::Error::other("oversized upgrade response"));
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]);
        if !head.starts_with("HTTP/1.1 101") {
            return Err(io::Error::other(format!("upgrade refused: {head}")));
        }
        Ok(WsConn {
            sock,
            buf,
            start: head_end,
            end,
        })
    }

    /// The next server frame as (opcode, payload), `None` at end of stream.
    /// Server frames are unmasked and, from this relay, never fragmented.
    pub async fn next_frame(&mut self) -> io::Result<Option<(u8, &[u8])>> {
        loop {
            if let Some((op, header, len)) = parse_header(&self.buf[self.start..self.end])? {
                if self.end - self.start >= header + len {
                    let at = self.start + header;
                    self.start = at + len;
                    return Ok(Some((op, &self.buf[at..at + len])));
                }
                if header + len > self.buf.len() {
                    self.buf.resize(header + len, 0);
                }
            }
            // Need more bytes: move the partial frame to the front and read.
            if self.start > 0 && (self.start == self.end || self.buf.len() - self.end < 16 * 1024) {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.sock.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }
}

/// (opcode, header length, payload length) if a whole header is present.
fn parse_header(b: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x80 == 0 {
        return Err(io::Error::other("fragmented server frame"));
    }
    if b[1] & 0x80 != 0 {
        return Err(io::Error::other("masked server frame"));
    }
    let op = b[0] & 0x0f;
    let (header, len) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
        127 if b.len() >= 10 => (
            10,
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
        ),
        126 | 127 => return Ok(None),
        n => (2, n as usize),
    };
    Ok(Some((op, header, len)))
}

/// The relay seq of a firehose frame (`None` for frames without one).
pub fn frame_seq(frame: &[u8]) -> Option<u64> {
    let (_, body) = decode_header(frame).ok()?;
    peek_seq(body).ok()?.map(|s| s as u64)
}

/// A frame's `time`, Unix microseconds; reads only the keys before it.
pub fn frame_time_micros(frame: &[u8]) -> Option<i64> {
    let (_, body) = decode_header(frame).ok()?;
    let mut d = Decoder::new(body);
    let n = d.map().ok()?;
    let mut keys = KeyOrder::new();
    for _ in 0..n {
        let key = keys.next(&mut d).ok()?;
        match (key.len(), key).cmp(&(4, "time")) {
            std::cmp::Ordering::Less => d.skip().ok()?,
            std::cmp::Ordering::Equal => return parse_datetime(d.text().ok()?).ok(),
            std::cmp::Ordering::Greater => return None,
        }
    }
    None
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub frames: u64,
    pub bytes: u64,
    pub last_seq: u64,
    /// Microseconds from each frame's `time` to its arrival, for frames
    /// with seq above `Expect::latency_after` (only if asked).
    pub latencies_us: Vec<u32>,
    pub first_frame: Option<Instant>,
    pub done: Option<Instant>,
}

/// What a subscriber expects: seqs `first..=last`, in order, no gap.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub first: u64,
    pub last: u64,
    /// Record latency for frames with a seq above this (`None`: don't).
    pub latency_after: Option<u64>,
}

/// Reads frames until seq `expect.last` arrived, checking that seqs follow
/// each other exactly from `expect.first`. Adds to `progress` (frames so far)
/// at every socket read, so a poller sees delivery without per-frame atomics.
pub async fn read_all(
    mut conn: WsConn,
    expect: Expect,
    progress: Arc<AtomicU64>,
) -> Result<Seen, String> {
    let mut seen = Seen {
        last_seq: expect.first.saturating_sub(1),
        ..Seen::default()
    };
    let mut unreported = 0u64;
    while seen.last_seq < expect.last {
        // Report before a read that may wait.
        if unreported > 0 && conn.start == conn.end {
            progress.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
        let (op, payload) = match conn.next_frame().await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(format!("connection closed after seq {}", seen.last_seq)),
            Err(e) => return Err(format!("after seq {}: {e}", seen.last_seq)),
        };
        match op {
            OP_BINARY => {}
            OP_PING => continue,
            OP_CLOSE => return Err(format!("closed by the relay after seq {}", seen.last_seq)),
            other => return Err(format!("unexpected opcode {other}")),
        }
        let Some(seq) = frame_seq(payload) else {
            return Err(format!(
                "a frame without a seq after seq {}: {:?}",
                seen.last_seq,
                atrelay::wire::frame::Event::decode(payload)
            ));
        };
        if seq != seen.last_seq + 1 {
            return Err(format!("seq {seq} after {}", seen.last_seq));
        }
        seen.last_seq = seq;
        seen.frames += 1;
        seen.bytes += payload.len() as u64;
        unreported += 1;
        if seen.first_frame.is_none() {
            seen.first_frame = Some(Instant::now());
        }
        if expect.latency_after.is_some_and(|after| seq > after) {
            let sent = frame_time_micros(payload).ok_or("a frame without a time")?;
            let now = atrelay::clock::now_micros() as i64;
            seen.latencies_us
                .push((now - sent).clamp(0, u32::MAX as i64) as u32);
        }
    }
    progress.fetch_add(unreported, Ordering::Relaxed);
    seen.done = Some(Instant::now());
    Ok(seen)
}
