//! What one [`EventLog::append`](super::EventLog::append) writes atomically.

use bytes::Bytes;

use super::account::AccountState;
use super::host::HostState;

/// One sequenced event as stored: its relay seq, when it was received, and
/// the exact outbound frame bytes (header + body), which the log stores and
/// returns byte-for-byte so a cursor replay equals the live stream
/// (design invariant 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    /// Relay seq: must be exactly the next one (`last_seq + 1`, then `+2`, ...).
    pub seq: u64,
    /// Receive time, microseconds since the Unix epoch; used for age retention.
    pub received_micros: u64,
    /// The encoded frame, shared with the broadcast ring without copies.
    pub frame: Bytes,
}

/// Everything one group commit writes, in one RocksDB WriteBatch: the events
/// and the account and host state they change. Either all of it is durable or
/// none of it is, so after a crash a host's cursor never runs ahead of its
/// events and an account's rev never refers to a lost commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendBatch {
    /// Events in seq order, continuing the log without a gap. May be empty
    /// (a state-only update, e.g. a host status change).
    pub events: Vec<LogEvent>,
    /// Account state to store, keyed by DID; `None` deletes the account.
    /// Later entries for the same DID win.
    pub accounts: Vec<(String, Option<AccountState>)>,
    /// Host state to store, keyed by hostname. Later entries win.
    pub hosts: Vec<(String, HostState)>,
}

impl AppendBatch {
    /// An empty batch.
    pub fn new() -> AppendBatch {
        AppendBatch::default()
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.accounts.is_empty() && self.hosts.is_empty()
    }
}
