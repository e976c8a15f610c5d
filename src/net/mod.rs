//! The network edge, shared by the relay, PDS mode and the PLC directory:
//! what a host name is, which addresses a stranger may make us dial, the
//! one outbound HTTP client, and the inbound HTTP server with its
//! connection limits.
//!
//! Knows nothing of events, repos or identities: everything above uses it,
//! it uses nothing of the crate above `wire` (host name syntax).

mod backoff;
mod dns;
mod domain;
pub mod fd_limit;
mod host;
mod http_conn;
mod http_limits;
pub mod http_server;
pub mod metrics;
pub mod outbound;
mod private;
pub mod upstream_log;
mod ws_dial;

pub use backoff::backoff;
pub use dns::{Dns, DnsError};
pub use domain::{covers, normalize_domain};
pub use host::{host_part, HostName, HostNameError};
pub use outbound::Outbound;
pub use private::is_private_ip;
pub use ws_dial::{dial_ws, DialError, Keepalive, WsClient, WsEnd};
