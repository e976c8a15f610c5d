//! One subscriber's socket: reads client frames and writes queued server
//! frames in the same poll, so client frames never block writes and a
//! stalled write never stops us noticing a close.
//!
//! Why not `tokio::io::split` plus a reader task: split puts a mutex around
//! the stream that every read and write poll takes, and a reader task costs a
//! task and a channel per subscriber. The session is already one task; one
//! `poll_fn` that polls both directions of the owned stream does the same job
//! with no lock and no extra task. Both directions keep their state here
//! (read buffer, [`FrameQueue`]), so the poll is cancel-safe and can sit in a
//! `select!` next to the ring's wakeup and the timers.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{timeout, Instant};

use super::session_end::SessionEnd;
use super::socket;
use super::writer::FrameQueue;
use super::ws::{self, ClientFrame, Parsed, ReadState};
use crate::wire::frame::{ErrorFrame, Event};

/// Read buffer size to start with (and to shrink back to): client frames are
/// rare and small (pings, a close).
const INITIAL_READ_BUF: usize = 512;

/// Reads per poll before yielding, so a client flooding us cannot keep the
/// task in its read loop.
const READ_BUDGET: usize = 16;

/// At most this many client bytes are read and discarded while a session
/// says goodbye; past it the client is flooding us and is simply closed.
const DISCARD_MAX_BYTES: usize = 1 << 20;

/// Room added to the socket's unsent limit, besides the frames themselves,
/// so a session's last frames fit behind a partly written one even when the
/// limit was reached (the kernel may pass the limit by one segment).
const GOODBYE_SLACK: usize = 128 * 1024;

/// What [`Conn::poll_io`] reports.
#[derive(Debug)]
pub(crate) enum IoEvent {
    /// Everything queued was written (possibly control frames queued by the
    /// poll itself, e.g. a pong); the queue is empty.
    Drained,
    /// The client closed the TCP connection.
    Eof,
    /// The connection ended: I/O error or a client that hung up mid-frame.
    Failed(SessionEnd),
}

/// What to do with a parsed client frame, once its borrow of the buffer ends.
enum Action {
    Nothing,
    Pong(Bytes),
    Close(Option<u16>),
}

