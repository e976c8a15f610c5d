//! The sequencer: the only writer of the log.
//!
//! It drains accepted events in batches (group commit), gives each the next
//! relay seq (gap-free, strictly increasing: the log refuses anything else),
//! splices the seq into the frame the verifier pre-encoded, and writes events,
//! account states and host cursors in one batch. Only after the batch is
//! durable are the frames published to the ring, so no subscriber ever sees an
//! event a crash could lose (design invariants 1, 2, 7).
//!
//! A write that fails for a transient reason (descriptors exhausted, disk
//! full) is retried, the same batch, until it succeeds
//! ([`EventLog::append_retrying`]): the sequencer stalls, verifiers and
//! crawlers wait behind its bounded channel, and nothing is published or
//! acknowledged upstream until the batch is durable. Only a failure that
//! retrying cannot fix (corruption, a gap: a bug) stops the relay:
//! continuing would let in-memory state (the verifiers' account views) run
//! ahead of the log.
//!
//! Verifier threads send their accepted events in batches ([`ToSequenceBatch`],
//! one per batch they decided), so the sequencer is woken once per batch, not
//! per event. After a batch is written, the sequencer marks the account updates
//! it carries as written ([`Written`]): only then may a verifier evict those
//! accounts from its cache.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam::channel::{Receiver, RecvTimeoutError};

use super::account_cache::Written;
use super::decision::Accepted;
use super::hosts::HostEntry;
use super::metrics::{
    CHAIN_BREAKS, EVENTS_ACCEPTED, EVENTS_SEQUENCED, GROUP_COMMIT_EVENTS, GROUP_COMMIT_SECONDS,
};
use crate::fanout::Ring;
use crate::log::{AccountState, AppendBatch, EventLog, LogError, LogEvent};
use crate::wire::frame::EventKind;

/// An accepted event on its way to the log.
#[derive(Debug)]
pub struct ToSequence {
    pub accepted: Box<Accepted>,
    /// The upstream it came from; `None` for events the relay itself emits
    /// (an operator's takedown).
    pub host: Option<Arc<HostEntry>>,
    /// The host the account moved away from, if it migrated with this event
    /// (its count changed; its state is written with this batch).
    pub moved_from: Option<Arc<HostEntry>>,
    pub upstream_seq: u64,
    pub received_micros: u64,
}

/// Accepted events from one verifier thread, in the order it decided them.
#[derive(Debug, Default)]
pub struct ToSequenceBatch {
    pub events: Vec<ToSequence>,
    /// Marked once the events are in the log: the account updates they carry
    /// (and every earlier one of that verifier) are then written.
    pub written: Option<Written>,
}

/// Most events in one group commit (a group takes whole
/// [`ToSequenceBatch`]es, so it may exceed this by one of them).
pub const MAX_BATCH: usize = 1024;

/// Runs until every sender is gone, or until `stop` turns true while the
/// log writer is stalled. Returns the error that stopped it, if any: one
/// retrying cannot fix.
pub fn run(
    log: EventLog,
    ring: Ring,
    rx: Receiver<ToSequenceBatch>,
    stop: crate::lifecycle::StopSignal,
) -> Result<(), LogError> {
    let mut batch: Vec<ToSequence> = Vec::with_capacity(MAX_BATCH);
    let mut written: Vec<Written> = Vec::new();
    let take = |b: ToSequenceBatch, batch: &mut Vec<ToSequence>, written: &mut Vec<Written>| {
        batch.extend(b.events);
        written.extend(b.written);
    };
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(500)) {
            Ok(first) => take(first, &mut batch, &mut written),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => take(next, &mut batch, &mut written),
                Err(_) => break,
            }
        }
        if !batch.is_empty() && !commit(&log, &ring, &mut batch, &stop)? {
            // Stopping: the stalled batch is not written, and neither its
            // account updates nor its hosts' cursors are (they go in the
            // same batch), so the next start reads those events again.
            return Ok(());
        }
        // Only now may the verifiers evict the accounts these events update:
        // a reload from the log reads the new state.
        for w in written.drain(..) {
            w.done();
        }
    }
}

