//! The one inbound HTTP/1.1 server: the relay's XRPC and firehose port, PDS
//! mode, the PLC directory and the metrics endpoint all run an
//! [`axum::Router`] through [`serve`].
//!
//! ```no_run
//! use atrelay::net::http_server::{serve, ServerLimits};
//! # async fn example() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//! let shutdown = atrelay::lifecycle::Shutdown::new();
//! let limits = ServerLimits { max_connections: 1000, ..ServerLimits::default() };
//! tokio::spawn(serve(listener, app, "relay", limits, shutdown.signal()));
//! // ... later: stop accepting, close idle connections, finish requests.
//! shutdown.begin();
//! # Ok(())
//! # }
//! ```
//!
//! # What a stranger's connections can cost
//!
//! Every accepted socket takes one of `max_connections` slots until it
//! closes — a websocket handed to a subscriber session too: the slot
//! travels inside the socket ([`UpgradedTcp`]). So the server never holds
//! more descriptors than its cap, and the cap is sized below the process's
//! open-file limit ([`super::fd_limit`]).
//!
//! - **Header read timeout.** A connection that has not sent a complete
//!   request head within `header_read_timeout` of connecting (or of the
//!   first byte of its next request) is closed: a client trickling headers
//!   (slowloris) holds its slot for that long at most.
//! - **Idle timeout.** A keep-alive connection with no request for
//!   `idle_timeout` is closed.
//! - **Eviction at the cap.** When every slot is taken, a new connection
//!   evicts the oldest connection that has no request in progress (waiting
//!   for headers or idle): slow or idle connections cannot lock real
//!   clients out. When every slot has a request in progress or is an
//!   upgraded websocket, the new connection is refused at once with a 503,
//!   `Retry-After` and an XRPC error body, without reading its request.
//! - **Accept errors** (out of descriptors, buffers or memory) never spin:
//!   the loop backs off 50–500 ms, counts them by kind and logs at most a
//!   line every [`LOG_EVERY`] with how many it suppressed.
//!
//! Metrics (`atrelay_http_*`, label `server` from a fixed set of names:
//! `relay`, `pds`, `plc`, `metrics`): open connections and the cap,
//! refusals, evictions, header and idle timeouts, accept errors by kind.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::http_conn::{serve_connection, Shared};
pub use super::http_conn::{ServerIo, Slot};
use super::http_limits::ServerMetrics;
pub use super::http_limits::{ServerLimits, MIN_CAP};
use super::metrics::MAX_CONNECTIONS;
use crate::lifecycle::{StopSignal, TaskGroup};

