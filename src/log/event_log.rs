//! [`EventLog`]: the handle, opening, appends and catch-up reads (what the
//! database says at open and after a failed write: [`super::recovery`]).

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Instant;

use bytes::Bytes;
use rocksdb::{ColumnFamily, ReadOptions, WriteBatch, WriteOptions, DB};

use super::batch::AppendBatch;
use super::batch_rep::{BatchRep, CfCodes};
use super::error::LogError;
use super::metrics::{
    APPENDED_EVENTS, APPENDED_FRAME_BYTES, APPEND_BATCHES, APPEND_SECONDS, EVENTS_BYTES, LAST_SEQ,
    OLDEST_SEQ, READ_EVENTS,
};
use super::open::{open_db, recover_state};
use super::options::{write_options, LogOptions, SeqRule};
use super::schema::{
    decode_event_key, decode_event_value, encode_event_value, event_key, event_logical_size,
    segment_key, CF_ACCOUNTS, CF_EVENTS, CF_HOSTS, CF_META,
};
use super::segment::{Segment, SegmentIndex, SegmentPolicy};

/// The relay's sequenced event log and state store: one RocksDB database with
/// the `events`, `accounts`, `hosts` and `meta` column families.
///
/// A cheap handle (`Clone` shares one `Arc`), `Send + Sync`. Appends are
/// serialized internally (the sequencer is the only intended writer, but a
/// second caller cannot corrupt the sequence, it would get
/// [`LogError::Gap`]); reads never take the writer lock.
///
/// ```
/// use atrelay::log::{AppendBatch, EventLog, LogEvent, LogOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let log = EventLog::open(dir.path(), LogOptions::default()).unwrap();
/// let frame = bytes::Bytes::from_static(b"exact frame bytes");
/// log.append(&AppendBatch {
///     events: vec![LogEvent { seq: 1, received_micros: 0, frame: frame.clone() }],
///     ..AppendBatch::default()
/// }).unwrap();
/// assert_eq!(log.last_seq(), 1);
/// assert_eq!(log.read_from(1, 100, 1 << 20).unwrap(), vec![(1, frame)]);
/// ```
#[derive(Clone)]
pub struct EventLog {
    pub(super) inner: Arc<Inner>,
}

/// Shared state behind the handle.
pub(super) struct Inner {
    /// The database. Read-locked by every operation for its duration (an
    /// uncontended read lock: one atomic operation); write-locked only by
    /// [`EventLog::reopen`](super::recovery) after a failed write, which
    /// closes and reopens it in place. `None` only if that reopen failed
    /// for good.
    pub db: RwLock<Option<DB>>,
    pub path: PathBuf,
    pub opts: LogOptions,
    pub write_opts: WriteOptions,
    pub policy: SegmentPolicy,
    /// Held for the whole of an append or a retention write: orders the seq
    /// check, the RocksDB write and the in-memory updates. A std mutex, not an
    /// async one: it is never held across an `.await`, and the critical section
    /// is the (blocking) RocksDB write itself.
    pub writer: Mutex<WriterState>,
    /// Highest committed seq (0 = empty). Written only under `writer`, after
    /// the batch is durable.
    pub last_seq: AtomicU64,
    /// Lowest retained seq (0 = empty).
    pub oldest_seq: AtomicU64,
    /// Logical bytes of retained events, mirrored from the segment index.
    pub retained_bytes: AtomicU64,
    /// Set when a write failed. RocksDB then refuses every later write
    /// (its background-error state, which this RocksDB cannot leave without
    /// a reopen), and the failed write's outcome is unknown (the WAL record
    /// may have reached disk), so the next write reopens the database and
    /// recovers the truth from it first ([`super::recovery`]).
    pub needs_reopen: AtomicBool,
    /// How to serialize entries of each family directly
    /// ([`super::batch_rep`]); `None` falls back to `WriteBatch::put_cf`.
    pub codes: Option<Codes>,
}

