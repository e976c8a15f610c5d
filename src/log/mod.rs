//! The relay's sequenced event log and state store, on RocksDB.
//!
//! One database, four column families (layout in [`schema`]):
//!
//! - `events`: relay seq → receive time ‖ exact outbound frame bytes;
//! - `accounts`: DID → [`AccountState`];
//! - `hosts`: hostname → [`HostState`];
//! - `meta`: schema version, the retention segment index, caller settings.
//!
//! The sequencer is the only writer. Each group commit is one
//! [`AppendBatch`] — events plus the account and host state they change —
//! written as one RocksDB WriteBatch with the WAL fsynced
//! ([`Durability::Fsync`]), so what [`EventLog::append`] acknowledged
//! survives `kill -9` and power loss, and a crash never separates an event
//! from the state it implies (design invariants 1 and 7). Seqs must continue
//! the log exactly (`last_seq + 1`, ...), checked on every append (a
//! mirror's log, [`SeqRule::Increasing`], accepts any higher seq: it keeps
//! its upstream's, gaps included), and
//! `last_seq` is recovered from the events themselves on open (invariant 2).
//! Frames are returned byte-for-byte, so replay equals live (invariant 4).
//!
//! Retention drops whole ranges with `delete_range`, by age and by logical
//! size, and never the newest event ([`EventLog::enforce_retention`]).
//!
//! A failed write (descriptors or disk space exhausted) does not end the
//! log: the next write reopens the database in place and recovers the truth
//! from it, and [`EventLog::append_retrying`] retries the identical batch
//! (safe whether or not the failed write landed) until it is durable, with
//! a metric and an ERROR line while it waits (`recovery.rs`, `retry.rs`).
//!
//! ```
//! use atrelay::log::{AccountState, AppendBatch, EventLog, HostState, LogEvent, LogOptions};
//! use bytes::Bytes;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
//! let mut host = HostState::new(1_700_000_000_000_000);
//! host.cursor = 41; // upstream seq covered by this batch
//! log.append(&AppendBatch {
//!     events: vec![LogEvent { seq: log.last_seq() + 1, received_micros: 1, frame: Bytes::from_static(b"f1") }],
//!     accounts: vec![("did:plc:abc".into(), Some(AccountState::new("pds.example.com")))],
//!     hosts: vec![("pds.example.com".into(), host.clone())],
//! }).unwrap();
//!
//! assert_eq!(log.read_from(0, 10, 1 << 20).unwrap(), vec![(1, Bytes::from_static(b"f1"))]);
//! assert_eq!(log.get_host("pds.example.com").unwrap(), Some(host));
//! assert!(log.get_account("did:plc:abc").unwrap().unwrap().is_active());
//! ```

mod account;
mod batch;
mod batch_rep;
mod error;
mod event_log;
mod host;
mod host_status;
pub mod metrics;
mod open;
mod options;
mod recovery;
mod retention;
mod retry;
pub mod schema;
mod segment;
mod state;

pub use account::AccountState;
pub use batch::{AppendBatch, LogEvent};
pub use error::LogError;
pub use event_log::EventLog;
pub use host::HostState;
pub use host_status::HostStatus;
pub use options::{Durability, LogMemory, LogOptions, SeqRule, FILE_DESCRIPTORS};
pub use retention::RetentionReport;
