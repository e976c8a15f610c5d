//! What the database says about the log, at open and again after a failed
//! write, and recovering from that failure without restarting the process.
//!
//! What RocksDB 7.8 (the linked one) does when a write fails, measured with
//! the open-file limit lowered under a writing process: a write that needs a
//! new file (the WAL file of a memtable switch, the SST file of a flush)
//! fails with `IO error: While open a file for appending: …/000021.log: Too
//! many open files`, and from then on *every* write and flush returns that
//! same error, even after descriptors are free again (waited 15 s): the
//! database is in its background-error state, which only `DB::Resume` or a
//! reopen clears, and the C API this crate uses has no `Resume`. The failed
//! write did not land in those runs, but RocksDB does not promise that for
//! every failure (a WAL append that fails after reaching the page cache, an
//! fsync that fails), so the outcome of a failed write is treated as
//! unknown. Writes that need no new file (appends to the current WAL) keep
//! working while descriptors are exhausted.
//!
//! So after a failed write (any of [`EventLog::append`], retention and the
//! state writes) the next write reopens the database in place, under the
//! writer lock and with readers held off, and reloads `last_seq`, the oldest
//! seq and the segment index from it: the database is the truth, as at
//! open. A retried batch that turns out to be on disk already is recognised
//! byte for byte and answered `Ok` without a second write, so retrying the
//! identical batch is always safe and seqs are never reused.

use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rocksdb::WriteOptions;

use super::batch::AppendBatch;
use super::error::LogError;
use super::event_log::{Db, EventLog, WriterState};
use super::metrics::{LAST_SEQ, REOPENS};
use super::open::{open_db, recover_state};
use super::schema::{encode_event_value, event_key, CF_EVENTS};

/// Descriptors that must be free before the database is closed for a
/// reopen. Closing it frees as many as it held (its SST, WAL, MANIFEST and
/// info-log files), and opening it again needs those plus a few transient
/// ones (CURRENT, the OPTIONS file, the WAL files it replays one by one):
/// this margin covers the transient ones and anything another thread opens
/// meanwhile.
const REOPEN_HEADROOM: usize = 32;

/// How long a reopen keeps trying once the database is closed. Readers
/// wait meanwhile, so it is bounded; after it the log stays closed and the
/// caller sees a non-transient error.
const REOPEN_PATIENCE: Duration = Duration::from_secs(60);

impl EventLog {
    /// Closes and reopens the database, then reloads what the writer keeps
    /// in memory from it. Called with the writer lock held, when a write
    /// failed earlier.
    ///
    /// Returns [`LogError::Io`] without touching the database while the
    /// process cannot open [`REOPEN_HEADROOM`] files (closing it then would
    /// leave nothing to read from); [`LogError::Corrupt`] if the reopened
    /// log ends before the last acknowledged seq.
    pub(super) fn reopen(&self, writer: &mut WriterState) -> Result<(), LogError> {
        let inner = &*self.inner;
        descriptor_headroom(&inner.path)?;
        let started = Instant::now();
        // Waits for the readers in progress; new ones wait for the reopen.
        let mut slot = inner.db.write().unwrap_or_else(|e| e.into_inner());
        // Dropping the handle closes every file and releases RocksDB's lock
        // file, which a second handle in this process could not take.
        drop(slot.take());
        let mut wait = Duration::from_millis(10);
        let db = loop {
            match open_db(&inner.path, inner.opts.memory) {
                Ok(db) => break db,
                Err(e) if e.is_transient() && started.elapsed() < REOPEN_PATIENCE => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %inner.path.display(), "the event log could not be reopened");
                    return Err(e);
                }
            }
        };
        let (oldest, last, segments) = recover_state(&db)?;
        let acknowledged = inner.last_seq.load(Ordering::Acquire);
        *slot = Some(db);
        drop(slot);
        if last < acknowledged {
            return Err(LogError::Corrupt(format!(
                "after a reopen the log ends at seq {last}, but seq {acknowledged} was acknowledged: restore the data directory from a backup"
            )));
        }
        writer.segments = segments;
        inner.last_seq.store(last, Ordering::Release);
        inner.oldest_seq.store(oldest, Ordering::Release);
        inner
            .retained_bytes
            .store(writer.segments.retained_bytes(), Ordering::Release);
        inner.needs_reopen.store(false, Ordering::Release);
        metrics::counter!(REOPENS).increment(1);
        metrics::gauge!(LAST_SEQ).set(last as f64);
        tracing::warn!(
            last_seq = last,
            acknowledged,
            took_ms = started.elapsed().as_millis() as u64,
            "event log reopened after a failed write"
        );
        Ok(())
    }

    /// Whether `batch` is the append whose write failed (`failed`, its seqs)
    /// and that write reached disk after all: the same seqs, each stored
    /// with the same receive time and frame bytes. Only after a reopen, when
    /// `last_seq` is the database's own.
    pub(super) fn already_written(
        &self,
        failed: &RangeInclusive<u64>,
        batch: &AppendBatch,
    ) -> Result<bool, LogError> {
        let (Some(first), Some(newest)) = (batch.events.first(), batch.events.last()) else {
            return Ok(false);
        };
        if first.seq != *failed.start()
            || newest.seq != *failed.end()
            || self.last_seq() < newest.seq
        {
            return Ok(false);
        }
        let db = self.inner.db()?;
        let cf = db.cf(CF_EVENTS)?;
        let mut value = Vec::new();
        for ev in &batch.events {
            encode_event_value(ev.received_micros, &ev.frame, &mut value);
            match db.get_pinned_cf(cf, event_key(ev.seq))? {
                Some(stored) if stored[..] == value[..] => {}
                _ => return Ok(false),
            }
        }
        tracing::info!(
            first = first.seq,
            last = newest.seq,
            "a retried append was already on disk"
        );
        Ok(true)
    }

    /// A write of account, host or meta state outside an append: reopens
    /// first if an earlier write failed, and marks the log for a reopen if
    /// this one fails.
    pub(super) fn write_state(
        &self,
        write: impl FnOnce(&Db<'_>, &WriteOptions) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let inner = &*self.inner;
        if inner.needs_reopen.load(Ordering::Acquire) {
            let mut writer = inner.lock_writer();
            if inner.needs_reopen.load(Ordering::Acquire) {
                self.reopen(&mut writer)?;
            }
        }
        let db = inner.db()?;
        write(&db, &inner.write_opts)
            .inspect_err(|_| inner.needs_reopen.store(true, Ordering::Release))
    }
}