/// The entry prefixes of the four column families.
pub(super) struct Codes {
    events: CfCodes,
    accounts: CfCodes,
    hosts: CfCodes,
    meta: CfCodes,
}

impl Codes {
    fn learn(db: &DB) -> Option<Codes> {
        let learn = |name| CfCodes::learn(db.cf_handle(name)?);
        Some(Codes {
            events: learn(CF_EVENTS)?,
            accounts: learn(CF_ACCOUNTS)?,
            hosts: learn(CF_HOSTS)?,
            meta: learn(CF_META)?,
        })
    }
}

/// What only the writer touches.
pub(super) struct WriterState {
    pub segments: SegmentIndex,
    /// Reused encoding buffer, so an append allocates nothing per event.
    pub scratch: Vec<u8>,
    /// Reused serialized batch (see [`super::batch_rep`]).
    pub rep: BatchRep,
    /// The seqs of the last append whose write failed, until a later append
    /// settles it: retrying that very batch after a reopen must succeed
    /// whether or not the failed write reached disk.
    pub unsettled: Option<std::ops::RangeInclusive<u64>>,
}

/// Shared access to the open database, for one operation: the read half of
/// [`Inner::db`]. Do not take a second one while holding one (a waiting
/// reopen would deadlock the two).
pub(super) struct Db<'a>(RwLockReadGuard<'a, Option<DB>>);

impl Deref for Db<'_> {
    type Target = DB;

    fn deref(&self) -> &DB {
        // `Inner::db` makes a `Db` only over an open database.
        self.0.as_ref().expect("Db wraps an open database")
    }
}

impl Db<'_> {
    pub fn cf(&self, name: &str) -> Result<&ColumnFamily, LogError> {
        self.cf_handle(name)
            .ok_or_else(|| LogError::RocksDb(format!("column family `{name}` is not open")))
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.inner.path)
            .field("last_seq", &self.last_seq())
            .field("oldest_seq", &self.oldest_seq())
            .finish()
    }
}

