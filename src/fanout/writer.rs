//! Batched, zero-copy writing of server WebSocket frames: a queue of shared
//! payloads flushed with vectored writes.
//!
//! ```
//! use atrelay::fanout::FrameQueue;
//! use bytes::Bytes;
//!
//! let shared = Bytes::from_static(b"frame bytes shared by every subscriber");
//! let mut queue = FrameQueue::new();
//! queue.push_binary(shared.clone());
//! queue.push_binary(shared.clone());
//! let mut socket: Vec<u8> = Vec::new(); // any AsyncWrite
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! rt.block_on(std::future::poll_fn(|cx| queue.poll_flush(cx, &mut socket))).unwrap();
//! assert!(queue.is_empty());
//! assert_eq!(socket.len(), 2 * (2 + shared.len()));
//! ```
//!
//! Why: the firehose writes the same frame to every subscriber. Copying it
//! into a per-socket buffer would cost a memcpy per subscriber per frame
//! (plus a buffer per subscriber); a write per frame would cost a syscall per
//! subscriber per frame. Instead each flush hands the kernel up to 1024
//! `IoSlice`s — a header computed on the stack, then the ring's own `Bytes` —
//! in one `writev`, and picks up after a partial write where it stopped.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;

use super::ws::{frame_header, header_len, OP_BINARY, OP_PONG};

/// `IOV_MAX` on Linux (and most Unixes): the most slices one `writev` takes.
const IOV_MAX: usize = 1024;

/// Frames per flush step: each frame takes at most two slices.
const FRAMES_PER_WRITE: usize = IOV_MAX / 2;

/// Up to this many queued frames are written with small stack arrays.
const SMALL_WRITE: usize = 8;

/// Frames an idle queue keeps room for (see [`FrameQueue::release_spare`]);
/// a live subscriber's writes carry a few frames each.
const SPARE_FRAMES: usize = 16;

/// When the stream cannot do vectored writes (e.g. some TLS wrappers), frames
/// are coalesced into a scratch buffer of about this size per write instead,
/// so we do not issue one syscall per 2-byte header.
const COALESCE_BYTES: usize = 64 * 1024;

/// A queue of outbound WebSocket frames (final, unmasked) over shared
/// payloads, written with batched vectored writes.
///
/// Memory: the queue holds `Bytes` handles (refcounts into the ring's frames),
/// never copies, and reuses its `Vec` from batch to batch, so a steady-state
/// flush allocates nothing.
#[derive(Debug, Default)]
pub struct FrameQueue {
    /// (opcode, payload) of every frame not yet fully written, from `idx`.
    items: Vec<(u8, Bytes)>,
    /// First frame not fully written.
    idx: usize,
    /// Bytes of `items[idx]` (header then payload) already written.
    off: usize,
    /// Index of a queued pong not yet started, so a ping flood replaces it
    /// instead of growing the queue.
    pong_at: Option<usize>,
    /// Total bytes written over the queue's life (progress detection).
    written: u64,
    /// Scratch buffer for streams without vectored writes (lazily allocated).
    scratch: Vec<u8>,
}

impl FrameQueue {
    /// An empty queue.
    pub fn new() -> FrameQueue {
        FrameQueue::default()
    }

    /// Queues a binary frame (a firehose message).
    pub fn push_binary(&mut self, payload: Bytes) {
        self.items.push((OP_BINARY, payload));
    }

    /// Queues a frame with any opcode (control frames: ping, pong, close).
    /// Control payloads must be ≤ 125 bytes.
    pub fn push(&mut self, opcode: u8, payload: Bytes) {
        self.items.push((opcode, payload));
    }

    /// Queues a pong, or replaces the payload of a pong that is queued but not
    /// started yet (RFC 6455 allows answering only the latest ping), so the
    /// queue stays bounded however fast a client pings.
    pub fn push_pong(&mut self, payload: Bytes) {
        match self.pong_at {
            Some(i) if i > self.idx || (i == self.idx && self.off == 0) => {
                self.items[i].1 = payload;
            }
            _ => {
                self.pong_at = Some(self.items.len());
                self.items.push((OP_PONG, payload));
            }
        }
    }

    /// True when everything queued has been written.
    pub fn is_empty(&self) -> bool {
        self.idx == self.items.len()
    }

    /// Frames queued and not yet fully written.
    pub fn len(&self) -> usize {
        self.items.len() - self.idx
    }

    /// Bytes still to write (headers included), from where the first
    /// frame stopped. Walks the queue: for a session's last frames, not
    /// per event.
    pub fn pending_bytes(&self) -> usize {
        let total: usize = self.items[self.idx..]
            .iter()
            .map(|(_, p)| header_len(p.len()) + p.len())
            .sum();
        total - self.off
    }

