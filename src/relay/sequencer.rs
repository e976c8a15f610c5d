//! The sequencer: the only writer of the log.
//!
//! It drains accepted events in batches (group commit), gives each the next
//! relay seq (gap-free, strictly increasing: the log refuses anything else),
//! splices the seq into the frame the verifier pre-encoded, and writes events,
//! account states and host cursors in one batch. Only after the batch is
//! durable are the frames published to the ring, so no subscriber ever sees an
//! event a crash could lose (design invariants 1, 2, 7).
//!
//! A failed write stops the relay: continuing would let in-memory state (the
//! verifiers' account views) run ahead of the log.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam::channel::{Receiver, RecvTimeoutError};

use super::hosts::HostEntry;
use super::verifier::Accepted;
use crate::fanout::Ring;
use crate::log::{AccountState, AppendBatch, EventLog, LogError, LogEvent};

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

/// Most events in one group commit.
pub const MAX_BATCH: usize = 1024;

/// Runs until every sender is gone. Returns the error that stopped it, if any.
pub fn run(log: EventLog, ring: Ring, rx: Receiver<ToSequence>) -> Result<(), LogError> {
    let mut batch: Vec<ToSequence> = Vec::with_capacity(MAX_BATCH);
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(500)) {
            Ok(first) => batch.push(first),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        commit(&log, &ring, &mut batch)?;
    }
}

/// Writes one group and publishes it.
fn commit(log: &EventLog, ring: &Ring, batch: &mut Vec<ToSequence>) -> Result<(), LogError> {
    let started = std::time::Instant::now();
    let mut events = Vec::with_capacity(batch.len());
    let mut accounts: HashMap<String, AccountState> = HashMap::new();
    let mut hosts: HashMap<Arc<str>, Arc<HostEntry>> = HashMap::new();
    // Counted per batch: one registry lookup per type, not per event.
    let mut accepted_by_kind: HashMap<&'static str, u64> = HashMap::new();
    for (seq, item) in (log.last_seq() + 1..).zip(batch.iter()) {
        events.push(LogEvent {
            seq,
            received_micros: item.received_micros,
            frame: item.accepted.frame.with_seq(seq),
        });
        if let Some(state) = &item.accepted.account {
            accounts.insert(item.accepted.did.clone(), state.clone());
        }
        *accepted_by_kind.entry(item.accepted.kind).or_default() += 1;
        if let Some(old) = &item.moved_from {
            hosts
                .entry(old.hostname.clone())
                .or_insert_with(|| old.clone());
        }
        let Some(host) = &item.host else { continue };
        if item.accepted.chain_break {
            host.chain_breaks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("atrelay_relay_chain_breaks_total").increment(1);
        }
        hosts
            .entry(host.hostname.clone())
            .or_insert_with(|| host.clone());
        // These events are durable once the batch is; count them finished so
        // the cursor written below covers them.
        host.finish(item.upstream_seq);
    }
    let append = AppendBatch {
        events,
        accounts: accounts.into_iter().map(|(d, s)| (d, Some(s))).collect(),
        hosts: hosts
            .values()
            .map(|h| (h.hostname.to_string(), h.snapshot()))
            .collect(),
    };
    log.append(&append)?;
    ring.publish_batch(append.events.into_iter().map(|e| (e.seq, e.frame)));
    metrics::counter!("atrelay_relay_events_sequenced_total").increment(batch.len() as u64);
    for (kind, n) in accepted_by_kind {
        metrics::counter!("atrelay_relay_events_accepted_total", "type" => kind).increment(n);
    }
    metrics::histogram!("atrelay_relay_group_commit_seconds")
        .record(started.elapsed().as_secs_f64());
    metrics::histogram!("atrelay_relay_group_commit_events").record(batch.len() as f64);
    batch.clear();
    Ok(())
}
