//! The event stream of one [`super::SimHost`], shared by its connections and
//! whoever feeds it (a test appending events, a pacer releasing frames).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

use tokio::sync::Notify;

use super::HostFrame;

/// A frame with the upstream seq it is served under.
#[derive(Clone, Debug)]
pub(super) struct Sequenced {
    pub seq: u64,
    pub frame: HostFrame,
}

/// The host's frames in order, each with its upstream seq, and how many of
/// them are released (sendable). Frames are kept for the whole run, so a
/// subscriber can disconnect and resume from any cursor.
///
/// Two ways to feed it: [`HostStream::stage`] then [`HostStream::release`]
/// (a pacer deciding when frames go out; seq is the index + 1), or
/// [`HostStream::publish`] (append one frame under a chosen seq and release
/// everything at once, the way a test scripts an upstream).
#[derive(Default)]
pub struct HostStream {
    frames: RwLock<Vec<Sequenced>>,
    released: AtomicUsize,
    notify: Notify,
    /// Frames written to sockets (a subscriber reconnecting may be sent some
    /// twice).
    pub sent: AtomicU64,
    /// Subscriptions accepted so far.
    pub connections: AtomicU64,
}

impl HostStream {
    /// Appends frames, not yet released, under seq index + 1; returns the
    /// seq of the first.
    pub fn stage(&self, frames: impl IntoIterator<Item = HostFrame>) -> u64 {
        let mut all = self.frames.write().expect("stream lock");
        let first = all.len() as u64 + 1;
        let staged = frames.into_iter().enumerate().map(|(i, frame)| Sequenced {
            seq: first + i as u64,
            frame,
        });
        all.extend(staged);
        first
    }

    /// Appends `frame` under `seq` (which need not follow the last one: a
    /// test may script gaps or repeats), releases every frame and wakes the
    /// connections.
    pub fn publish(&self, seq: u64, frame: HostFrame) {
        let len = {
            let mut all = self.frames.write().expect("stream lock");
            all.push(Sequenced { seq, frame });
            all.len()
        };
        self.released.fetch_max(len, Ordering::AcqRel);
        self.wake();
    }

    /// Frames appended so far; the next staged frame gets seq `len + 1`.
    pub fn len(&self) -> usize {
        self.frames.read().expect("stream lock").len()
    }

    /// Whether no frame was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The seq after the last frame's (1 for an empty stream).
    pub fn next_seq(&self) -> u64 {
        let all = self.frames.read().expect("stream lock");
        all.last().map_or(1, |f| f.seq + 1)
    }

    /// Makes `n` more frames sendable; [`HostStream::wake`] tells the
    /// connections (one wake-up after releasing on many hosts).
    pub fn release(&self, n: usize) {
        self.released.fetch_add(n, Ordering::AcqRel);
    }

    /// Makes the frames before index `upto` sendable and wakes the
    /// connections.
    pub fn release_to(&self, upto: usize) {
        self.released.fetch_max(upto, Ordering::AcqRel);
        self.wake();
    }

    /// Wakes the connections after [`HostStream::release`].
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Frames sendable so far (never more than were appended).
    pub fn released(&self) -> usize {
        self.released.load(Ordering::Acquire).min(self.len())
    }

    /// Resolves at the next [`HostStream::wake`]; create it before checking
    /// for work so no wake-up is missed.
    pub(super) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// The index of the first released frame above `cursor`.
    pub(super) fn resume_index(&self, cursor: u64) -> usize {
        let released = self.released();
        let all = self.frames.read().expect("stream lock");
        all[..released]
            .iter()
            .position(|f| f.seq > cursor)
            .unwrap_or(released)
    }

    /// Up to `max` released frames from index `from`.
    pub(super) fn batch(&self, from: usize, max: usize) -> Vec<Sequenced> {
        let released = self.released();
        let all = self.frames.read().expect("stream lock");
        let end = released.min(from.saturating_add(max));
        all.get(from..end).map(<[_]>::to_vec).unwrap_or_default()
    }
}
