//! The `com.atproto.sync.subscribeRepos` subscriber session: the server side
//! of one firehose WebSocket, after the HTTP upgrade.
//!
//! ```no_run
//! use std::sync::Arc;
//! use atrelay::fanout::{serve_subscriber, MemoryBackfill, Ring, SessionConfig};
//!
//! # async fn example(stream: tokio::net::TcpStream) {
//! let ring = Ring::new(1 << 16, 0);
//! let log = Arc::new(MemoryBackfill::new());
//! // `stream` has just answered the upgrade with `101 Switching Protocols`.
//! // `None`: not listed in a `Subscribers` registry (see `Peer`).
//! let end = serve_subscriber(stream, ring, log, Some(0), SessionConfig::default(), None).await;
//! println!("subscriber gone: {}", end.reason());
//! # }
//! ```
//!
//! # How a session runs
//!
//! A session is one task holding one cursor, `next` (the next seq to send),
//! and at most one batch of `Bytes` handles. Each turn of its loop:
//!
//! 1. `next` is in the ring → copy up to a batch of handles out of the ring
//!    and write them with one vectored write;
//! 2. `next` is below the ring (replaying a cursor, or fell behind while its
//!    socket was slow) → read a batch from the log on the blocking pool and
//!    write it. The log holds every seq ≤ head, so switching back to the ring
//!    once caught up has no gap and no duplicate;
//! 3. caught up → sleep until the ring wakes it, the client sends a frame,
//!    or the idle ping is due. The ring wakes waiting sessions at once while
//!    few wait and in shared ticks when many do ([`super::Coalescing`]), so
//!    under load one wake and one write carry every event of the tick.
//!
//! There is no per-subscriber queue between the writer and the session, so a
//! slow subscriber costs the writer nothing and holds one batch of memory.
//!
//! # Slow consumers
//!
//! A subscriber is dropped (`ConsumerTooSlow`) only when, for
//! [`SessionConfig::too_slow_after`] (30 s by default) while the session
//! has something to write, it consumed nothing: its socket accepted no
//! bytes, and (on TCP) the client's TCP acknowledged no new bytes — its
//! receive window stayed shut because the client read nothing. Being behind
//! alone just sends it to the log; reading slowly but steadily, at any
//! rate, never gets it dropped (the client's TCP reopens its window once it
//! has read about a segment: 1.4 KB on the internet, 64 KB on loopback).
//!
//! Why the acknowledgements: the socket accepting bytes says little on its
//! own. The kernel buffers up to its autotuned send buffer (4 MiB here)
//! and, once that is full, signals the socket writable again only after
//! about a third of it has drained: a client reading 19 KB/s showed no
//! progress for over a minute and was dropped although it never stopped.
//! So when the stall timer fires the session asks the kernel
//! (`TCP_INFO`'s `tcpi_bytes_acked`, against a mark taken when the socket
//! filled up) whether the client took anything meanwhile — at most every
//! quarter of `too_slow_after` while a write waits, never per event. A
//! stalled subscriber is dropped `too_slow_after` after it last consumed
//! something (up to a quarter later), never earlier.
//!
//! Sessions also cap what the kernel may hold unsent on a TCP socket
//! ([`SessionConfig::unsent_limit`], `TCP_NOTSENT_LOWAT`, 512 KiB): a
//! stalled subscriber then pins about that much kernel memory plus what is
//! in flight instead of a full send buffer, and there is room left for the
//! goodbye (below). 512 KiB costs fast catch-up readers nothing measurable;
//! 128 KiB cost them a fifth more relay CPU per frame on loopback (the
//! writer wakes every time the unsent queue halves).
//!
//! Why "no progress for a while" rather than "fewer than N bytes/s": a
//! reader that keeps up with nothing still costs only its socket and one
//! batch (catch-up comes from the log, never from a queue), so the relay
//! has no reason to drop it while it reads; a rate floor would drop
//! consumers on slow links for nothing, and one low enough not to would
//! say no more than this.
//!
//! A dropped subscriber gets what it was promised, not a reset: the frames
//! not yet started are dropped, the `ConsumerTooSlow` error frame and a
//! close frame are queued behind the frame in progress, the unsent limit is
//! raised just enough for the kernel to take them at once, and the session
//! then sends FIN and waits up to `too_slow_after` for the client to close
//! — reading and discarding what the client sends all along, and draining
//! the receive buffer before the socket is dropped (closing a socket with
//! unread input makes the kernel reset the connection and discard the
//! queued frames). A client that resumes reading finds the error frame, the
//! close frame and a clean end of stream.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, Instant};

