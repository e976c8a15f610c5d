//! The relay's data plane: crawlers read upstream hosts, verifier threads
//! decide every event against its account's state and identity, the sequencer
//! appends accepted events to the log and publishes them to the ring.
//!
//! ```text
//! crawler (task per host) ─▶ pool (threads, sharded by DID) ─▶ sequencer (thread) ─▶ log ─▶ ring
//! ```
//!
//! Starting and stopping a whole relay (these parts, the HTTP server,
//! retention) is composition, in [`crate::node`]: nothing here knows HTTP.

pub mod account_cache;
pub mod crawler;
pub mod decision;
pub mod hosts;
pub mod inbound;
pub mod metrics;
pub mod outbound;
pub mod pool;
mod reason;
mod refresh_limit;
pub mod sequencer;
pub mod verifier;