/// At most one log line about accept errors per server this often.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// How long a refused connection may stay open while the client reads the
/// 503: we read and discard what it sends meanwhile, so closing does not
/// reset the connection before the answer is read.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The answer to a connection refused at the cap (sent without reading
/// the request).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 87\r\n\
\r\n\
{\"error\":\"TooManyConnections\",\"message\":\"the server is at its connection limit; retry\"}";

/// How long the accept loop waits for an evicted connection's slot to free
/// before admitting the new one anyway.
const EVICTION_WAIT: Duration = Duration::from_millis(50);

/// The TCP socket under a connection this server upgraded, with the bytes
/// the client sent after its upgrade request (read along with it) and the
/// connection's slot, which must be kept as long as the socket.
#[derive(Debug)]
pub struct UpgradedTcp {
    pub stream: TcpStream,
    pub read_ahead: Bytes,
    pub slot: Slot,
}

/// Takes the TCP socket out of an upgrade of a connection [`serve`]
/// accepted; gives the upgrade back unchanged if it came from another
/// server.
pub fn into_tcp(
    upgraded: hyper::upgrade::Upgraded,
) -> Result<UpgradedTcp, hyper::upgrade::Upgraded> {
    let parts = upgraded.downcast::<hyper_util::rt::TokioIo<ServerIo>>()?;
    let (stream, slot) = parts.io.into_inner().into_parts();
    Ok(UpgradedTcp {
        stream,
        read_ahead: parts.read_buf,
        slot,
    })
}

/// Serves `router` on `listener` until `stop` turns true, then stops
/// accepting, closes connections without a request in progress, lets the
/// others finish and returns once they have. `server` names it in metrics
/// and logs (`relay`, `pds`, `plc` or `metrics`).
///
/// Requests carry [`axum::extract::ConnectInfo<SocketAddr>`]; upgrades
/// (websockets) are supported, and the upgraded socket keeps its slot
/// ([`into_tcp`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    server: &'static str,
    limits: ServerLimits,
    mut stop: StopSignal,
) {
    let limits = ServerLimits {
        max_connections: match limits.max_connections {
            0 => MIN_CAP,
            n => n,
        },
        ..limits
    };
    metrics::gauge!(MAX_CONNECTIONS, "server" => server).set(limits.max_connections as f64);
    let shared = Arc::new(Shared::new(limits, ServerMetrics::new(server)));
    let refusing = Arc::new(Semaphore::new(super::fd_limit::REFUSING_CONNECTIONS));
    // Every connection task holds a guard; all gone = every connection
    // closed or upgraded.
    let connections = TaskGroup::new();
    let mut errors = AcceptErrors::new(server);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.stopping() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                errors.succeeded();
                accepted
            }
            Err(e) => {
                let pause = errors.failed(&e, &shared.metrics);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.stopping() => break,
                }
                continue;
            }
        };
        if shared.open() >= limits.max_connections {
            if !shared.evict_oldest_idle() {
                shared.metrics.refused.increment(1);
                refuse(stream, &refusing);
                continue;
            }
            shared.wait_for_room(EVICTION_WAIT).await;
        }
        let admitted = shared.admit(stream);
        tokio::spawn(serve_connection(
            shared.clone(),
            admitted,
            peer,
            router.clone(),
            stop.clone(),
            connections.guard(),
        ));
    }
    drop(listener);
    connections.ended().await;
}

/// Answers a connection refused at the cap with [`REFUSAL`] without
/// reading its request, then closes it. The answer fits a fresh socket's
/// send buffer, so it is written without waiting. Up to
/// [`super::fd_limit::REFUSING_CONNECTIONS`] refused connections linger
/// briefly, reading what the client sends so closing does not reset the
/// connection under its answer; beyond that they are closed at once.
fn refuse(stream: TcpStream, refusing: &Arc<Semaphore>) {
    // A plain send: the runtime has not yet seen the new socket writable.
    let sock = socket2::SockRef::from(&stream);
    let _ = sock.send(REFUSAL);
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            let mut total = 0;
            while total < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
    });
}

/// Accept failures: counted by kind, backed off, and logged at most once
/// per [`LOG_EVERY`].
struct AcceptErrors {
    server: &'static str,
    /// Consecutive failures (the backoff grows with them).
    streak: u32,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn new(server: &'static str) -> AcceptErrors {
        AcceptErrors {
            server,
            streak: 0,
            last_log: None,
            suppressed: 0,
        }
    }

    fn succeeded(&mut self) {
        self.streak = 0;
    }

    /// Counts `e` and returns how long to wait before accepting again:
    /// out of descriptors, buffers or memory, 50 ms doubling to 500 ms
    /// while it lasts (retrying at once would only fail again, in a loop);
    /// anything else (a connection reset before it was accepted), a
    /// moment, growing the same way if it repeats.
    fn failed(&mut self, e: &io::Error, metrics: &ServerMetrics) -> Duration {
        let kind = accept_error_kind(e);
        metrics.accept_errors[kind].increment(1);
        self.streak = self.streak.saturating_add(1);
        let now = Instant::now();
        if self
            .last_log
            .map_or(true, |t| now.duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(
                server = self.server,
                error = %e,
                suppressed = self.suppressed,
                "accepting a connection failed; backing off"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        let base = if kind < 4 {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(1)
        };
        let doublings = self.streak.saturating_sub(1).min(10);
        (base * 2u32.pow(doublings)).min(Duration::from_millis(500))
    }
}

/// Index into [`ACCEPT_ERROR_KINDS`](super::metrics::ACCEPT_ERROR_KINDS).
fn accept_error_kind(e: &io::Error) -> usize {
    match e.raw_os_error() {
        Some(libc::EMFILE) => 0,
        Some(libc::ENFILE) => 1,
        Some(libc::ENOBUFS) => 2,
        Some(libc::ENOMEM) => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests;