/// The socket of one subscriber session and both directions' state.
pub(crate) struct Conn<S> {
    stream: S,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    rstate: ReadState,
    max_client_frame: usize,
    /// Frames to write.
    pub(crate) out: FrameQueue,
    /// False once we are closing: after a close we read nothing more.
    reading: bool,
    /// How the session ends once `out` is flushed; set when a close frame is
    /// queued.
    closing: Option<SessionEnd>,
    /// Last time the socket accepted bytes (or a write phase began).
    pub(crate) last_progress: Instant,
    /// The socket's `TCP_NOTSENT_LOWAT`, when the stream is TCP and it
    /// could be set.
    unsent_limit: Option<usize>,
    /// What the client's TCP had acknowledged when last asked (TCP only):
    /// sampled when the socket fills up and when the stall timer fires, so
    /// never per event.
    acked: Option<u64>,
    /// Client bytes discarded while saying goodbye.
    discarded: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> Conn<S> {
    /// Wraps an upgraded stream; client frames over `max_client_frame` bytes
    /// are refused (close 1009). On a TCP socket, limits what the kernel
    /// holds unsent to `unsent_limit` bytes (0: leave the socket alone):
    /// see [`super::session`] for why.
    pub(crate) fn new(stream: S, max_client_frame: usize, unsent_limit: usize) -> Conn<S> {
        let unsent_limit =
            socket::tcp_of(&stream).and_then(|tcp| socket::configure_subscriber(tcp, unsent_limit));
        Conn {
            stream,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            rstate: ReadState::default(),
            max_client_frame,
            out: FrameQueue::new(),
            reading: true,
            closing: None,
            last_progress: Instant::now(),
            unsent_limit,
            acked: None,
            discarded: 0,
        }
    }

    /// Whether the client consumed anything since the last time this was
    /// asked or the socket filled up: its TCP acknowledged more bytes. The
    /// socket can take nothing for a while although the client reads (the
    /// kernel wakes writers only once the unsent queue halves); this is how
    /// the stall timer tells a slow reader from a stalled one. False when
    /// the stream is not TCP or on the first sample.
    pub(crate) fn client_consumed(&mut self) -> bool {
        let Some(now) = socket::tcp_of(&self.stream).and_then(socket::bytes_acked) else {
            return false;
        };
        let more = self.acked.is_some_and(|before| now > before);
        self.acked = Some(now);
        more
    }

    /// Lets the kernel take everything still queued (a partly written
    /// frame, then the error and close frames) at once although the client
    /// stopped reading: raises the socket's unsent limit by that much, so
    /// the goodbye is in the kernel's hands even if we give up waiting, and
    /// the client reads it whenever it resumes.
    pub(crate) fn make_room_for_goodbye(&mut self) {
        let (Some(limit), Some(tcp)) = (self.unsent_limit, socket::tcp_of(&self.stream)) else {
            return;
        };
        let raised = limit + self.out.pending_bytes() + GOODBYE_SLACK;
        if socket::set_unsent_limit(tcp, raised).is_err() {
            return;
        }
        self.unsent_limit = Some(raised);
        // The runtime saw the socket full and waits for a wake-up that the
        // new limit need not bring: write now, past its bookkeeping.
        let waker = futures_util::task::noop_waker();
        let _ = self.out.poll_flush(
            &mut Context::from_waker(&waker),
            &mut socket::DirectWrite(tcp),
        );
    }

    /// True once a close frame is queued: queue no more data.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// The end reason, once closing (take it when the queue is flushed).
    pub(crate) fn take_closing(&mut self) -> Option<SessionEnd> {
        self.closing.take()
    }

    /// Queues a close frame and stops reading; the session ends with `end`
    /// once it is written. Does nothing if already closing.
    pub(crate) fn close(&mut self, code: u16, reason: &str, end: SessionEnd) {
        if self.closing.is_some() {
            return;
        }
        self.out.push(ws::OP_CLOSE, ws::close_payload(code, reason));
        self.reading = false;
        self.closing = Some(end);
    }

    /// Queues an error frame (`op: -1`) named `error`, then a close 1008
    /// with the error name as reason, as the reference implementation does.
    pub(crate) fn error_and_close(&mut self, error: &str, message: &str, end: SessionEnd) {
        if self.closing.is_some() {
            return;
        }
        let mut frame = Vec::with_capacity(64 + message.len());
        Event::Error(ErrorFrame {
            error,
            message: Some(message),
        })
        .encode(&mut frame);
        self.out.push_binary(Bytes::from(frame));
        self.close(ws::CLOSE_POLICY, error, end);
    }

    /// Reads and handles whatever the client sent, then writes queued frames.
    /// `Ready` when the queue is drained or the connection ended; `Pending`
    /// otherwise (with wakeups registered for both directions as needed).
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<IoEvent> {
        if self.reading {
            if let Some(ev) = self.poll_read(cx) {
                return Poll::Ready(ev);
            }
        }
        if self.out.is_empty() {
            return if self.reading {
                Poll::Pending
            } else {
                Poll::Ready(IoEvent::Drained)
            };
        }
        let before = self.out.bytes_written();
        let r = self.out.poll_flush(cx, &mut self.stream);
        let wrote = self.out.bytes_written() != before;
        if wrote {
            self.last_progress = Instant::now();
        }
        match r {
            Poll::Ready(Ok(())) => Poll::Ready(IoEvent::Drained),
            Poll::Ready(Err(e)) => Poll::Ready(IoEvent::Failed(SessionEnd::Io(e.to_string()))),
            Poll::Pending => {
                // The socket just filled up: what the client has
                // acknowledged so far is the mark its reading is measured
                // from while it stays full.
                if wrote || self.acked.is_none() {
                    self.acked = socket::tcp_of(&self.stream).and_then(socket::bytes_acked);
                }
                Poll::Pending
            }
        }
    }

    /// Parses buffered client frames and reads more, until the socket has
    /// nothing (read interest registered), the budget runs out (task woken
    /// to continue), or a close or protocol error stops reading. `Some` only
    /// when the connection is over.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Option<IoEvent> {
        let mut budget = READ_BUDGET;
        loop {
            while self.reading {
                let parsed = ws::parse_client_frame(
                    &mut self.rbuf[self.rstart..self.rend],
                    self.max_client_frame,
                    &mut self.rstate,
                );
                let (action, len) = match parsed {
                    Ok(Parsed::Frame { frame, len }) => {
                        let action = match frame {
                            ClientFrame::Ping(p) => Action::Pong(Bytes::copy_from_slice(p)),
                            ClientFrame::Close(code) => Action::Close(code),
                            ClientFrame::Pong | ClientFrame::Data => Action::Nothing,
                        };
                        (action, len)
                    }
                    Ok(Parsed::Need(total)) => {
                        self.make_room(total);
                        break;
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        self.close(e.close_code(), &msg, SessionEnd::Protocol(msg.clone()));
                        return None;
                    }
                };
                self.rstart += len;
                match action {
                    Action::Nothing => {}
                    Action::Pong(p) => self.out.push_pong(p),
                    Action::Close(code) => {
                        let payload = match code {
                            Some(code) => ws::close_payload(code, ""),
                            None => Bytes::new(),
                        };
                        self.out.push(ws::OP_CLOSE, payload);
                        self.reading = false;
                        self.closing = Some(SessionEnd::ClientClosed);
                    }
                }
            }
            if !self.reading {
                return None;
            }
            if budget == 0 {
                cx.waker().wake_by_ref();
                return None;
            }
            budget -= 1;
            let mut rb = ReadBuf::new(&mut self.rbuf[self.rend..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        return Some(if self.rstart == self.rend {
                            IoEvent::Eof
                        } else {
                            IoEvent::Failed(SessionEnd::Protocol(
                                "connection closed in the middle of a frame".into(),
                            ))
                        });
                    }
                    self.rend += n;
                }
                Poll::Ready(Err(e)) => return Some(IoEvent::Failed(SessionEnd::Io(e.to_string()))),
                Poll::Pending => return None,
            }
        }
    }

    /// Ensures the buffer can hold a frame of `total` bytes from `rstart`,
    /// with room to read into. `total` is bounded by the parser (header +
    /// `max_client_frame`), so the buffer is too.
    fn make_room(&mut self, total: usize) {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
            if self.rbuf.len() > 8 * INITIAL_READ_BUF && total <= INITIAL_READ_BUF {
                self.rbuf.truncate(INITIAL_READ_BUF);
                self.rbuf.shrink_to_fit();
            }
        }
        if self.rbuf.len() - self.rstart < total {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rbuf.len() < total.max(INITIAL_READ_BUF) {
            self.rbuf.resize(total.max(INITIAL_READ_BUF), 0);
        }
    }

    /// Ends the connection without resetting it. Writes what is queued (our
    /// close frame last) for at most `flush_within`, shuts our side down
    /// (FIN behind the last frame), then waits up to `linger` for the client
    /// to close too — reading and discarding what the client sends all
    /// along, and whatever is left in the receive buffer before the socket
    /// is dropped: closing a socket with unread input makes the kernel send
    /// a reset and throw away what we queued, the error frame included.
    pub(crate) async fn finish(mut self, flush_within: Duration, linger: Duration) {
        self.reading = false;
        let flushed = timeout(
            flush_within,
            std::future::poll_fn(|cx| {
                self.poll_discard(cx);
                self.out.poll_flush(cx, &mut self.stream)
            }),
        )
        .await;
        if matches!(flushed, Ok(Ok(())))
            && matches!(
                timeout(flush_within, self.stream.shutdown()).await,
                Ok(Ok(()))
            )
        {
            // Until the client's EOF (or error, or the budget).
            let _ = timeout(
                linger,
                std::future::poll_fn(|cx| match self.poll_discard(cx) {
                    Some(()) => Poll::Ready(()),
                    None => Poll::Pending,
                }),
            )
            .await;
        }
        // What arrived meanwhile, without waiting.
        let waker = futures_util::task::noop_waker();
        self.poll_discard(&mut Context::from_waker(&waker));
    }

    /// Reads and discards client bytes until the socket has none (`None`,
    /// read interest registered) or is done (`Some`: EOF, error, or the
    /// discard budget spent).
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Option<()> {
        let mut buf = [0u8; 4096];
        loop {
            if self.discarded >= DISCARD_MAX_BYTES {
                return Some(());
            }
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Some(()),
                Poll::Ready(Ok(())) => self.discarded += rb.filled().len(),
                Poll::Ready(Err(_)) => return Some(()),
                Poll::Pending => return None,
            }
        }
    }
}
