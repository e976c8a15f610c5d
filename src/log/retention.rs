//! Retention: drop whole old ranges of events by age and by size.
//!
//! The decision is made on the in-memory [segment index](super::segment), so
//! it reads no event data. The removal is one WriteBatch holding one
//! `delete_range` on the events CF (a single range tombstone, not one
//! tombstone per event) and one on the segment records, after which the
//! space is reclaimed by dropping the SST files inside the range and
//! compacting its edges.

use std::sync::atomic::Ordering;

use rocksdb::WriteBatch;

use super::error::LogError;
use super::event_log::EventLog;
use super::metrics::{EVENTS_BYTES, OLDEST_SEQ, RETENTION_REMOVED_BYTES, RETENTION_REMOVED_EVENTS};
use super::schema::{event_key, segment_key, CF_EVENTS, CF_META};

/// What one [`EventLog::enforce_retention`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Number of events removed.
    pub removed: u64,
    /// Logical bytes removed (keys + values before compression).
    pub removed_bytes: u64,
    /// The oldest retained seq afterwards (`None` if the log is empty).
    pub oldest_seq: Option<u64>,
}

impl EventLog {
    /// Removes the oldest events that fall outside the retention window:
    /// whole segments received entirely before `now_micros - retention_max_age`,
    /// and as many more as needed for the logical size to fit in
    /// `retention_max_bytes`. Never removes the newest event (the segment
    /// holding it is never dropped, so `last_seq` survives a restart and seqs
    /// are never reused).
    ///
    /// Granularity is one segment (a range closed at 1/16 of each bound,
    /// clamped to 4 KiB–64 MiB and 1 s–1 h), so the log may keep up to one
    /// segment more than the bounds. Meant to be called periodically
    /// from a background thread; it blocks while RocksDB compacts the
    /// dropped range. Readers are not disturbed: a read that starts after the
    /// removal begins at the new [`oldest_seq`](Self::oldest_seq).
    pub fn enforce_retention(&self, now_micros: u64) -> Result<RetentionReport, LogError> {
        let inner = &*self.inner;
        let cutoff = inner
            .opts
            .retention_max_age
            .map(|age| now_micros.saturating_sub(age.as_micros() as u64));
        let max_bytes = inner.opts.retention_max_bytes;

        let plan = {
            let mut guard = inner.lock_writer();
            if inner.needs_reopen.load(Ordering::Acquire) {
                self.reopen(&mut guard)?;
            }
            let Some(plan) = guard.segments.plan_retention(cutoff, max_bytes) else {
                return Ok(RetentionReport {
                    oldest_seq: self.oldest_seq(),
                    ..RetentionReport::default()
                });
            };
            let db = inner.db()?;
            let mut wb = WriteBatch::default();
            wb.delete_range_cf(
                db.cf(CF_EVENTS)?,
                event_key(plan.first_seq),
                event_key(plan.cut_seq),
            );
            wb.delete_range_cf(
                db.cf(CF_META)?,
                segment_key(plan.first_seq),
                segment_key(plan.cut_seq),
            );
            if let Err(e) = db.write_opt(wb, &inner.write_opts) {
                // Outcome unknown, and RocksDB now refuses writes: the next
                // write reopens and reloads the index from disk.
                inner.needs_reopen.store(true, Ordering::Release);
                return Err(e.into());
            }
            guard.segments.remove_before(plan.cut_seq);
            inner.oldest_seq.store(plan.cut_seq, Ordering::Release);
            inner
                .retained_bytes
                .store(guard.segments.retained_bytes(), Ordering::Release);
            plan
        };

        // Reclaim space outside the writer lock. The range is already
        // invisible; these calls only shorten the time its bytes stay on disk.
        // No caller uses RocksDB snapshots, so dropping whole files is safe
        // (open iterators keep their own file references).
        {
            let db = inner.db()?;
            let events_cf = db.cf(CF_EVENTS)?;
            let (from, to) = (event_key(plan.first_seq), event_key(plan.cut_seq));
            if let Err(e) = db.delete_file_in_range_cf(events_cf, from, to) {
                tracing::warn!(error = %e, "dropping retired event files failed; compaction will reclaim them");
            }
            db.compact_range_cf(events_cf, Some(from), Some(to));
        }

        let removed = plan.cut_seq - plan.first_seq;
        tracing::info!(
            removed,
            removed_bytes = plan.removed_bytes,
            oldest_seq = plan.cut_seq,
            "event log retention"
        );
        metrics::counter!(RETENTION_REMOVED_EVENTS).increment(removed);
        metrics::counter!(RETENTION_REMOVED_BYTES).increment(plan.removed_bytes);
        metrics::gauge!(OLDEST_SEQ).set(plan.cut_seq as f64);
        metrics::gauge!(EVENTS_BYTES).set(self.approximate_events_bytes() as f64);
        Ok(RetentionReport {
            removed,
            removed_bytes: plan.removed_bytes,
            oldest_seq: Some(plan.cut_seq),
        })
    }
}
