//! PDS mode's firehose source: the one place its events get a seq.
//!
//! The relay's sequencer batches thousands of events a second from many
//! verifier threads; a PDS emits one event per write, under the writing
//! account's lock. So here an event is sequenced, appended to the same
//! [`EventLog`] and published to the same [`Ring`] the relay uses, one at a
//! time under a mutex: seqs are gap-free, and an event reaches subscribers
//! only after it is durable (design invariants 1 and 2), exactly as in the
//! relay. Subscribers are served by the same fan-out sessions.

use std::sync::Mutex;

use bytes::Bytes;

use crate::fanout::Ring;
use crate::log::{AppendBatch, EventLog, LogError, LogEvent};
use crate::wire::frame::Event;

/// How long an event's append is retried through transient failures before
/// the write that caused it fails.
const EMIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Sequences, persists and publishes events.
pub struct EventSink {
    log: EventLog,
    ring: Ring,
    lock: Mutex<()>,
}

impl EventSink {
    /// A sink appending to `log` and publishing to `ring` (whose head must
    /// be the log's last seq).
    pub fn new(log: EventLog, ring: Ring) -> EventSink {
        EventSink {
            log,
            ring,
            lock: Mutex::new(()),
        }
    }

    /// Gives `event` the next seq, makes it durable, then publishes it.
    /// Returns the seq. Events without a seq (`#info`) are refused.
    pub fn emit(&self, mut event: Event<'_>, now_micros: u64) -> Result<u64, LogError> {
        let _order = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.log.last_seq() + 1;
        if !event.set_seq(seq as i64) {
            return Err(LogError::InvalidArgument(
                "only #commit, #sync, #identity and #account are sequenced".into(),
            ));
        }
        let mut frame = Vec::with_capacity(512);
        event.encode(&mut frame);
        let frame = Bytes::from(frame);
        // A transient failure (descriptors, disk space) is retried for a
        // while; the caller holds the repo's lock and waits, so the commit
        // it already stored is not left without its event.
        self.log.append_retrying(
            &AppendBatch {
                events: vec![LogEvent {
                    seq,
                    received_micros: now_micros,
                    frame: frame.clone(),
                }],
                ..AppendBatch::new()
            },
            |stalled| stalled >= EMIT_PATIENCE,
        )?;
        self.ring.publish(seq, frame);
        Ok(seq)
    }

    /// The last seq emitted.
    pub fn last_seq(&self) -> u64 {
        self.log.last_seq()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogOptions;
    use crate::wire::frame::{Account, Identity, Info};

    #[test]
    fn events_are_sequenced_durable_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        let ring = Ring::new(16, log.last_seq());
        let sink = EventSink::new(log.clone(), ring.clone());
        let did = "did:plc:abcdefghijklmnopqrstuvwx";
        let time = "2026-11-25T00:00:00.000Z";
        let s1 = sink
            .emit(
                Event::Identity(Identity {
                    seq: 0,
                    did,
                    time,
                    handle: Some("a.test"),
                }),
                1,
            )
            .unwrap();
        let s2 = sink
            .emit(
                Event::Account(Account {
                    seq: 99,
                    did,
                    time,
                    active: true,
                    status: None,
                }),
                2,
            )
            .unwrap();
        assert_eq!((s1, s2), (1, 2));
        assert!(sink
            .emit(
                Event::Info(Info {
                    name: "x",
                    message: None
                }),
                3
            )
            .is_err());
        let stored = log.read_from(1, 10, 1 << 20).unwrap();
        assert_eq!(stored.len(), 2);
        let (seq, frame) = &stored[1];
        assert_eq!(*seq, 2);
        assert_eq!(Event::decode(frame).unwrap().seq(), Some(2));
        assert_eq!(ring.head(), 2);
        assert_eq!(ring.get(2).as_deref(), Some(&frame[..]));
    }
}