/// Writes one group and publishes it. `Ok(false)`: not written, because the
/// relay is stopping while the writer was stalled.
fn commit(
    log: &EventLog,
    ring: &Ring,
    batch: &mut Vec<ToSequence>,
    stop: &crate::lifecycle::StopSignal,
) -> Result<bool, LogError> {
    let started = std::time::Instant::now();
    let n = batch.len();
    let mut events = Vec::with_capacity(n);
    let mut accounts: Vec<(String, Option<AccountState>)> = Vec::with_capacity(n);
    let mut hosts: HashMap<Arc<str>, Arc<HostEntry>> = HashMap::new();
    let mut last_host: Option<Arc<HostEntry>> = None;
    // Counted per batch: one registry lookup per type, not per event.
    let mut accepted_by_kind: HashMap<EventKind, u64> = HashMap::new();
    for (seq, item) in (log.last_seq() + 1..).zip(batch.drain(..)) {
        let ToSequence {
            accepted,
            host,
            moved_from,
            upstream_seq,
            received_micros,
        } = item;
        let Accepted {
            did,
            kind,
            frame,
            account,
            chain_break,
            ..
        } = *accepted;
        events.push(LogEvent {
            seq,
            received_micros,
            frame: frame.into_frame(seq),
        });
        if let Some(state) = account {
            accounts.push((did, Some(state)));
        }
        *accepted_by_kind.entry(kind).or_default() += 1;
        if let Some(old) = moved_from {
            hosts.entry(old.hostname.clone()).or_insert(old);
        }
        let Some(host) = host else { continue };
        if chain_break {
            host.chain_breaks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!(CHAIN_BREAKS).increment(1);
        }
        // These events are durable once the batch is; count them finished so
        // the cursor written below covers them.
        host.finish(upstream_seq);
        // Runs of one host are the rule (a verifier's batch comes from one
        // crawler): look the map up only when the host changes.
        if !last_host.as_ref().is_some_and(|h| Arc::ptr_eq(h, &host)) {
            hosts
                .entry(host.hostname.clone())
                .or_insert_with(|| host.clone());
            last_host = Some(host);
        }
    }
    // One write per account, its latest state: an account write lands at a
    // random place in the memtable's skip list, so it costs more than an
    // event's (appended at the end). Reversed, then stably sorted by DID,
    // the latest state of each DID comes first in its run; dedup keeps it.
    // Sorted writes also find their places in the skip list faster.
    accounts.reverse();
    accounts.sort_by(|a, b| a.0.cmp(&b.0));
    accounts.dedup_by(|later, kept| later.0 == kept.0);
    let append = AppendBatch {
        events,
        accounts,
        hosts: hosts
            .values()
            .map(|h| (h.hostname.to_string(), h.snapshot()))
            .collect(),
    };
    match log.append_retrying(&append, |_| stop.is_stopping()) {
        Ok(()) => {}
        Err(e) if e.is_transient() => {
            tracing::warn!(
                events = n,
                "stopping while the event log writer is stalled: {n} accepted events are not written; they are read again from their hosts at the next start"
            );
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    for (name, state) in &append.hosts {
        if let Some(host) = hosts.get(name.as_str()) {
            host.cursor_written(state.cursor);
        }
    }
    ring.publish_batch(append.events.into_iter().map(|e| (e.seq, e.frame)));
    metrics::counter!(EVENTS_SEQUENCED).increment(n as u64);
    for (kind, n) in accepted_by_kind {
        metrics::counter!(EVENTS_ACCEPTED, "type" => kind.label()).increment(n);
    }
    metrics::histogram!(GROUP_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::histogram!(GROUP_COMMIT_EVENTS).record(n as f64);
    Ok(true)
}
