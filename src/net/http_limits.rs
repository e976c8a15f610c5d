//! What an inbound HTTP server allows ([`ServerLimits`]) and what it
//! counts (`atrelay_http_*`, by server): shared by the accept loop
//! ([`super::http_server`]) and each connection ([`super::http_conn`]).

use std::time::Duration;

use metrics::{Counter, Gauge};

/// Gauge: sockets open (upgraded ones included), by server.
pub const CONNECTIONS: &str = "atrelay_http_connections";
/// Gauge: the connection cap, by server.
pub const MAX_CONNECTIONS: &str = "atrelay_http_max_connections";
/// Counter: connections refused with a 503 at the cap, by server.
pub const REFUSED: &str = "atrelay_http_connections_refused_total";
/// Counter: idle or header-reading connections closed to admit a new one.
pub const EVICTED: &str = "atrelay_http_connections_evicted_total";
/// Counter: connections closed for not sending a request head in time.
pub const HEADER_TIMEOUTS: &str = "atrelay_http_header_timeouts_total";
/// Counter: keep-alive connections closed after `idle_timeout`.
pub const IDLE_TIMEOUTS: &str = "atrelay_http_idle_timeouts_total";
/// Counter: failed `accept` calls, by server and `kind`
/// ([`ACCEPT_ERROR_KINDS`]).
pub const ACCEPT_ERRORS: &str = "atrelay_http_accept_errors_total";

/// The `kind` label values of [`ACCEPT_ERRORS`].
pub const ACCEPT_ERROR_KINDS: [&str; 5] = ["emfile", "enfile", "enobufs", "enomem", "other"];

/// A server's connection limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// A connection that has not sent a complete request head this long
    /// after connecting (or after the first byte of its next request) is
    /// closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Most sockets open at once, upgraded websockets included; 0 is
    /// replaced by [`MIN_CAP`] (callers derive the real figure from the
    /// open-file limit: [`super::fd_limit::connection_budget`]).
    pub max_connections: usize,
}

/// The cap used when a caller passes `max_connections: 0`.
pub const MIN_CAP: usize = super::fd_limit::MIN_CONNECTIONS;

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 0,
        }
    }
}

impl ServerLimits {
    /// These limits with `max_connections` 0 replaced by what the current
    /// open-file limit leaves once `reserve` and the rest of the process
    /// have their share ([`super::fd_limit::connection_budget`]).
    pub fn with_derived_cap(self, reserve: super::fd_limit::Reserve) -> ServerLimits {
        if self.max_connections != 0 {
            return self;
        }
        let limit = super::fd_limit::soft_limit().unwrap_or(1024);
        ServerLimits {
            max_connections: super::fd_limit::connection_budget(limit, reserve),
            ..self
        }
    }
}

/// The metric handles of one server, resolved once.
pub(crate) struct ServerMetrics {
    pub(crate) open: Gauge,
    pub(crate) refused: Counter,
    pub(crate) evicted: Counter,
    pub(crate) header_timeouts: Counter,
    pub(crate) idle_timeouts: Counter,
    pub(crate) accept_errors: [Counter; 5],
}

impl ServerMetrics {
    pub(crate) fn new(server: &'static str) -> ServerMetrics {
        let counter = |name: &'static str| metrics::counter!(name, "server" => server);
        ServerMetrics {
            open: metrics::gauge!(CONNECTIONS, "server" => server),
            refused: counter(REFUSED),
            evicted: counter(EVICTED),
            header_timeouts: counter(HEADER_TIMEOUTS),
            idle_timeouts: counter(IDLE_TIMEOUTS),
            accept_errors: ACCEPT_ERROR_KINDS
                .map(|kind| metrics::counter!(ACCEPT_ERRORS, "server" => server, "kind" => kind)),
        }
    }
}

/// Registers one server's `atrelay_http_*` series at zero, so a dashboard
/// shows "none" rather than "no data" before the first refusal.
pub fn register_at_zero(server: &'static str) {
    let m = ServerMetrics::new(server);
    m.open.increment(0.0);
    metrics::gauge!(MAX_CONNECTIONS, "server" => server).increment(0.0);
    for c in [&m.refused, &m.evicted, &m.header_timeouts, &m.idle_timeouts] {
        c.increment(0);
    }
    for c in &m.accept_errors {
        c.increment(0);
    }
}
