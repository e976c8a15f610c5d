//! The log's metrics (`atrelay_log_*`): appends, reads, retention, the
//! writer's retries and reopens. Each name is a constant used by the code
//! that records it; [`FAMILIES`] describes them all.

use metrics::Unit;

use crate::metrics::{Family, KnownLabel};

/// Counter: batches appended.
pub const APPEND_BATCHES: &str = "atrelay_log_append_batches_total";
/// Counter: events appended.
pub const APPENDED_EVENTS: &str = "atrelay_log_appended_events_total";
/// Counter: frame bytes appended.
pub const APPENDED_FRAME_BYTES: &str = "atrelay_log_appended_frame_bytes_total";
/// Histogram: seconds to write one batch durably.
pub const APPEND_SECONDS: &str = "atrelay_log_append_seconds";
/// Counter: events read back (replays, catch-up).
pub const READ_EVENTS: &str = "atrelay_log_read_events_total";
/// Gauge: approximate bytes of the retained events.
pub const EVENTS_BYTES: &str = "atrelay_log_events_bytes";
/// Gauge: the newest seq (the head).
pub const LAST_SEQ: &str = "atrelay_log_last_seq";
/// Gauge: the oldest retained seq.
pub const OLDEST_SEQ: &str = "atrelay_log_oldest_seq";
/// Counter: events removed by retention.
pub const RETENTION_REMOVED_EVENTS: &str = "atrelay_log_retention_removed_events_total";
/// Counter: bytes removed by retention.
pub const RETENTION_REMOVED_BYTES: &str = "atrelay_log_retention_removed_bytes_total";
/// Counter, label `cause` ([`LogError::cause`](super::LogError::cause)):
/// failed appends retried.
pub const APPEND_RETRIES: &str = "atrelay_log_append_retries_total";
/// Gauge: 1 while the writer retries a failed append.
pub const WRITER_STALLED: &str = "atrelay_log_writer_stalled";
/// Counter: the database reopened in place after a failed write.
pub const REOPENS: &str = "atrelay_log_reopens_total";

/// [`APPEND_RETRIES`] `cause`: out of file descriptors (`EMFILE`, `ENFILE`).
pub const CAUSE_DESCRIPTORS: &str = "descriptors";
/// [`APPEND_RETRIES`] `cause`: out of disk (`ENOSPC`, quota).
pub const CAUSE_DISK_FULL: &str = "disk_full";
/// [`APPEND_RETRIES`] `cause`: out of memory (`ENOMEM`).
pub const CAUSE_MEMORY: &str = "memory";
/// [`APPEND_RETRIES`] `cause`: any other I/O failure.
pub const CAUSE_IO: &str = "io";
/// The `cause` of an error that is not transient (never retried, so never
/// a label of [`APPEND_RETRIES`]).
pub const CAUSE_FATAL: &str = "fatal";

/// Every `cause` an append can be retried for.
const RETRY_CAUSES: &[KnownLabel] = &[KnownLabel {
    key: "cause",
    values: || vec![CAUSE_DESCRIPTORS, CAUSE_DISK_FULL, CAUSE_MEMORY, CAUSE_IO],
}];

/// Every log family, described and registered at start.
pub const FAMILIES: &[Family] = &[
    Family::counter(APPEND_BATCHES, "Batches appended to the log"),
    Family::counter(APPENDED_EVENTS, "Events appended to the log"),
    Family::counter(APPENDED_FRAME_BYTES, "Frame bytes appended to the log").unit(Unit::Bytes),
    Family::histogram(
        APPEND_SECONDS,
        "Time to write one batch durably (with fsync in fsync durability)",
    )
    .unit(Unit::Seconds),
    Family::counter(
        READ_EVENTS,
        "Events read back from the log (replays, catch-up)",
    ),
    Family::gauge(EVENTS_BYTES, "Approximate size of the retained events").unit(Unit::Bytes),
    Family::gauge(LAST_SEQ, "Newest seq in the log (the head)"),
    Family::gauge(OLDEST_SEQ, "Oldest retained seq"),
    Family::counter(RETENTION_REMOVED_EVENTS, "Events removed by retention"),
    Family::counter(RETENTION_REMOVED_BYTES, "Bytes removed by retention").unit(Unit::Bytes),
    Family::counter(
        APPEND_RETRIES,
        "Failed log appends retried, by cause (descriptors, disk_full, memory, io): nonzero means the writer stalled",
    )
    .zero_per(RETRY_CAUSES),
    Family::gauge(
        WRITER_STALLED,
        "1 while the log writer retries a failed append (no event is accepted meanwhile), else 0",
    ),
    Family::counter(
        REOPENS,
        "Times the log's database was reopened in place after a failed write",
    ),
];
