//! One inbound HTTP/1.1 connection of [`super::http_server`]: its phase
//! (waiting for headers, busy, idle), its socket and the slot it holds, and
//! the task that serves it until it closes, times out, is evicted or is
//! upgraded.
//!
//! The phase lives in one atomic word per connection so the accept loop can
//! pick and evict an idle connection without asking its task, and a request
//! that arrives at the same instant cannot be evicted half-way: both sides
//! move the phase with a compare-and-swap.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};
use tower_service::Service;

use super::http_limits::{ServerLimits, ServerMetrics};
use crate::lifecycle::{StopSignal, TaskGuard};

/// Largest request head (request line and headers) a client may send; the
/// read buffer never grows past it, so a connection costs at most this
/// much memory while it sends headers.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Phases of a connection, in the top two bits of [`Entry::state`]; the
/// other bits hold when the phase began, in milliseconds since the
/// server's start.
const HEADERS: u64 = 0; // reading a request head (or waiting for the first)
const IDLE: u64 = 1; // keep-alive, between requests
const BUSY: u64 = 2; // a request is being handled or its response written
const EVICTED: u64 = 3; // picked for eviction: the task closes it
const PHASE_SHIFT: u32 = 62;
const SINCE_MASK: u64 = (1 << PHASE_SHIFT) - 1;

/// What every connection of one server shares: the count of open sockets,
/// the table of connections still speaking HTTP (the eviction candidates),
/// the limits and the metrics.
pub(crate) struct Shared {
    pub(crate) limits: ServerLimits,
    pub(crate) metrics: ServerMetrics,
    epoch: Instant,
    /// Sockets accepted and not yet closed, upgraded ones included.
    open: AtomicUsize,
    /// Signalled whenever a slot frees.
    freed: Notify,
    /// Connections still speaking HTTP, by accept order (oldest first).
    table: Mutex<BTreeMap<u64, Arc<Entry>>>,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(limits: ServerLimits, metrics: ServerMetrics) -> Shared {
        Shared {
            limits,
            metrics,
            epoch: Instant::now(),
            open: AtomicUsize::new(0),
            freed: Notify::new(),
            table: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 & SINCE_MASK
    }

    fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Sockets open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Evicts the oldest connection that has no request in progress, if
    /// there is one. Its task closes it; its slot frees shortly after.
    pub(crate) fn evict_oldest_idle(&self) -> bool {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let evicted = table.values().any(|entry| entry.evict());
        if evicted {
            self.metrics.evicted.increment(1);
        }
        evicted
    }

    /// Waits until fewer than `max` sockets are open, at most `within`.
    pub(crate) async fn wait_for_room(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let freed = self.freed.notified();
            let mut freed = pin!(freed);
            freed.as_mut().enable();
            if self.open() < self.limits.max_connections {
                return;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return;
            }
        }
    }

    /// Takes a slot for an accepted socket and lists it as an eviction
    /// candidate, waiting for its first request.
    pub(crate) fn admit(self: &Arc<Shared>, stream: TcpStream) -> Admitted {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.metrics.open.increment(1.0);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            state: AtomicU64::new(HEADERS << PHASE_SHIFT | self.now_ms()),
            wake: Notify::new(),
        });
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry.clone());
        let io = ServerIo {
            stream,
            entry: entry.clone(),
            slot: Slot {
                shared: self.clone(),
            },
        };
        Admitted { io, id, entry }
    }

    fn unlist(&self, id: u64) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// A connection just accepted: its socket, its place in the table and its
/// phase.
pub(crate) struct Admitted {
    io: ServerIo,
    id: u64,
    entry: Arc<Entry>,
}

/// One connection's phase, shared by its task, its socket and the accept
/// loop.
pub(crate) struct Entry {
    state: AtomicU64,
    /// Wakes the connection's task: evicted, or its deadline moved.
    wake: Notify,
}

impl Entry {
    fn load(&self) -> (u64, u64) {
        let s = self.state.load(Ordering::Acquire);
        (s >> PHASE_SHIFT, s & SINCE_MASK)
    }

