//! Why a log operation failed.

use super::metrics;

/// A failure of the event log or its state column families.
///
/// Every variant says what to do about it: [`LogError::Gap`] is a bug in the
/// caller (the sequencer handed out a wrong seq) and nothing was written;
/// [`LogError::Corrupt`] and [`LogError::SchemaVersion`] mean the data
/// directory is damaged or belongs to another version and needs an operator;
/// [`LogError::Io`] is a resource or I/O failure that may clear by itself
/// (retry: [`LogError::is_transient`]); [`LogError::RocksDb`] is any other
/// failure RocksDB reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// RocksDB reported an I/O-level failure: out of file descriptors
    /// (`EMFILE`, `ENFILE`), disk full, out of memory, a failed read, write
    /// or fsync, or a write refused because an earlier one failed. Nothing
    /// is known to be damaged: the operation may succeed when retried once
    /// the resource is back ([`EventLog::append`](super::EventLog::append)
    /// recovers the database first). A failed write's outcome is unknown.
    #[error("rocksdb I/O: {0}")]
    Io(String),
    /// RocksDB reported an error that is not I/O (an invalid option, an
    /// unsupported operation, a column family that is not open). The
    /// operation had no effect unless the message says otherwise.
    #[error("rocksdb: {0}")]
    RocksDb(String),
    /// An appended event's seq was not the next one. Relay seqs are gap-free
    /// (design invariant 2), and a mirror's only increase
    /// ([`SeqRule`](super::SeqRule)), so the whole batch was rejected and
    /// nothing was written.
    #[error("event seq {got} breaks the sequence: expected {expected} (batch rejected, nothing written)")]
    Gap {
        /// The lowest seq acceptable at that position: `last_seq + 1 + index`
        /// in a gap-free log, the only one acceptable there.
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

impl LogError {
    /// Whether the failure may clear by itself (a resource came back, a disk
    /// was cleaned up), so the same operation is worth retrying: true only
    /// for [`LogError::Io`]. Everything else is corruption, a wrong version
    /// or a bug, and retrying cannot help.
    pub fn is_transient(&self) -> bool {
        matches!(self, LogError::Io(_))
    }

    /// What ran out, for metrics and log lines (a small fixed set):
    /// `descriptors` (`EMFILE`, `ENFILE`), `disk_full` (`ENOSPC`, quota),
    /// `memory` (`ENOMEM`), `io` (any other I/O failure), or `fatal` for
    /// errors that are not transient.
    pub fn cause(&self) -> &'static str {
        let LogError::Io(msg) = self else {
            return metrics::CAUSE_FATAL;
        };
        // RocksDB appends the strerror text of the errno it got.
        if msg.contains("Too many open files") {
            metrics::CAUSE_DESCRIPTORS
        } else if msg.contains("No space left") || msg.contains("quota exceeded") {
            metrics::CAUSE_DISK_FULL
        } else if msg.contains("Cannot allocate memory") {
            metrics::CAUSE_MEMORY
        } else {
            metrics::CAUSE_IO
        }
    }
}

impl From<rocksdb::Error> for LogError {
    fn from(e: rocksdb::Error) -> LogError {
        use rocksdb::ErrorKind as K;
        match e.kind() {
            // Resource and I/O failures, and the ones RocksDB itself says to
            // retry; its background-error state (every write refused after a
            // failed flush or WAL switch) reports the original I/O error.
            K::IOError | K::Busy | K::TryAgain | K::TimedOut | K::Incomplete | K::Aborted => {
                LogError::Io(e.into_string())
            }
            K::Corruption => LogError::Corrupt(e.into_string()),
            _ => LogError::RocksDb(e.into_string()),
        }
    }
}

impl From<std::io::Error> for LogError {
    /// An operating-system failure around the database (the descriptor
    /// probe before a reopen): always transient.
    fn from(e: std::io::Error) -> LogError {
        LogError::Io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_and_their_causes() {
        let emfile = LogError::Io(
            "IO error: While open a file for appending: /d/000021.log: Too many open files".into(),
        );
        assert!(emfile.is_transient());
        assert_eq!(emfile.cause(), "descriptors");
        let enfile = LogError::Io("Too many open files in system".into());
        assert_eq!(enfile.cause(), "descriptors");
        assert_eq!(
            LogError::Io("IO error: No space left on device".into()).cause(),
            "disk_full"
        );
        assert_eq!(
            LogError::Io("Cannot allocate memory".into()).cause(),
            "memory"
        );
        assert_eq!(
            LogError::Io("IO error: Input/output error".into()).cause(),
            "io"
        );
        for fatal in [
            LogError::Corrupt("x".into()),
            LogError::RocksDb("x".into()),
            LogError::Gap {
                expected: 2,
                got: 3,
            },
            LogError::InvalidArgument("x".into()),
            LogError::SchemaVersion {
                found: 0,
                expected: 1,
            },
        ] {
            assert!(!fatal.is_transient(), "{fatal}");
            assert_eq!(fatal.cause(), "fatal");
        }
        let io: LogError = std::io::Error::from_raw_os_error(24).into();
        assert!(io.is_transient());
        assert_eq!(io.cause(), "descriptors", "{io}");
    }
}
