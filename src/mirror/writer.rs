//! The mirror's log writer: the only writer of a mirror's log, in place of
//! the relay's sequencer.
//!
//! It takes batches of checked upstream frames from the follower, appends
//! them in group commits (one RocksDB WriteBatch each, seqs unchanged), and
//! only once a batch is durable publishes its frames to the ring: no
//! subscriber sees an event a crash could lose, and the log's head is the
//! cursor the follower resumes from after a restart or `kill -9`, so nothing
//! is skipped or stored twice.
//!
//! A thread, not a task: appends block on the fsync. While it writes, the
//! follower keeps reading into the bounded channel; when that is full, TCP
//! backpressure reaches the upstream. A transient write failure (disk full,
//! descriptors) stalls and retries the same batch
//! ([`EventLog::append_retrying`]); what retrying cannot fix is returned.

use bytes::Bytes;
use tokio::sync::mpsc::Receiver;

use super::metrics;
use crate::clock::now_micros;
use crate::fanout::Ring;
use crate::log::{AppendBatch, EventLog, LogError, LogEvent};

/// Most events in one group commit.
pub const MAX_BATCH: usize = 1024;

/// One upstream event on its way to the log, as the upstream sent it.
#[derive(Clone, Debug)]
pub struct Upstreamed {
    /// The upstream's seq, kept.
    pub seq: u64,
    /// The exact frame bytes, kept.
    pub frame: Bytes,
    /// When this mirror received it (for age retention).
    pub received_micros: u64,
    /// The event's `time`, if readable (for the lag metric).
    pub time_micros: Option<i64>,
}

/// Runs until the follower drops its sender, or until `stop` turns true
/// while the writer is stalled. Returns the error that stopped it, if any:
/// one retrying cannot fix.
pub fn run(
    log: EventLog,
    ring: Ring,
    mut rx: Receiver<Vec<Upstreamed>>,
    stop: crate::lifecycle::StopSignal,
) -> Result<(), LogError> {
    let mut batch: Vec<Upstreamed> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.extend(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.extend(next),
                Err(_) => break,
            }
        }
        if !commit(&log, &ring, &mut batch, &stop)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes one group and publishes it. `Ok(false)`: not written, because the
/// mirror is stopping while the writer was stalled (the next start reads
/// those events from the upstream again: the log's head is behind them).
fn commit(
    log: &EventLog,
    ring: &Ring,
    batch: &mut Vec<Upstreamed>,
    stop: &crate::lifecycle::StopSignal,
) -> Result<bool, LogError> {
    // The follower sends only increasing seqs; this guards the log's rule
    // across a follower restart too.
    let head = log.last_seq();
    batch.retain(|e| e.seq > head);
    let Some(newest_time) = batch.last().map(|e| e.time_micros) else {
        return Ok(true);
    };
    let append = AppendBatch {
        events: batch
            .drain(..)
            .map(|e| LogEvent {
                seq: e.seq,
                received_micros: e.received_micros,
                frame: e.frame,
            })
            .collect(),
        ..AppendBatch::default()
    };
    match log.append_retrying(&append, |_| stop.is_stopping()) {
        Ok(()) => {}
        Err(e) if e.is_transient() => {
            tracing::warn!(
                events = append.events.len(),
                "stopping while the mirror's log writer is stalled; these events are read again from the upstream at the next start"
            );
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    let n = append.events.len() as u64;
    let head = log.last_seq();
    ring.publish_batch(append.events.into_iter().map(|e| (e.seq, e.frame)));
    ::metrics::counter!(metrics::EVENTS).increment(n);
    ::metrics::gauge!(metrics::HEAD_SEQ).set(head as f64);
    if let Some(time) = newest_time {
        let lag = (now_micros() as i64).saturating_sub(time).max(0);
        ::metrics::gauge!(metrics::LAG_SECONDS).set(lag as f64 / 1e6);
    }
    Ok(true)
}
