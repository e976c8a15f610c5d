//! Fan-out: the broadcast ring of encoded frames and the `subscribeRepos`
//! subscriber sessions that stream it to firehose consumers.
//!
//! ```no_run
//! use std::sync::Arc;
//! use atrelay::fanout::{
//!     serve_subscriber, Backfill, MemoryBackfill, Peer, Ring, SessionConfig, Subscribers,
//! };
//! use bytes::Bytes;
//!
//! # async fn example(upgraded: tokio::net::TcpStream, remote: std::net::SocketAddr) {
//! let log = Arc::new(MemoryBackfill::new());
//! let ring = Ring::new(1 << 16, 0);
//! let subscribers = Subscribers::new();
//! // The sequencer, after each group commit is durable:
//! log.push(1, Bytes::from_static(b"encoded #commit frame"));
//! ring.publish(1, Bytes::from_static(b"encoded #commit frame"));
//! // The HTTP layer, after answering the WebSocket upgrade (`None` instead
//! // of the `Peer` if the session need not be listed):
//! let peer = Peer { registry: subscribers.clone(), remote: Some(remote), user_agent: None };
//! let cfg = SessionConfig::default();
//! tokio::spawn(serve_subscriber(upgraded, ring.clone(), log, None, cfg, Some(peer)));
//! // Meanwhile, the admin API:
//! let listed = subscribers.list(ring.head());
//! # }
//! ```
//!
//! - [`Ring`] (`ring.rs`): fixed slots of shared `Bytes`, one writer, lock-free
//!   readers, epoch reclamation. The writer never waits for a subscriber.
//! - [`Coalescing`] (`wakeup.rs`): when waiting sessions are woken — at
//!   once while few wait, in shared ticks of at most a few milliseconds
//!   when many do, so a wake (and a socket write) carries several events.
//! - [`Backfill`] (`backfill.rs`): the log as a session reads it for cursor
//!   replays and for catch-up after falling behind the ring;
//!   [`MemoryBackfill`] for tests.
//! - [`serve_subscriber`] (`session.rs`): one subscriber: cursor rules,
//!   ring / log switching, idle pings, slow-consumer policy.
//! - [`Subscribers`] (`registry.rs`): the live sessions, with their peer
//!   address and how far behind the ring each one is.
//! - `conn.rs`: both directions of one socket in one poll, and the goodbye
//!   (last frames, FIN, no reset).
//! - [`ReadAhead`] (`socket.rs`): the TCP socket options a session sets, and
//!   bytes read past the upgrade request.
//! - [`FrameQueue`] (`writer.rs`): batched zero-copy vectored writes.
//! - [`ws`] (`ws.rs`): the WebSocket frame format, server side.
//! - [`metrics`] (`metrics.rs`): `atrelay_fanout_*`.
//!
//! Invariants this module upholds (design §2): a frame is only published
//! after it is durable (the caller's contract, relied on for catch-up);
//! replays are byte-identical to live frames (the ring and the log hold the
//! same encoded bytes and sessions never re-encode); a slow or dead
//! subscriber holds one batch of handles and never slows the writer or
//! another subscriber.

#![warn(missing_docs)]

mod backfill;
mod conn;
pub mod metrics;
mod registry;
mod ring;
mod session;
mod session_end;
mod socket;
mod wakeup;
mod writer;
pub mod ws;

pub use backfill::{Backfill, BackfillError, MemoryBackfill};
pub use registry::{
    Admitted, Peer, Registration, SubscriberInfo, Subscribers, SubscribersFull,
    MAX_USER_AGENT_BYTES,
};
pub use ring::Ring;
pub use session::{serve_subscriber, SessionConfig};
pub use session_end::SessionEnd;
pub use socket::ReadAhead;
pub use wakeup::Coalescing;
pub use writer::FrameQueue;
pub use ws::accept_key;