use super::backfill::{Backfill, BackfillError};
use super::conn::{Conn, IoEvent};
use super::metrics::SessionMetrics;
use super::registry::{Peer, Registration};
use super::ring::Ring;
use super::session_end::SessionEnd;
use super::ws;
use crate::wire::frame::{ErrorFrame, Event, Info};

/// Longest wait for the last frames (an error frame, a close) to be written
/// when a session ends, and then for the client to close its side. A
/// subscriber dropped as too slow gets `too_slow_after` for each instead.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// How one subscriber session behaves. Defaults suit the public firehose.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Most frames per vectored write (default 256). Bigger batches mean
    /// fewer syscalls; the batch is the session's only buffer.
    pub batch_max_frames: usize,
    /// Most payload bytes per batch (default 1 MiB); a single larger frame
    /// still goes alone. Bounds memory per subscriber (as `Bytes` handles
    /// into frames the ring or log already holds).
    pub batch_max_bytes: usize,
    /// A subscriber that consumes nothing for this long while there is
    /// something to send it (its socket accepts no bytes and its TCP
    /// acknowledges none) is dropped with `ConsumerTooSlow` (default 30 s);
    /// see the module docs.
    pub too_slow_after: Duration,
    /// On TCP sockets, the most bytes the kernel may hold that it has not
    /// sent yet (`TCP_NOTSENT_LOWAT`; default 512 KiB; 0 leaves the socket
    /// alone): bounds the kernel memory a stalled subscriber pins and
    /// leaves room for its `ConsumerTooSlow` goodbye.
    pub unsent_limit: usize,
    /// Send a WebSocket ping after this long without writing anything
    /// (default 30 s, as the reference relay).
    pub ping_interval: Duration,
    /// Largest client frame accepted (default 64 KiB); bigger ones close the
    /// connection with 1009. Clients have nothing to say on this stream.
    pub max_client_frame: usize,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            batch_max_frames: 256,
            batch_max_bytes: 1 << 20,
            too_slow_after: Duration::from_secs(30),
            unsent_limit: 512 * 1024,
            ping_interval: Duration::from_secs(30),
            max_client_frame: 64 * 1024,
        }
    }
}

/// Serves one `subscribeRepos` subscriber on an already-upgraded WebSocket
/// `stream`, from `cursor` (the last seq the client has, replayed strictly
/// after it) or live if `None`, until the client leaves or is dropped.
///
/// Cursor rules (digest §1.5): beyond the ring's head → `FutureCursor` error
/// frame and close 1008; older than the oldest retained event →
/// `#info OutdatedCursor`, then everything from the oldest; `0` → everything
/// retained (no `#info`: the client asked for "all"); otherwise from
/// `cursor + 1`. Every frame goes out byte-identical to what live subscribers
/// got, because the ring and the log hold the same encoded bytes.
///
/// With a `peer`, the session is listed in `peer.registry` from when its
/// cursor is resolved until it ends (however it ends, task abort included),
/// with the highest seq it has written, updated per written batch.
///
/// Never panics on client input; the returned reason is also counted in
/// `atrelay_fanout_sessions_ended_total`.
pub async fn serve_subscriber<S>(
    stream: S,
    ring: Ring,
    backfill: Arc<dyn Backfill>,
    cursor: Option<u64>,
    cfg: SessionConfig,
    peer: Option<Peer>,
) -> SessionEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut metrics = SessionMetrics::start();
    let session = Session {
        conn: Conn::new(stream, cfg.max_client_frame, cfg.unsent_limit),
        cfg: SessionConfig {
            batch_max_frames: cfg.batch_max_frames.max(1),
            ..cfg
        },
        ring,
        backfill,
        registration: None,
        next: 0,
        batch_frames: 0,
        batch_bytes: 0,
    };
    let end = session.run(cursor, peer, &mut metrics).await;
    tracing::debug!(reason = end.reason(), detail = ?end, "subscriber session ended");
    metrics.ended(&end);
    end
}

