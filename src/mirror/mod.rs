//! The fan-out tier: an atrelay that follows ONE relay's
//! `com.atproto.sync.subscribeRepos` and serves its own subscribers from its
//! own log and ring, with the upstream's seqs and frame bytes unchanged, so
//! a consumer can move between the relay and any of its mirrors (or a
//! mirror of a mirror) with the same cursor. This is how an operator
//! outgrows one machine's sockets (design §5, "Where it is going").
//!
//! ```text
//! upstream relay ──ws──▶ follower ──frames──▶ writer ──▶ RocksDB log ──▶ ring ──▶ sessions
//!   (one, trusted)       (checks framing,     (group commit,          (same fan-out code
//!                         seq order, size)      then publish)            as the relay's)
//! ```
//!
//! - [`follower`]: the upstream websocket reader: resumes at the log's head
//!   (`cursor=<head>`; after `kill -9` too, since the log is the only state),
//!   reconnects with capped exponential backoff and jitter, and drops (and
//!   counts, and logs within a line budget) what it cannot store.
//! - [`frame_check`]: what the follower accepts from one upstream frame.
//! - [`writer`]: the log's only writer on a mirror: appends batches, then
//!   publishes them to the ring (durable before visible, as the sequencer).
//! - [`proxy`]: the sync queries and `requestCrawl`, passed to the upstream
//!   over HTTP with its status and body unchanged.
//! - The mirror's HTTP surface is wired in [`crate::node`] (`node/mirror_routes.rs`):
//!   the service modules hold no routes.
//! - [`upstream`]: the upstream's URL, as the operator gave it.
//! - [`metrics`] (`metrics.rs`): `atrelay_mirror_*`.
//!
//! # What a mirror trusts
//!
//! A mirror does **not** re-verify: no signatures, no MST inversion, no
//! identity lookups. It trusts its one upstream, which the operator chose
//! (usually their own relay) and which did all of that already; verifying
//! again would cost a relay's CPU per mirror, the very thing a fan-out tier
//! exists to avoid. It still never trusts the bytes enough to panic or to
//! pass on garbage: every frame must decode strictly as a `subscribeRepos`
//! frame (size limit, header, body of the announced type), carry a seq
//! above the last one stored, and fit the 5 MB protocol limit; anything
//! else is dropped, counted by reason (`atrelay_mirror_frames_dropped_total`)
//! and logged, and the stream goes on.
//!
//! # Seqs and cursors
//!
//! The log keeps the upstream's seqs ([`crate::log::SeqRule::Increasing`]:
//! gaps allowed, nothing at or below the head), and the ring marks gaps so
//! subscribers jump them. `#info` frames (no seq) are logged, not stored.
//! Subscribers are served by the same [`crate::fanout`] sessions as the
//! relay's, so `OutdatedCursor`, `FutureCursor` and replays behave the same.
//! An upstream `FutureCursor` (it lost events this mirror holds) is logged
//! as an error and retried at the longest backoff with the same cursor,
//! never by resetting: the spec asks a consumer to wait for an operator.

pub mod follower;
pub mod frame_check;
pub mod metrics;
pub mod proxy;
pub mod upstream;
pub mod writer;

pub use follower::{Follower, FollowerConfig};
pub use proxy::Proxy;
pub use upstream::{Upstream, UpstreamError};
pub use writer::{Upstreamed, MAX_BATCH};
