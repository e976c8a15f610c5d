//! What an inbound HTTP server allows ([`ServerLimits`]) and the handles
//! of what it counts ([`super::metrics`], by server): shared by the accept loop
//! ([`super::http_server`]) and each connection ([`super::http_conn`]).

use std::time::Duration;

use metrics::{Counter, Gauge};

use super::metrics::{
    ACCEPT_ERRORS, ACCEPT_ERROR_KINDS, CONNECTIONS, EVICTED, HEADER_TIMEOUTS, IDLE_TIMEOUTS,
    REFUSED,
};

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
