//! An emulated PDS host on loopback: the upstream side of the relay, for the
//! relay's tests, its end-to-end benches and the load generator.
//!
//! A [`SimHost`] serves `com.atproto.sync.subscribeRepos` from a
//! [`HostStream`] of pre-encoded frames (with cursor replay, as a real PDS
//! serves it), answers `com.atproto.server.describeServer` for the relay's
//! `requestCrawl` probe and `/xrpc/_health`, and counts subscriptions and
//! frames written. A frame can carry an emit-time placeholder that the host
//! overwrites as it writes the frame ([`emit_time`]), for end-to-end latency.
//!
//! Why this is public library code and not test support: the load generator
//! (`atrelay-loadtest`, a second binary of this package) ships it, and the
//! integration tests and benches can only reach the library's public API.
//! The relay itself never uses it.

pub mod emit_time;
mod frame;
mod host;
mod http;
mod stream;

pub use frame::HostFrame;
pub use host::{SimHost, SimHostConfig, WithoutCursor};
pub use stream::HostStream;
