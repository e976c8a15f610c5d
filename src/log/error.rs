//! Why a log operation failed.

/// A failure of the event log or its state column families.
///
/// Every variant says what to do about it: [`LogError::Gap`] is a bug in the
/// caller (the sequencer handed out a wrong seq) and nothing was written;
/// [`LogError::Corrupt`] and [`LogError::SchemaVersion`] mean the data
/// directory is damaged or belongs to another version and needs an operator;
/// [`LogError::RocksDb`] is an I/O-level failure reported by RocksDB.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// RocksDB reported an error (I/O, open, write). The operation had no
    /// effect unless the message says otherwise.
    #[error("rocksdb: {0}")]
    RocksDb(String),
    /// An appended event's seq was not the next one. Relay seqs are gap-free
    /// (design invariant 2), so the whole batch was rejected and nothing was
    /// written.
    #[error("event seq {got} breaks the sequence: expected {expected} (batch rejected, nothing written)")]
    Gap {
        /// The only seq acceptable at that position (`last_seq + 1 + index`).
        expected: u64,
        /// The seq the caller supplied.
        got: u64,
    },
    /// A stored key or value could not be decoded. The data directory is
    /// damaged (or was written by something else); restore it from a backup
    /// or start a fresh one.
    #[error("corrupt log data: {0}")]
    Corrupt(String),
    /// The data directory was written with another on-disk layout version.
    #[error("log schema version {found} found, this build reads version {expected}: use a matching build or a fresh data directory")]
    SchemaVersion {
        /// The version recorded in the `meta` column family.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The caller passed an argument the log cannot store (an empty DID or
    /// hostname, a meta key in the reserved `log/` namespace, ...). Nothing
    /// was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl From<rocksdb::Error> for LogError {
    fn from(e: rocksdb::Error) -> LogError {
        LogError::RocksDb(e.into_string())
    }
}