/// One session's state.
struct Session<S> {
    conn: Conn<S>,
    ring: Ring,
    backfill: Arc<dyn Backfill>,
    cfg: SessionConfig,
    /// The session's listing, if it has a registry; unlists it on drop.
    registration: Option<Registration>,
    /// The next seq to queue.
    next: u64,
    /// Firehose frames / payload bytes in the batch being written.
    batch_frames: u64,
    batch_bytes: u64,
}

/// How a wait for an event ended.
enum Woke {
    Io(IoEvent),
    Ring,
    Timer,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    async fn run(
        mut self,
        cursor: Option<u64>,
        peer: Option<Peer>,
        metrics: &mut SessionMetrics,
    ) -> SessionEnd {
        if let Err(end) = self.start(cursor).await {
            return end;
        }
        // A future cursor is already closing: nothing to list.
        if let Some(Peer {
            registry,
            remote,
            user_agent,
        }) = peer.filter(|_| !self.conn.is_closing())
        {
            // Everything before `next` is what the client already has.
            let delivered = self.next.saturating_sub(1);
            self.registration = Some(registry.register(remote, user_agent, cursor, delivered));
        }
        let too_slow = self.cfg.too_slow_after;
        let ping_every = self.cfg.ping_interval;
        // Both timers are lazy: they fire at a deadline computed when armed,
        // and on firing compare against the real last-progress time, so no
        // timer is re-armed per write.
        let mut slow_timer = pin!(sleep_until(Instant::now() + too_slow));
        let mut ping_timer = pin!(sleep_until(Instant::now() + ping_every));
        // Whether the previous turn was already writing (the queue was not
        // empty): a new write phase restarts the stall clock.
        let mut writing = false;
        loop {
            if self.conn.is_closing() {
                return self.say_goodbye(metrics).await;
            }
            if self.conn.out.is_empty() {
                writing = false;
                if self.batch_frames > 0 {
                    self.batch_written(metrics);
                }
                self.batch_frames = 0;
                self.batch_bytes = 0;
                if self.next <= self.ring.head() {
                    if !self.fill_from_ring() {
                        metrics.catchup_read();
                        if let Err(end) = self.fill_from_log().await {
                            return end;
                        }
                    }
                    continue;
                }
                // Caught up: wait for the ring, the client, or the ping timer.
                self.conn.out.release_spare();
                let woke = tokio::select! {
                    biased;
                    ev = poll_fn(|cx| self.conn.poll_io(cx)) => Woke::Io(ev),
                    _ = self.ring.wait_beyond(self.next - 1) => Woke::Ring,
                    _ = ping_timer.as_mut() => Woke::Timer,
                };
                match woke {
                    Woke::Io(ev) => {
                        if let Some(end) = Self::io_end(ev) {
                            return end;
                        }
                    }
                    Woke::Ring => {}
                    Woke::Timer => {
                        let due = self.conn.last_progress + ping_every;
                        if Instant::now() >= due {
                            self.conn.out.push(ws::OP_PING, Bytes::new());
                            self.conn.last_progress = Instant::now();
                            ping_timer.as_mut().reset(Instant::now() + ping_every);
                        } else {
                            ping_timer.as_mut().reset(due);
                        }
                    }
                }
                continue;
            }
            // Write phase: flush the batch (and any control frames).
            if !writing {
                writing = true;
                self.conn.last_progress = Instant::now();
            }
            let woke = tokio::select! {
                biased;
                ev = poll_fn(|cx| self.conn.poll_io(cx)) => Woke::Io(ev),
                _ = slow_timer.as_mut() => Woke::Timer,
            };
            match woke {
                Woke::Io(ev) => {
                    if let Some(end) = Self::io_end(ev) {
                        return end;
                    }
                }
                Woke::Ring => {}
                Woke::Timer => {
                    // The socket took nothing for a while; has the client
                    // read anything meanwhile? Asked at most every quarter
                    // of `too_slow_after` while a write waits.
                    let now = Instant::now();
                    if self.conn.client_consumed() {
                        self.conn.last_progress = now;
                    }
                    let due = self.conn.last_progress + too_slow;
                    if now >= due {
                        return self.too_slow(metrics).await;
                    }
                    slow_timer.as_mut().reset(due.min(now + too_slow / 4));
                }
            }
        }
    }

