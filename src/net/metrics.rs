//! The network edge's metrics: the inbound HTTP servers' connections
//! (`atrelay_http_*`, by server) and the outbound DNS lookups
//! (`atrelay_dns_*`). Each name is a constant used by the code that
//! records it; [`FAMILIES`] describes them all.

use crate::metrics::{Family, KnownLabel};

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

/// The `server` label of the relay's (or mirror's) public HTTP server.
pub const SERVER_RELAY: &str = "relay";
/// The `server` label of the `/metrics` server.
pub const SERVER_METRICS: &str = "metrics";

/// Counter: host names resolved for outbound connections.
pub const DNS_LOOKUPS: &str = "atrelay_dns_lookups_total";
/// Counter: outbound connections refused for a local or private address.
pub const DNS_REFUSED: &str = "atrelay_dns_refused_total";

/// Every server a relay runs, each labelled `server`.
const SERVERS: KnownLabel = KnownLabel {
    key: "server",
    values: || vec![SERVER_RELAY, SERVER_METRICS],
};

/// Every `(server, kind)` of [`ACCEPT_ERRORS`].
const SERVER_ACCEPT_ERRORS: &[KnownLabel] = &[
    SERVERS,
    KnownLabel {
        key: "kind",
        values: || ACCEPT_ERROR_KINDS.to_vec(),
    },
];

/// Every network family, described and registered at start (the HTTP ones
/// once per server).
pub const FAMILIES: &[Family] = &[
    Family::gauge(
        CONNECTIONS,
        "Open inbound connections, upgraded websockets included, by server",
    )
    .zero_per(&[SERVERS]),
    Family::gauge(MAX_CONNECTIONS, "The inbound connection cap, by server").zero_per(&[SERVERS]),
    Family::counter(
        REFUSED,
        "Connections refused with 503 at the cap (every slot busy), by server",
    )
    .zero_per(&[SERVERS]),
    Family::counter(
        EVICTED,
        "Idle or header-reading connections closed at the cap to admit a new one, by server",
    )
    .zero_per(&[SERVERS]),
    Family::counter(
        HEADER_TIMEOUTS,
        "Connections closed for not sending a complete request head in time, by server",
    )
    .zero_per(&[SERVERS]),
    Family::counter(
        IDLE_TIMEOUTS,
        "Keep-alive connections closed after the idle timeout, by server",
    )
    .zero_per(&[SERVERS]),
    Family::counter(
        ACCEPT_ERRORS,
        "Failed accepts, by server and kind (emfile, enfile, enobufs, enomem, other)",
    )
    .zero_per(SERVER_ACCEPT_ERRORS),
    Family::counter(DNS_LOOKUPS, "Host names resolved for outbound connections"),
    Family::counter(
        DNS_REFUSED,
        "Outbound connections refused because the host is or resolves to a local or private address",
    ),
];
