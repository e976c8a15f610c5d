//! Dispatch batching: the events a connection has read and not yet handed
//! to the verifier threads, grouped per thread so a busy stream costs one
//! hand-over per batch.
//!
//! Separate from reading ([`super::connection`]) because it owns the one
//! ordering rule that keeps the host's cursor safe: events are registered
//! with the host only as they are sent.

use crate::relay::hosts::HostEntry;
use crate::relay::inbound::Inbound;
use crate::relay::pool::{Pool, ShardMsg};

/// Events read and not yet dispatched, per verifier thread.
///
/// They are registered with the host ([`HostEntry::begin`], which holds the
/// persisted cursor back until they finish) only when they are handed to
/// the verifiers, with no wait in between: a crawler stopped while events
/// are pending (an aborted task) has registered none of them, so the host's
/// cursor stays below them and they are read again.
pub(super) struct Pending {
    by_shard: Vec<Vec<Inbound>>,
    /// The pending events' upstream seqs, in arrival (= upstream) order.
    seqs: Vec<u64>,
}

impl Pending {
    pub(super) fn new(shards: usize) -> Pending {
        Pending {
            by_shard: (0..shards).map(|_| Vec::new()).collect(),
            seqs: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.seqs.len()
    }

    pub(super) fn push(&mut self, shard: usize, ev: Inbound) {
        self.seqs.push(ev.upstream_seq);
        self.by_shard[shard].push(ev);
    }

    /// Sends everything pending, each thread's share in one message. False
    /// once the verifier pool has stopped.
    pub(super) async fn flush(&mut self, pool: &Pool, host: &HostEntry) -> bool {
        if self.seqs.is_empty() {
            return true;
        }
        // Room in every channel that gets events first: these are the only
        // waits, and nothing is registered or sent before they are over.
        let mut permits = Vec::with_capacity(self.by_shard.len());
        for shard in 0..self.by_shard.len() {
            if self.by_shard[shard].is_empty() {
                continue;
            }
            match pool.reserve(shard).await {
                Some(permit) => permits.push((shard, permit)),
                None => return false,
            }
        }
        for seq in self.seqs.drain(..) {
            host.begin(seq);
        }
        for (shard, permit) in permits {
            let events = &mut self.by_shard[shard];
            let batch = std::mem::replace(events, Vec::with_capacity(events.len()));
            permit.send(ShardMsg::Events(batch));
        }
        true
    }
}