impl Inner {
    /// The database, shared. Waits while a reopen is in progress.
    pub fn db(&self) -> Result<Db<'_>, LogError> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(LogError::RocksDb(
                "the log's database could not be reopened after a failed write; restart the process".into(),
            ));
        }
        Ok(Db(guard))
    }

    /// The writer lock. A panic while holding it cannot leave the in-memory
    /// state half-updated (it is updated only after a successful write, with
    /// no fallible step in between), so a poisoned lock is still usable.
    pub fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl EventLog {
    /// Opens (creating if missing) the log in `dir`, recovers `last_seq` and
    /// `oldest_seq` from the events CF's last and first keys, loads and
    /// cross-checks the segment index, and checks (or, for a new database,
    /// sets) the schema version.
    ///
    /// Fails with [`LogError::SchemaVersion`] for another layout version and
    /// [`LogError::Corrupt`] if the events and the segment index disagree.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<EventLog, LogError> {
        let db = open_db(dir, opts.memory)?;
        let codes = Codes::learn(&db);
        if codes.is_none() {
            tracing::warn!("RocksDB's WriteBatch layout is not the expected one; building batches entry by entry");
        }
        let (oldest, last, segments) = recover_state(&db)?;
        let inner = Inner {
            codes,
            db: RwLock::new(Some(db)),
            path: dir.to_path_buf(),
            write_opts: write_options(opts.durability),
            policy: SegmentPolicy::from_options(&opts),
            opts,
            last_seq: AtomicU64::new(last),
            oldest_seq: AtomicU64::new(oldest),
            retained_bytes: AtomicU64::new(segments.retained_bytes()),
            needs_reopen: AtomicBool::new(false),
            writer: Mutex::new(WriterState {
                segments: SegmentIndex::default(),
                scratch: Vec::new(),
                rep: BatchRep::default(),
                unsettled: None,
            }),
        };
        tracing::info!(
            path = %dir.display(),
            last_seq = last,
            oldest_seq = oldest,
            segments = segments.len(),
            events_bytes = segments.retained_bytes(),
            "event log opened"
        );
        inner.lock_writer().segments = segments;
        metrics::gauge!(LAST_SEQ).set(last as f64);
        metrics::gauge!(OLDEST_SEQ).set(oldest as f64);
        Ok(EventLog {
            inner: Arc::new(inner),
        })
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &LogOptions {
        &self.inner.opts
    }

    /// How many handles share this log (diagnostics: a stopped relay must
    /// leave none behind, or the directory stays locked).
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Highest committed relay seq, 0 if the log is empty. Lock-free; an event
    /// becomes visible here only after its batch is durable in the configured
    /// mode, so it is the bound for what may be sent to subscribers.
    pub fn last_seq(&self) -> u64 {
        self.inner.last_seq.load(Ordering::Acquire)
    }

    /// Lowest retained seq, `None` if the log is empty. Retention moves it
    /// forward; a cursor below it is outdated (digest §1.5).
    pub fn oldest_seq(&self) -> Option<u64> {
        match self.inner.oldest_seq.load(Ordering::Acquire) {
            0 => None,
            s => Some(s),
        }
    }

    /// Logical size of the retained events in bytes (keys + values before
    /// compression), the quantity `retention_max_bytes` bounds. Exact for
    /// that definition; the files on disk are smaller by compression and
    /// larger by RocksDB overhead and not-yet-compacted deletions.
    pub fn approximate_events_bytes(&self) -> u64 {
        self.inner.retained_bytes.load(Ordering::Acquire)
    }

    /// Appends `batch` atomically: its events (whose seqs must be exactly
    /// `last_seq + 1, + 2, ...`, or only increasing under
    /// [`SeqRule::Increasing`]), account puts and deletes, host puts and the
    /// segment index update go into one RocksDB WriteBatch, written with the
    /// configured [`Durability`](super::Durability). `last_seq` moves only
    /// after the write succeeded.
    ///
    /// Errors: [`LogError::Gap`] or [`LogError::InvalidArgument`] before
    /// anything is written; [`LogError::Io`] (transient: retry) or another
    /// error if the write failed. A failed write's outcome is unknown (the
    /// batch may or may not be on disk), so the next write first reopens the
    /// database and recovers the truth from it; calling `append` again with
    /// the *identical* batch is then always safe: it is written if the
    /// failed write did not land, and answered `Ok` without writing if it
    /// did. [`append_retrying`](Self::append_retrying) does exactly that.
    pub fn append(&self, batch: &AppendBatch) -> Result<(), LogError> {
        let started = Instant::now();
        let inner = &*self.inner;
        let mut guard = inner.lock_writer();
        if inner.needs_reopen.load(Ordering::Acquire) {
            self.reopen(&mut guard)?;
        }
        if let Some(failed) = guard.unsettled.clone() {
            if self.already_written(&failed, batch)? {
                guard.unsettled = None;
                drop(guard);
                self.record_append(batch, started);
                return Ok(());
            }
        }
        let last = inner.last_seq.load(Ordering::Acquire);
        let mut prev = last;
        for ev in &batch.events {
            let fits = match inner.opts.seqs {
                SeqRule::Contiguous => ev.seq == prev + 1,
                SeqRule::Increasing => ev.seq > prev,
            };
            if !fits {
                return Err(LogError::Gap {
                    expected: prev + 1,
                    got: ev.seq,
                });
            }
            prev = ev.seq;
        }
        if batch.accounts.iter().any(|(did, _)| did.is_empty()) {
            return Err(LogError::InvalidArgument(
                "empty DID in account update".into(),
            ));
        }
        if batch.hosts.iter().any(|(host, _)| host.is_empty()) {
            return Err(LogError::InvalidArgument(
                "empty hostname in host update".into(),
            ));
        }
        if batch.is_empty() {
            return Ok(());
        }

        let db = inner.db()?;
        let WriterState {
            segments,
            scratch,
            rep,
            unsettled,
        } = &mut *guard;
        let staged = segments.stage(
            &inner.policy,
            batch
                .events
                .iter()
                .map(|e| (e.seq, event_logical_size(e.frame.len()), e.received_micros)),
        );
        let wb = match &inner.codes {
            Some(codes) => {
                rep.clear();
                for ev in &batch.events {
                    let time = ev.received_micros.to_be_bytes();
                    // The value is what `encode_event_value` writes.
                    rep.put(
                        &codes.events,
                        &event_key(ev.seq),
                        &[&time[..], &ev.frame[..]],
                    );
                }
                for (seq, seg) in &staged {
                    rep.put(&codes.meta, &segment_key(*seq), &[&seg.encode()[..]]);
                }
                for (did, state) in &batch.accounts {
                    match state {
                        Some(state) => {
                            scratch.clear();
                            state.encode(scratch);
                            rep.put(&codes.accounts, did.as_bytes(), &[&scratch[..]]);
                        }
                        None => rep.delete(&codes.accounts, did.as_bytes()),
                    }
                }
                for (host, state) in &batch.hosts {
                    scratch.clear();
                    state.encode(scratch);
                    rep.put(&codes.hosts, host.as_bytes(), &[&scratch[..]]);
                }
                rep.take_write_batch()
            }
            None => entry_by_entry(&db, batch, &staged, scratch)?,
        };

        if let Err(e) = db.write_opt(wb, &inner.write_opts) {
            let e = LogError::from(e);
            inner.needs_reopen.store(true, Ordering::Release);
            if let (Some(first), Some(newest)) = (batch.events.first(), batch.events.last()) {
                *unsettled = Some(first.seq..=newest.seq);
            }
            // The caller decides how loud to be (a retry loop logs once in a
            // while, not per attempt).
            tracing::debug!(error = %e, last_seq = last, "event log append failed; the next write reopens the database");
            return Err(e);
        }
        drop(db);

        *unsettled = None;
        segments.commit(&staged);
        if let (Some(first), Some(newest)) = (batch.events.first(), batch.events.last()) {
            if inner.oldest_seq.load(Ordering::Acquire) == 0 {
                inner.oldest_seq.store(first.seq, Ordering::Release);
            }
            inner
                .retained_bytes
                .store(segments.retained_bytes(), Ordering::Release);
            inner.last_seq.store(newest.seq, Ordering::Release);
        }
        drop(guard);
        self.record_append(batch, started);
        Ok(())
    }

    /// The metrics of one committed append.
    fn record_append(&self, batch: &AppendBatch, started: Instant) {
        let n = batch.events.len() as u64;
        let frame_bytes: u64 = batch.events.iter().map(|e| e.frame.len() as u64).sum();
        metrics::counter!(APPEND_BATCHES).increment(1);
        metrics::counter!(APPENDED_EVENTS).increment(n);
        metrics::counter!(APPENDED_FRAME_BYTES).increment(frame_bytes);
        metrics::histogram!(APPEND_SECONDS).record(started.elapsed().as_secs_f64());
        if let Some(newest) = batch.events.last() {
            metrics::gauge!(LAST_SEQ).set(newest.seq as f64);
            metrics::gauge!(EVENTS_BYTES).set(self.approximate_events_bytes() as f64);
        }
    }

    /// Committed events with `seq >= from_seq`, ascending: at most
    /// `max_events`, and stopping before the frame that would take the total
    /// frame bytes over `max_bytes` — except that the first event is always
    /// returned if one exists, however large, so a reader always progresses.
    ///
    /// Starts at the oldest retained event if `from_seq` is below it (the
    /// caller detects an outdated cursor by comparing with
    /// [`oldest_seq`](Self::oldest_seq) or the first returned seq). Never
    /// returns events beyond [`last_seq`](Self::last_seq) as read at the
    /// start of the call. The frames of one call share one allocation.
    pub fn read_from(
        &self,
        from_seq: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, LogError> {
        let last = self.last_seq();
        // Seek straight to the oldest retained event rather than through a
        // retired range (its keys may still sit under a range tombstone).
        let from_seq = from_seq.max(self.oldest_seq().unwrap_or(1));
        if last == 0 || from_seq > last || max_events == 0 {
            return Ok(Vec::new());
        }
        let db = self.inner.db()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(event_key(last + 1));
        let mut it = db.raw_iterator_cf_opt(db.cf(CF_EVENTS)?, ro);
        it.seek(event_key(from_seq));

        let want = (last - from_seq + 1).min(max_events as u64) as usize;
        let mut spans: Vec<(u64, usize, usize)> = Vec::with_capacity(want.min(4096));
        let mut buf: Vec<u8> =
            Vec::with_capacity(max_bytes.min(want.saturating_mul(4096)).min(8 << 20));
        let mut prev: Option<u64> = None;
        while spans.len() < max_events {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let seq = decode_event_key(k)?;
            if let Some(p) = prev {
                if seq != p + 1 && self.inner.opts.seqs == SeqRule::Contiguous {
                    return Err(LogError::Corrupt(format!(
                        "events CF has a gap: seq {seq} follows {p}"
                    )));
                }
            }
            let (_, frame) = decode_event_value(seq, v)?;
            if !spans.is_empty() && buf.len().saturating_add(frame.len()) > max_bytes {
                break;
            }
            let start = buf.len();
            buf.extend_from_slice(frame);
            spans.push((seq, start, buf.len()));
            prev = Some(seq);
            it.next();
        }
        it.status()?;
        let all = Bytes::from(buf);
        metrics::counter!(READ_EVENTS).increment(spans.len() as u64);
        Ok(spans
            .into_iter()
            .map(|(seq, a, b)| (seq, all.slice(a..b)))
            .collect())
    }

    /// When the event `seq` was received (microseconds since the Unix epoch),
    /// `None` if it is not in the log (not yet written, or retired).
    pub fn event_time(&self, seq: u64) -> Result<Option<u64>, LogError> {
        let db = self.inner.db()?;
        let stored = db.get_pinned_cf(db.cf(CF_EVENTS)?, event_key(seq))?;
        match stored {
            Some(v) => Ok(Some(decode_event_value(seq, &v)?.0)),
            None => Ok(None),
        }
    }

    /// Flushes all memtables to SST files. Not needed for durability (the WAL
    /// has it); call it at graceful shutdown so the next open replays less WAL.
    pub fn flush(&self) -> Result<(), LogError> {
        let db = self.inner.db()?;
        for name in [CF_EVENTS, CF_ACCOUNTS, CF_HOSTS, CF_META] {
            db.flush_cf(db.cf(name)?)?;
        }
        Ok(())
    }
}

/// The append's WriteBatch built with `put_cf`, entry by entry: the fallback
/// when [`Codes`] could not be learned.
fn entry_by_entry(
    db: &Db<'_>,
    batch: &AppendBatch,
    staged: &[(u64, Segment)],
    scratch: &mut Vec<u8>,
) -> Result<WriteBatch, LogError> {
    let mut wb = WriteBatch::default();
    let events_cf = db.cf(CF_EVENTS)?;
    for ev in &batch.events {
        encode_event_value(ev.received_micros, &ev.frame, scratch);
        wb.put_cf(events_cf, event_key(ev.seq), &scratch[..]);
    }
    let meta_cf = db.cf(CF_META)?;
    for (seq, seg) in staged {
        wb.put_cf(meta_cf, segment_key(*seq), seg.encode());
    }
    let accounts_cf = db.cf(CF_ACCOUNTS)?;
    for (did, state) in &batch.accounts {
        match state {
            Some(state) => {
                scratch.clear();
                state.encode(scratch);
                wb.put_cf(accounts_cf, did.as_bytes(), &scratch[..]);
            }
            None => wb.delete_cf(accounts_cf, did.as_bytes()),
        }
    }
    let hosts_cf = db.cf(CF_HOSTS)?;
    for (host, state) in &batch.hosts {
        scratch.clear();
        state.encode(scratch);
        wb.put_cf(hosts_cf, host.as_bytes(), &scratch[..]);
    }
    Ok(wb)
}
