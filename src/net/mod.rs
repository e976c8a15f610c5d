//! The network edge, shared by the relay, PDS mode and the PLC directory:
//! what a host name is, which addresses a stranger may make us dial, the
//! one outbound HTTP client, and the inbound HTTP server with its
//! connection limits.
//!
//! Knows nothing of events, repos or identities: everything above uses it,
//! it uses nothing of the crate but the clock-free helpers here.

pub mod fd_limit;
mod http_conn;
pub mod http_server;
