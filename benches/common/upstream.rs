//! In-process PDS hosts for the end-to-end benches (`ingest`, `pipeline`):
//! the library's emulated host ([`atrelay::upstream_sim`]) serving a fixed,
//! pre-encoded stream, written as fast as the socket takes it up to a
//! release point the bench moves.

use std::net::SocketAddr;
use std::sync::Arc;

use atrelay::upstream_sim::{HostFrame, SimHost, SimHostConfig};
use bytes::Bytes;

/// A `time` with microseconds, for frames a host stamps as it writes them:
/// same length as every stamp, so the stamp overwrites it in place.
pub const STAMPED_TIME: &str = atrelay::upstream_sim::emit_time::PLACEHOLDER;

/// A PDS serving a fixed stream over `subscribeRepos`; frames up to the
/// release point are written as fast as the socket takes them.
pub struct Upstream {
    pub addr: SocketAddr,
    host: SimHost,
}

impl Upstream {
    /// Serves `frames` as they are.
    pub async fn start(frames: Arc<Vec<Bytes>>) -> Upstream {
        Upstream::start_with(frames.iter().cloned().map(HostFrame::verbatim)).await
    }

    /// Like [`start`](Self::start), but each frame's `time` (which must be
    /// [`STAMPED_TIME`]) is overwritten with the wall-clock time, in
    /// microseconds, at the moment the host hands the frame to its socket.
    /// `time` is outside the signed commit, and the relay forwards it as is,
    /// so a subscriber can compute end-to-end latency from it. Costs the host
    /// one copy of each frame.
    pub async fn start_stamped(frames: Arc<Vec<Bytes>>) -> Upstream {
        let frames: Vec<HostFrame> = frames.iter().cloned().map(HostFrame::new).collect();
        assert!(
            frames.iter().all(HostFrame::is_stamped),
            "frame carries STAMPED_TIME"
        );
        Upstream::start_with(frames).await
    }

    async fn start_with(frames: impl IntoIterator<Item = HostFrame>) -> Upstream {
        let host = SimHost::start(SimHostConfig::default()).await.unwrap();
        host.stream.stage(frames);
        Upstream {
            addr: host.addr,
            host,
        }
    }

    /// Lets the host write its frames up to index `upto` (exclusive).
    pub fn release(&self, upto: usize) {
        self.host.stream.release_to(upto);
    }
}
