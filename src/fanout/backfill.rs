//! The log as seen by a subscriber session: where replays and catch-up reads
//! come from once a seq is no longer (or not yet) in the ring.
//!
//! ```
//! use atrelay::fanout::{Backfill, MemoryBackfill};
//! use bytes::Bytes;
//!
//! let log = MemoryBackfill::new();
//! for seq in 1..=5 {
//!     log.push(seq, Bytes::from(vec![seq as u8; 3]));
//! }
//! let got = log.read_from(3, 10, 1 << 20).unwrap();
//! assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3, 4, 5]);
//! assert_eq!(log.oldest_seq(), Some(1));
//! ```

use std::sync::RwLock;

use bytes::Bytes;

/// Why a [`Backfill`] read failed: the implementation's own error (the
/// RocksDB log's, say), kept whole. Boxed because the fan-out knows no
/// storage; its message is the cause's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BackfillError(Box<dyn std::error::Error + Send + Sync>);

impl BackfillError {
    /// Wraps the cause.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BackfillError {
        BackfillError(cause.into())
    }
}

/// Read access to the sequenced event log (implemented by the RocksDB log).
///
/// The calls are blocking (disk reads); sessions run them on the blocking
/// pool with `tokio::task::spawn_blocking`, never on the async workers.
///
/// Contract the session relies on: every seq the ring has published (≤
/// `Ring::head`) is readable here unless retention dropped it, and the bytes
/// are exactly the frame that was published, so a replay is byte-identical
/// to the live stream.
pub trait Backfill: Send + Sync + 'static {
    /// Events with seq ≥ `from_seq`, in seq order: at most `max_events`, and
    /// stopping before `max_bytes` of frames is exceeded (but returning at
    /// least one event if there is any, however large). Empty when there is
    /// nothing at or after `from_seq`. On an error the session ends the
    /// subscriber, naming the cause.
    fn read_from(
        &self,
        from_seq: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, BackfillError>;

    /// The lowest retained seq, or `None` if the log holds no event.
    fn oldest_seq(&self) -> Option<u64>;
}

/// An in-memory [`Backfill`]: a seq-sorted `Vec` behind a lock. For tests
/// (here and in other modules) and for small local setups; not for
/// production volumes.
#[derive(Debug, Default)]
pub struct MemoryBackfill {
    events: RwLock<Vec<(u64, Bytes)>>,
}

impl MemoryBackfill {
    /// An empty log.
    pub fn new() -> MemoryBackfill {
        MemoryBackfill::default()
    }

    /// Appends an event. Seqs must be strictly increasing (gaps allowed);
    /// an event at or below the last seq is ignored, as a log would refuse it.
    pub fn push(&self, seq: u64, frame: Bytes) {
        let mut events = self.write();
        if events.last().map_or(true, |(last, _)| *last < seq) {
            events.push((seq, frame));
        }
    }

    /// Drops every event with seq < `seq` (retention).
    pub fn trim_before(&self, seq: u64) {
        let mut events = self.write();
        let cut = events.partition_point(|(s, _)| *s < seq);
        events.drain(..cut);
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The highest seq held.
    pub fn last_seq(&self) -> Option<u64> {
        self.read().last().map(|(s, _)| *s)
    }

    // A panic while holding the lock cannot leave the Vec inconsistent
    // (push, drain and reads are each one operation), so poisoning is ignored.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(u64, Bytes)>> {
        self.events.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<(u64, Bytes)>> {
        self.events.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backfill for MemoryBackfill {
    fn read_from(
        &self,
        from_seq: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, BackfillError> {
        let events = self.read();
        let start = events.partition_point(|(s, _)| *s < from_seq);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (seq, frame) in events[start..].iter().take(max_events) {
            if !out.is_empty() && bytes + frame.len() > max_bytes {
                break;
            }
            bytes += frame.len();
            out.push((*seq, frame.clone()));
        }
        Ok(out)
    }

    fn oldest_seq(&self) -> Option<u64> {
        self.read().first().map(|(s, _)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_respect_limits_and_retention() {
        let log = MemoryBackfill::new();
        assert!(log.is_empty());
        assert_eq!(log.oldest_seq(), None);
        assert_eq!(log.read_from(0, 10, 100).unwrap(), vec![]);
        for seq in [1, 2, 3, 5, 8] {
            log.push(seq, Bytes::from(vec![0; 10]));
        }
        log.push(8, Bytes::new()); // duplicate: ignored
        log.push(4, Bytes::new()); // out of order: ignored
        assert_eq!(log.len(), 5);
        assert_eq!(log.last_seq(), Some(8));
        let seqs = |v: Vec<(u64, Bytes)>| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(seqs(log.read_from(4, 10, 1000).unwrap()), [5, 8]);
        assert_eq!(seqs(log.read_from(0, 2, 1000).unwrap()), [1, 2]);
        assert_eq!(seqs(log.read_from(0, 10, 25).unwrap()), [1, 2]);
        assert_eq!(seqs(log.read_from(0, 10, 1).unwrap()), [1]);
        assert_eq!(seqs(log.read_from(9, 10, 1000).unwrap()), Vec::<u64>::new());
        log.trim_before(3);
        assert_eq!(log.oldest_seq(), Some(3));
        assert_eq!(seqs(log.read_from(0, 10, 1000).unwrap()), [3, 5, 8]);
    }
}