    /// The batch is fully written: everything before `next` is delivered.
    fn batch_written(&self, metrics: &mut SessionMetrics) {
        let delivered = self.next.saturating_sub(1);
        if let Some(registration) = &self.registration {
            registration.set_delivered(delivered);
        }
        metrics.delivered(self.batch_frames, self.batch_bytes);
        metrics.observe_lag(|| self.ring.head().saturating_sub(delivered));
    }

    /// Maps an I/O event to the end of the session, if it is one.
    fn io_end(ev: IoEvent) -> Option<SessionEnd> {
        match ev {
            IoEvent::Drained => None,
            IoEvent::Eof => Some(SessionEnd::ClientClosed),
            IoEvent::Failed(end) => Some(end),
        }
    }

    /// Resolves the cursor into `next`, queueing `#info OutdatedCursor` when
    /// due, or the `FutureCursor` error frame and close for a future cursor.
    async fn start(&mut self, cursor: Option<u64>) -> Result<(), SessionEnd> {
        let head = self.ring.head();
        let Some(cursor) = cursor else {
            self.next = head + 1;
            return Ok(());
        };
        if cursor > head {
            // Queued only: the main loop writes it, sees `closing` and ends.
            let message = format!("cursor {cursor} is beyond the current sequence {head}");
            self.conn.error_and_close(
                ErrorFrame::FUTURE_CURSOR,
                &message,
                SessionEnd::FutureCursor,
            );
            return Ok(());
        }
        let ring_oldest = self.ring.oldest();
        if cursor == 0 || cursor + 1 >= ring_oldest {
            // Everything the client needs is in the ring (or it asked for
            // everything): no need to ask the log where it starts. Keeps a
            // reconnect storm off the blocking pool.
            self.next = cursor + 1;
            return Ok(());
        }
        let backfill = self.backfill.clone();
        let log_oldest = tokio::task::spawn_blocking(move || backfill.oldest_seq())
            .await
            .map_err(|e| SessionEnd::Io(format!("log read task failed: {e}")))?;
        let oldest = log_oldest.map_or(ring_oldest, |o| o.min(ring_oldest));
        if cursor + 1 < oldest {
            let mut frame = Vec::with_capacity(96);
            Event::Info(Info {
                name: Info::OUTDATED_CURSOR,
                message: Some("cursor is older than the backfill window; replaying from the oldest retained event"),
            })
            .encode(&mut frame);
            self.conn.out.push_binary(Bytes::from(frame));
            self.next = oldest;
        } else {
            self.next = cursor + 1;
        }
        Ok(())
    }

    /// Queues the next batch from the ring; false if `next` is not in it
    /// (overwritten, so the log must serve it).
    fn fill_from_ring(&mut self) -> bool {
        if self.next < self.ring.oldest() {
            return false;
        }
        let (out, frames, bytes) = (
            &mut self.conn.out,
            &mut self.batch_frames,
            &mut self.batch_bytes,
        );
        // The last seq taken, not `next + n`: a mirror's seqs may have gaps.
        let mut last = None;
        let n = self.ring.read_batch(
            self.next,
            self.cfg.batch_max_frames,
            self.cfg.batch_max_bytes,
            |seq, frame| {
                *frames += 1;
                *bytes += frame.len() as u64;
                out.push_binary(frame);
                last = Some(seq);
            },
        );
        if let Some(last) = last {
            self.next = last + 1;
        }
        n > 0
    }

