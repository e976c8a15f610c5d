//! Opening the log's database and reading back what it says: the seq
//! bounds, the segment index and the schema version. Used when the log is
//! opened, and again when it is reopened in place after a failed write
//! ([`super::recovery`]).

use std::path::Path;

use rocksdb::{ColumnFamily, DBCompressionType, ReadOptions, WriteOptions, DB};

use super::error::LogError;
use super::options::{
    cf_descriptors, db_options, is_missing_codec, LogMemory, PREFERRED_COMPRESSION,
};
use super::schema::{
    decode_event_key, decode_schema_version, decode_segment_key, encode_schema_version, CF_EVENTS,
    CF_META, META_SCHEMA_VERSION, META_SEGMENT_PREFIX, SCHEMA_VERSION,
};
use super::segment::{Segment, SegmentIndex};

/// Opens the database with LZ4, or without compression if the linked
/// RocksDB lacks LZ4.
pub(super) fn open_db(dir: &Path, memory: LogMemory) -> Result<DB, LogError> {
    match DB::open_cf_descriptors(
        &db_options(),
        dir,
        cf_descriptors(PREFERRED_COMPRESSION, memory),
    ) {
        Ok(db) => Ok(db),
        Err(e) if is_missing_codec(&e) => {
            tracing::warn!(error = %e, "RocksDB lacks LZ4; opening the log without compression");
            Ok(DB::open_cf_descriptors(
                &db_options(),
                dir,
                cf_descriptors(DBCompressionType::None, memory),
            )?)
        }
        Err(e) => Err(e.into()),
    }
}

/// What an open database says about the log: `(oldest, last, segments)`,
/// after checking (or, for a new database, setting) the schema version and
/// cross-checking the segment index with the events. On open, and again on
/// a reopen after a failed write.
pub(super) fn recover_state(db: &DB) -> Result<(u64, u64, SegmentIndex), LogError> {
    let (oldest, last) = recover_bounds(db)?;
    let segments = load_segments(db)?;
    check_schema(db, last != 0 || segments.len() != 0)?;
    segments.validate(oldest, last)?;
    Ok((oldest, last, segments))
}

/// A column family of an open database.
fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, LogError> {
    db.cf_handle(name)
        .ok_or_else(|| LogError::RocksDb(format!("column family `{name}` is not open")))
}

/// `(oldest, last)` seq from the events CF's first and last keys, `(0, 0)`
/// when empty. The last key, not a stored counter, is the truth: it is
/// written in the same batch as the event itself.
fn recover_bounds(db: &DB) -> Result<(u64, u64), LogError> {
    let mut it = db.raw_iterator_cf(cf(db, CF_EVENTS)?);
    it.seek_to_last();
    let last = match it.key() {
        Some(k) => decode_event_key(k)?,
        None => {
            it.status()?;
            return Ok((0, 0));
        }
    };
    it.seek_to_first();
    let oldest = match it.key() {
        Some(k) => decode_event_key(k)?,
        None => {
            it.status()?;
            return Err(LogError::Corrupt(
                "events CF has a last key but no first key".into(),
            ));
        }
    };
    Ok((oldest, last))
}

/// Reads the `log/seg/` range of `meta`.
fn load_segments(db: &DB) -> Result<SegmentIndex, LogError> {
    let mut upper = META_SEGMENT_PREFIX.to_vec();
    if let Some(b) = upper.last_mut() {
        *b += 1;
    }
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(upper);
    let mut it = db.raw_iterator_cf_opt(cf(db, CF_META)?, ro);
    it.seek(META_SEGMENT_PREFIX);
    let mut index = SegmentIndex::default();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let seq = decode_segment_key(k)?;
        index.insert(seq, Segment::decode(seq, v)?);
        it.next();
    }
    it.status()?;
    Ok(index)
}

/// Checks the stored schema version, or records it in a database that has
/// no log data yet.
fn check_schema(db: &DB, has_data: bool) -> Result<(), LogError> {
    let meta = cf(db, CF_META)?;
    match db.get_pinned_cf(meta, META_SCHEMA_VERSION)? {
        Some(v) => {
            let found = decode_schema_version(&v)?;
            if found != SCHEMA_VERSION {
                return Err(LogError::SchemaVersion {
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            Ok(())
        }
        None if has_data => Err(LogError::SchemaVersion {
            found: 0,
            expected: SCHEMA_VERSION,
        }),
        None => {
            let mut w = WriteOptions::default();
            w.set_sync(true);
            db.put_cf_opt(
                meta,
                META_SCHEMA_VERSION,
                encode_schema_version(SCHEMA_VERSION),
                &w,
            )?;
            Ok(())
        }
    }
}