/// Whether this process can open [`REOPEN_HEADROOM`] more files now (opens
/// `dir` that many times and closes them again). The error names the errno
/// (`Too many open files`), so it is classed like RocksDB's own.
fn descriptor_headroom(dir: &std::path::Path) -> Result<(), LogError> {
    let probe: std::io::Result<Vec<std::fs::File>> = (0..REOPEN_HEADROOM)
        .map(|_| std::fs::File::open(dir))
        .collect();
    probe
        .map(drop)
        .map_err(|e| LogError::Io(format!("not reopening the log yet: {e}")))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::log::{LogEvent, LogOptions};

    fn batch(first: u64, n: u64, tag: u8) -> AppendBatch {
        AppendBatch {
            events: (first..first + n)
                .map(|seq| LogEvent {
                    seq,
                    received_micros: seq,
                    frame: Bytes::from(vec![tag; 100 + seq as usize]),
                })
                .collect(),
            ..AppendBatch::default()
        }
    }

    /// What `append` leaves behind when the write of `failed` returned an
    /// error: a reopen is due, the batch is unsettled, and `last_seq` is
    /// still `before`, whatever reached disk.
    fn as_if_the_write_failed(log: &EventLog, failed: &AppendBatch, before: u64) {
        let first = failed.events.first().unwrap().seq;
        let last = failed.events.last().unwrap().seq;
        log.inner.lock_writer().unsettled = Some(first..=last);
        log.inner.last_seq.store(before, Ordering::Release);
        log.inner.needs_reopen.store(true, Ordering::Release);
    }

    #[test]
    fn a_retried_batch_that_landed_is_not_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append(&batch(1, 3, 1)).unwrap();
        let landed = batch(4, 2, 2);
        log.append(&landed).unwrap();
        as_if_the_write_failed(&log, &landed, 3);

        // Another batch for the same seqs: the reopen finds 4..=5 taken.
        assert_eq!(
            log.append(&batch(4, 2, 9)),
            Err(LogError::Gap {
                expected: 6,
                got: 4
            })
        );
        assert_eq!(log.last_seq(), 5, "recovered from the database");
        // The identical batch: already there, nothing written.
        log.append(&landed).unwrap();
        assert_eq!(log.last_seq(), 5);
        log.append(&batch(6, 1, 3)).unwrap();
        let all = log.read_from(1, 100, usize::MAX).unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.0).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        assert_eq!(all[3].1, landed.events[0].frame, "the first write's bytes");
    }

    #[test]
    fn a_retried_batch_that_did_not_land_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append(&batch(1, 3, 1)).unwrap();
        let lost = batch(4, 2, 2);
        as_if_the_write_failed(&log, &lost, 3);
        log.append(&lost).unwrap();
        assert_eq!(log.last_seq(), 5);
        assert!(!log.inner.needs_reopen.load(Ordering::Acquire));
        assert!(log.inner.lock_writer().unsettled.is_none());
        drop(log);
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(log.read_from(4, 10, usize::MAX).unwrap().len(), 2);
    }

    #[test]
    fn state_writes_and_retention_reopen_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append(&batch(1, 3, 1)).unwrap();
        log.inner.needs_reopen.store(true, Ordering::Release);
        log.put_meta("k", b"v").unwrap();
        assert!(!log.inner.needs_reopen.load(Ordering::Acquire));
        assert_eq!(log.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
        log.inner.needs_reopen.store(true, Ordering::Release);
        log.enforce_retention(0).unwrap();
        assert!(!log.inner.needs_reopen.load(Ordering::Acquire));
        assert_eq!((log.oldest_seq(), log.last_seq()), (Some(1), 3));
    }

    #[test]
    fn acknowledged_events_missing_after_a_reopen_are_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append(&batch(1, 3, 1)).unwrap();
        // The writer believes more was acknowledged than the database holds.
        log.inner.last_seq.store(7, Ordering::Release);
        log.inner.needs_reopen.store(true, Ordering::Release);
        let err = log.append(&batch(8, 1, 1)).unwrap_err();
        assert!(matches!(err, LogError::Corrupt(_)), "{err}");
        assert!(!err.is_transient());
    }
}