    /// Total bytes written through this queue so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Frees the queue's storage if it grew past what a live subscriber
    /// needs (a catch-up batch holds up to 256 handles, about 10 KiB) and
    /// nothing is queued: a session calls it when it goes idle, so an idle
    /// subscriber costs a few hundred bytes here, not its largest batch.
    pub fn release_spare(&mut self) {
        if self.is_empty() && self.items.capacity() > SPARE_FRAMES {
            self.items = Vec::with_capacity(SPARE_FRAMES);
        }
        if self.scratch.capacity() > 0 {
            self.scratch = Vec::new();
        }
    }

    /// Drops every queued frame that has not started to be written, keeping a
    /// partially written one (it must be finished to keep the stream framed).
    /// Used before sending a final error frame to a stalled subscriber.
    pub fn truncate_unstarted(&mut self) {
        let keep = self.idx + usize::from(self.off > 0);
        self.items.truncate(keep);
        if self.pong_at.is_some_and(|i| i >= keep) {
            self.pong_at = None;
        }
    }

    /// Writes queued frames to `w` until the queue is empty (`Ready(Ok)`) or
    /// the stream would block (`Pending`, with progress kept: calling again
    /// resumes mid-frame). Cancel-safe: all state is in the queue.
    pub fn poll_flush<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<io::Result<()>> {
        let vectored = w.is_write_vectored();
        while !self.is_empty() {
            let r = if vectored {
                self.poll_write_vectored(cx, w)
            } else {
                self.poll_write_coalesced(cx, w)
            };
            match r {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket accepted no bytes",
                    )))
                }
                Poll::Ready(Ok(n)) => self.advance(n),
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// One `writev` of up to [`FRAMES_PER_WRITE`] frames from the current
    /// position. Headers live in a stack array for the duration of the call,
    /// sized for the frames at hand: a live subscriber usually has one or
    /// two, and zeroing the full-size arrays (21 KiB) for each of those
    /// writes showed in the relay's profile.
    fn poll_write_vectored<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<io::Result<usize>> {
        if self.items.len() - self.idx <= SMALL_WRITE {
            self.poll_writev_upto::<SMALL_WRITE, { 2 * SMALL_WRITE }, W>(cx, w)
        } else {
            self.poll_writev_upto::<FRAMES_PER_WRITE, IOV_MAX, W>(cx, w)
        }
    }

    /// [`Self::poll_write_vectored`] with room for `F` frames in `S` slices.
    fn poll_writev_upto<const F: usize, const S: usize, W: AsyncWrite + Unpin + ?Sized>(
        &self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<io::Result<usize>> {
        let frames = &self.items[self.idx..(self.idx + F).min(self.items.len())];
        let mut headers = [[0u8; 10]; F];
        let mut hlens = [0u8; F];
        for (i, (op, payload)) in frames.iter().enumerate() {
            hlens[i] = frame_header(*op, payload.len(), &mut headers[i]) as u8;
        }
        let mut iov = [IoSlice::new(&[]); S];
        let mut n = 0;
        for (i, (_, payload)) in frames.iter().enumerate() {
            let hlen = usize::from(hlens[i]);
            let skip = if i == 0 { self.off } else { 0 };
            if skip < hlen {
                iov[n] = IoSlice::new(&headers[i][skip..hlen]);
                n += 1;
            }
            let pskip = skip.saturating_sub(hlen);
            if pskip < payload.len() {
                iov[n] = IoSlice::new(&payload[pskip..]);
                n += 1;
            }
        }
        Pin::new(w).poll_write_vectored(cx, &iov[..n])
    }

    /// Fallback for streams without vectored writes: copy up to
    /// [`COALESCE_BYTES`] of frames into the scratch buffer and write that.
    /// The bytes not accepted are simply re-copied next time.
    fn poll_write_coalesced<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<io::Result<usize>> {
        self.scratch.clear();
        let mut skip = self.off;
        for (op, payload) in &self.items[self.idx..] {
            let mut header = [0u8; 10];
            let hlen = frame_header(*op, payload.len(), &mut header);
            if skip < hlen {
                self.scratch.extend_from_slice(&header[skip..hlen]);
            }
            let pskip = skip.saturating_sub(hlen);
            let room = COALESCE_BYTES.saturating_sub(self.scratch.len());
            let take = (payload.len() - pskip.min(payload.len())).min(room);
            self.scratch
                .extend_from_slice(&payload[pskip..pskip + take]);
            skip = 0;
            if self.scratch.len() >= COALESCE_BYTES {
                break;
            }
        }
        Pin::new(w).poll_write(cx, &self.scratch)
    }

    /// Marks `n` more bytes as written, completing frames as it goes; when the
    /// queue is done the `Vec` is cleared (dropping the `Bytes` handles) and
    /// reused.
    fn advance(&mut self, mut n: usize) {
        self.written += n as u64;
        while n > 0 && self.idx < self.items.len() {
            let len = self.items[self.idx].1.len();
            let total = header_len(len) + len;
            let left = total - self.off;
            if n >= left {
                n -= left;
                self.idx += 1;
                self.off = 0;
            } else {
                self.off += n;
                n = 0;
            }
        }
        if self.is_empty() {
            self.items.clear();
            self.idx = 0;
            self.off = 0;
            self.pong_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::ws::{OP_CLOSE, OP_PING};

    /// A writer that accepts at most `chunk` bytes per call and returns
    /// Pending every other call, optionally without vectored support.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
        flip: bool,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.flip = !self.flip;
            if self.flip {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            assert!(bufs.len() <= IOV_MAX);
            self.flip = !self.flip;
            if self.flip {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut left = self.chunk;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.out.extend_from_slice(&b[..take]);
                left -= take;
                n += take;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn expected(frames: &[(u8, Bytes)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (op, p) in frames {
            let mut h = [0u8; 10];
            let n = frame_header(*op, p.len(), &mut h);
            v.extend_from_slice(&h[..n]);
            v.extend_from_slice(p);
        }
        v
    }

    #[tokio::test]
    async fn partial_writes_produce_exact_frames() {
        for vectored in [true, false] {
            for chunk in [1, 3, 7, 1000, 70_000, 1 << 20] {
                // byte-sized chunks on small frames, big chunks on all sizes
                let small = chunk < 10;
                let frames: Vec<(u8, Bytes)> = (0..if small { 40 } else { 300 })
                    .map(|i| {
                        let sizes = [0, 1, 125, 126, 300, 65535, 65536];
                        let len = sizes[i % if small { 5 } else { 7 }];
                        (OP_BINARY, Bytes::from(vec![i as u8; len]))
                    })
                    .collect();
                let mut q = FrameQueue::new();
                for (_, p) in &frames {
                    q.push_binary(p.clone());
                }
                let mut w = Trickle {
                    out: Vec::new(),
                    chunk,
                    flip: false,
                    vectored,
                };
                std::future::poll_fn(|cx| q.poll_flush(cx, &mut w))
                    .await
                    .unwrap();
                assert!(q.is_empty());
                assert_eq!(q.bytes_written(), w.out.len() as u64);
                assert!(
                    w.out == expected(&frames),
                    "vectored {vectored} chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn pong_is_replaced_not_accumulated() {
        let mut q = FrameQueue::new();
        q.push_binary(Bytes::from_static(b"a"));
        for i in 0..100u8 {
            q.push_pong(Bytes::from(vec![i]));
        }
        assert_eq!(q.len(), 2);
        assert_eq!(&q.items[1].1[..], &[99]);
        q.push(OP_PING, Bytes::new());
        q.push_pong(Bytes::from_static(b"z"));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn truncate_keeps_a_started_frame() {
        let mut q = FrameQueue::new();
        for _ in 0..5 {
            q.push_binary(Bytes::from(vec![0; 10]));
        }
        q.advance(12 + 3); // first frame done, second started
        q.truncate_unstarted();
        assert_eq!(q.len(), 1);
        q.push(OP_CLOSE, Bytes::new());
        q.advance(9);
        assert_eq!(q.len(), 1);
        q.advance(2);
        assert!(q.is_empty());
        q.push_binary(Bytes::from(vec![0; 10]));
        q.truncate_unstarted();
        assert!(q.is_empty());
    }

    #[test]
    fn release_spare_frees_a_grown_queue_only_when_empty() {
        let mut q = FrameQueue::new();
        for _ in 0..256 {
            q.push_binary(Bytes::from_static(b"x"));
        }
        q.release_spare();
        assert_eq!(q.len(), 256, "queued frames are kept");
        q.advance(256 * 3);
        assert!(q.is_empty());
        q.release_spare();
        assert!(q.items.capacity() <= SPARE_FRAMES);
        q.push_binary(Bytes::from_static(b"y"));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn pending_bytes_counts_what_is_left() {
        let mut q = FrameQueue::new();
        assert_eq!(q.pending_bytes(), 0);
        q.push_binary(Bytes::from(vec![0; 10])); // 2 + 10
        q.push_binary(Bytes::from(vec![0; 200])); // 4 + 200
        assert_eq!(q.pending_bytes(), 216);
        q.advance(15);
        assert_eq!(q.pending_bytes(), 201);
    }
}