    /// Moves from one of `from` to `to` (stamped `now`), unless the phase
    /// is another; returns whether it moved.
    fn shift(&self, from: &[u64], to: u64, now: u64) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if !from.contains(&(cur >> PHASE_SHIFT)) {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                to << PHASE_SHIFT | now,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Picks this connection for eviction if it has no request in
    /// progress.
    fn evict(&self) -> bool {
        let moved = self.shift(&[HEADERS, IDLE], EVICTED, 0);
        if moved {
            self.wake.notify_one();
        }
        moved
    }
}

/// A slot among a server's `max_connections`, held by every accepted
/// socket until it closes, upgraded ones included: dropping it frees the
/// slot.
pub struct Slot {
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        self.shared.metrics.open.decrement(1.0);
        self.shared.freed.notify_waiters();
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// An accepted socket with its slot. Reading the first byte of a request
/// on an idle keep-alive connection starts that request's header clock.
pub struct ServerIo {
    stream: TcpStream,
    entry: Arc<Entry>,
    slot: Slot,
}

impl ServerIo {
    /// The socket and its slot, for a protocol that takes the connection
    /// over after an upgrade (the slot must live as long as the socket).
    pub fn into_parts(self) -> (TcpStream, Slot) {
        (self.stream, self.slot)
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && self.entry.load().0 == IDLE {
            let now = self.slot.shared.now_ms();
            if self.entry.shift(&[IDLE], HEADERS, now) {
                self.entry.wake.notify_one();
            }
        }
        r
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A body passed through unchanged, with `watch` told when it has been
/// read to its end, and dropped with it: a request body marks itself read
/// (`Arc<AtomicBool>`); a response body, dropped when hyper is done with it
/// (written or abandoned), marks its request finished ([`RequestDone`]).
struct Watched<B, W> {
    inner: B,
    watch: W,
}

/// What a [`Watched`] body tells.
trait BodyWatch: Unpin {
    /// The body has been read to its end.
    fn at_end(&self) {}
}

/// Set once the request body has been read to its end.
impl BodyWatch for Arc<AtomicBool> {
    fn at_end(&self) {
        self.store(true, Ordering::Relaxed);
    }
}

/// Its drop ends the request (none for a 101 or a refusal).
impl BodyWatch for Option<RequestDone> {}

struct RequestDone {
    entry: Arc<Entry>,
    shared: Arc<Shared>,
}

impl Drop for RequestDone {
    fn drop(&mut self) {
        if self.entry.shift(&[BUSY], IDLE, self.shared.now_ms()) {
            self.entry.wake.notify_one();
        }
    }
}

impl<B: HttpBody<Data = bytes::Bytes> + Unpin, W: BodyWatch> HttpBody for Watched<B, W> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.watch.at_end();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// `req` with its body watched, and the flag that says it was read to the
/// end (set at once for a request without a body).
fn watch_body(req: Request<Incoming>) -> (Request<Body>, Arc<AtomicBool>) {
    let read = Arc::new(AtomicBool::new(req.body().is_end_stream()));
    let watch = read.clone();
    (req.map(|inner| Body::new(Watched { inner, watch })), read)
}

/// How a connection's task ended, for the metrics.
enum Closed {
    /// The client left, the exchange failed, the server stopped, or an
    /// upgrade took the socket over.
    Done,
    Evicted,
    HeaderTimeout,
    IdleTimeout,
}

/// Serves one connection until it closes: requests go to `router` with
/// the peer's `ConnectInfo`; the header and idle timeouts, eviction and
/// the server's stop end it.
/// `_task` is the server's "every connection gone" guard, held until the
/// connection closes or is upgraded.
pub(crate) async fn serve_connection(
    shared: Arc<Shared>,
    admitted: Admitted,
    peer: SocketAddr,
    router: Router,
    mut stop: StopSignal,
    _task: TaskGuard,
) {
    let Admitted { io, id, entry } = admitted;
    let svc = {
        let (shared, entry) = (shared.clone(), entry.clone());
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let (shared, entry) = (shared.clone(), entry.clone());
            let mut router = router.clone();
            async move {
                if !entry.shift(&[HEADERS, IDLE], BUSY, shared.now_ms()) {
                    // Evicted the instant its request arrived: the task is
                    // closing the connection.
                    let mut res = Response::new(Watched {
                        inner: Body::empty(),
                        watch: None::<RequestDone>,
                    });
                    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    return Ok::<_, Infallible>(res);
                }
                req.extensions_mut().insert(ConnectInfo(peer));
                let (req, read) = watch_body(req);
                let mut res = match router.call(req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                if !read.load(Ordering::Relaxed) {
                    // Answered before the request body was read (a refusal
                    // of an oversized upload, say): the connection cannot
                    // be reused, so say so, or a client that pools it would
                    // send its next request into a closed socket.
                    res.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                // After a 101 the connection belongs to the upgrade: it
                // stays busy (never evictable) until the task lets it go.
                let done = (res.status() != StatusCode::SWITCHING_PROTOCOLS)
                    .then_some(RequestDone { entry, shared });
                Ok(res.map(|inner| Watched { inner, watch: done }))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    let mut conn = pin!(conn);
    let limits = shared.limits;
    let mut timer = pin!(sleep_until(Instant::now() + limits.header_read_timeout));
    let mut stopping = false;
    let closed = loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = &r {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                break Closed::Done;
            }
            _ = entry.wake.notified() => {
                if entry.load().0 == EVICTED {
                    break Closed::Evicted;
                }
                timer.as_mut().reset(deadline(&shared, &entry));
            }
            _ = timer.as_mut() => {
                let (phase, since) = entry.load();
                let now = Instant::now();
                match phase {
                    HEADERS if now >= shared.instant(since) + limits.header_read_timeout => {
                        break Closed::HeaderTimeout;
                    }
                    IDLE if now >= shared.instant(since) + limits.idle_timeout => {
                        break Closed::IdleTimeout;
                    }
                    EVICTED => break Closed::Evicted,
                    _ => timer.as_mut().reset(deadline(&shared, &entry)),
                }
            }
            _ = stop.stopping(), if !stopping => {
                stopping = true;
                // Without a request in progress, close now (a client half
                // way through its headers included); with one, finish it
                // and close.
                if entry.evict() {
                    break Closed::Done;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    shared.unlist(id);
    match closed {
        Closed::HeaderTimeout => shared.metrics.header_timeouts.increment(1),
        Closed::IdleTimeout => shared.metrics.idle_timeouts.increment(1),
        Closed::Done | Closed::Evicted => {}
    }
}

/// When the connection's current phase runs out: the header or idle
/// timeout from when it began, or a re-check after the shorter of the two
/// while busy.
fn deadline(shared: &Shared, entry: &Entry) -> Instant {
    let limits = &shared.limits;
    let (phase, since) = entry.load();
    match phase {
        HEADERS => shared.instant(since) + limits.header_read_timeout,
        IDLE => shared.instant(since) + limits.idle_timeout,
        EVICTED => Instant::now(),
        _ => Instant::now() + limits.header_read_timeout.min(limits.idle_timeout),
    }
}
