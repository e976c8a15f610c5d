//! The hand-over from a crawler to a verifier thread: one event as received,
//! with the identity the crawler resolved for it.
//!
//! Its own file because both sides use it (the crawler builds it, the pool
//! carries it, the verifier decides it) and neither owns it.

use std::sync::Arc;

use bytes::Bytes;

use crate::identity::Identity;

/// An event as received from an upstream, with the identity the crawler
/// resolved for it.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// The upstream connection's host (`hostname[:port]`, lower-case).
    pub host: Arc<str>,
    /// The upstream's seq for this event.
    pub upstream_seq: u64,
    /// The frame exactly as received.
    pub frame: Bytes,
    pub received_micros: u64,
    /// The DID's current identity, when the event needs one.
    pub identity: Option<Arc<Identity>>,
    /// The identity was already force-refreshed for this event (or a
    /// refresh was refused by the rate limits): decide on what is at hand.
    pub refreshed: bool,
}