    /// Queues the next batch from the log (catch-up). Client frames keep being
    /// served while the blocking read runs. If the log has nothing at `next`
    /// although the ring has moved past it (retention dropped those events),
    /// skips ahead to the oldest event still available.
    async fn fill_from_log(&mut self) -> Result<(), SessionEnd> {
        let backfill = self.backfill.clone();
        let (from, max_frames, max_bytes) = (
            self.next,
            self.cfg.batch_max_frames,
            self.cfg.batch_max_bytes,
        );
        let mut read = pin!(tokio::task::spawn_blocking(move || {
            let events = backfill.read_from(from, max_frames, max_bytes)?;
            let oldest = if events.is_empty() {
                backfill.oldest_seq()
            } else {
                None
            };
            Ok::<_, BackfillError>((events, oldest))
        }));
        let result = loop {
            tokio::select! {
                biased;
                r = read.as_mut() => break r,
                ev = poll_fn(|cx| self.conn.poll_io(cx)) => {
                    if let Some(end) = Self::io_end(ev) {
                        return Err(end);
                    }
                    if self.conn.is_closing() {
                        // The client is leaving; the read result is not needed
                        // (the blocking read finishes on its own).
                        return Ok(());
                    }
                }
            }
        };
        if self.conn.is_closing() {
            return Ok(()); // the client is leaving: send nothing more
        }
        let detail = match result {
            Ok(Ok((events, log_oldest))) => {
                self.queue_log_events(events, log_oldest);
                return Ok(());
            }
            Ok(Err(e)) => format!("log read failed: {e}"),
            Err(e) => format!("log read task failed: {e}"),
        };
        self.log_failed(detail);
        Ok(())
    }

    /// Queues events read from the log, or skips ahead if there were none.
    fn queue_log_events(&mut self, events: Vec<(u64, Bytes)>, log_oldest: Option<u64>) {
        for (seq, frame) in events {
            if seq < self.next {
                continue; // defensive: the log returned something already sent
            }
            self.batch_frames += 1;
            self.batch_bytes += frame.len() as u64;
            self.conn.out.push_binary(frame);
            self.next = seq + 1;
        }
        if self.conn.out.is_empty() {
            // Nothing at or after `next` in the log, yet `next` is not in the
            // ring either: those events are gone. Resume at what still exists.
            let ring_oldest = self.ring.oldest();
            let resume = log_oldest.filter(|&o| o > self.next).unwrap_or(ring_oldest);
            if resume > self.next {
                tracing::warn!(
                    from = self.next,
                    to = resume,
                    "events missing from the log during catch-up; skipping ahead"
                );
                self.next = resume;
            }
        }
    }

    /// The log failed: queue a close 1011; the main loop sends it and ends
    /// the session with [`SessionEnd::Io`].
    fn log_failed(&mut self, detail: String) {
        tracing::warn!(error = %detail, "subscriber catch-up failed");
        self.conn.close(
            ws::CLOSE_INTERNAL_ERROR,
            "log unavailable",
            SessionEnd::Io(detail),
        );
    }

    /// The socket stalled: drop what is not started, queue
    /// `ConsumerTooSlow` and a close behind the frame in progress, make
    /// room for them in the kernel, and say goodbye.
    async fn too_slow(mut self, metrics: &mut SessionMetrics) -> SessionEnd {
        self.conn.out.truncate_unstarted();
        self.conn.error_and_close(
            ErrorFrame::CONSUMER_TOO_SLOW,
            "subscriber stopped reading",
            SessionEnd::TooSlow,
        );
        self.conn.make_room_for_goodbye();
        self.say_goodbye(metrics).await
    }

    /// A close frame is queued: unlist the session, write what is queued,
    /// send FIN and wait for the client to close, then end with the reason
    /// the close was queued for. A subscriber dropped as too slow gets
    /// `too_slow_after` for each step (it may resume reading and should
    /// then find the error frame, the close and a clean end of stream);
    /// others get [`FINAL_FLUSH`]. The end is counted in the metrics at
    /// once, not after the goodbye.
    async fn say_goodbye(self, metrics: &mut SessionMetrics) -> SessionEnd {
        let Session {
            mut conn,
            registration,
            cfg,
            ..
        } = self;
        drop(registration);
        let end = conn.take_closing().unwrap_or(SessionEnd::ClientClosed);
        metrics.ended(&end);
        let grace = match end {
            SessionEnd::TooSlow => cfg.too_slow_after,
            _ => FINAL_FLUSH,
        };
        conn.finish(grace, grace).await;
        end
    }
}
