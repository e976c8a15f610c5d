//! RocksDB persistence of the directory: its own database (never the relay's
//! event log), three column families.
//!
//! | CF | key | value |
//! |---|---|---|
//! | `ops` | seq, u64 big-endian | the [`LoggedOp`] as JSON |
//! | `did_ops` | DID ‖ `0x00` ‖ seq big-endian | empty (an index: a DID's ops in seq order by prefix scan) |
//! | `meta` | `schema` | layout version, u32 big-endian |
//!
//! Seqs are global and gap-free, so `/export` is a range scan of `ops` and the
//! latest seq is its last key. An accepted op, its index entry and the
//! `nullified` flags it sets on earlier ops go in one `WriteBatch`, written
//! with fsync: an op the directory acknowledged survives a crash or power
//! loss, and a crash never leaves a fork half-applied.
//!
//! The store only reads and writes; which op gets which seq, and the rules,
//! belong to [`Directory`](super::Directory).

use std::path::Path;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, LogLevel,
    Options, WriteBatch, WriteOptions, DB,
};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::logged_op::LoggedOp;
use super::op::SignedOperation;
use crate::wire::cid::Cid;

const CF_OPS: &str = "ops";
const CF_DID_OPS: &str = "did_ops";
const CF_META: &str = "meta";
const META_SCHEMA: &[u8] = b"schema";
/// Layout version written by this build.
const SCHEMA_VERSION: u32 = 1;

/// The directory's database.
pub struct Store {
    db: DB,
    write_opts: WriteOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

/// The stored form of a [`LoggedOp`] (its seq is the key).
#[derive(Serialize, Deserialize)]
struct Record {
    did: String,
    operation: serde_json::Value,
    cid: String,
    created_at: u64,
    nullified: bool,
}

/// Most table files the directory's RocksDB keeps open (its default keeps
/// all of them).
const MAX_OPEN_FILES: i32 = 64;

/// Descriptors the directory's database may hold: tables, WALs, manifest,
/// info logs and the lock.
pub const FILE_DESCRIPTORS: u64 = MAX_OPEN_FILES as u64 + 32;

impl Store {
    /// Opens (creating if missing) the database in `dir` and checks its
    /// layout version. Fails if another process has it open.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::RocksDb(format!("creating {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.set_max_open_files(MAX_OPEN_FILES);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_log_level(LogLevel::Warn);
        opts.set_keep_log_file_num(2);
        opts.set_max_log_file_size(1 << 20);
        // A directory for local networks holds little: small memtables, and
        // no compression (the linked RocksDB may lack the codecs, and ops are
        // mostly keys and signatures, which do not compress).
        let cf = |name: &str| {
            let mut o = Options::default();
            o.set_compression_type(DBCompressionType::None);
            o.set_write_buffer_size(4 << 20);
            ColumnFamilyDescriptor::new(name, o)
        };
        let db =
            DB::open_cf_descriptors(&opts, dir, vec![cf(CF_OPS), cf(CF_DID_OPS), cf(CF_META)])?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(true);
        let store = Store { db, write_opts };
        store.check_schema()?;
        Ok(store)
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::RocksDb(format!("column family `{name}` is not open")))
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        match self.db.get_cf(meta, META_SCHEMA)? {
            None => {
                self.db.put_cf_opt(
                    meta,
                    META_SCHEMA,
                    SCHEMA_VERSION.to_be_bytes(),
                    &self.write_opts,
                )?;
                Ok(())
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema version is not 4 bytes".into()))?;
                if found == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(StoreError::SchemaVersion {
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
        }
    }

    /// The op with the highest seq, if any.
    pub fn last(&self) -> Result<Option<LoggedOp>, StoreError> {
        let mut iter = self.db.iterator_cf(self.cf(CF_OPS)?, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                Ok(Some(decode(&k, &v)?))
            }
        }
    }

    /// The op with sequence number `seq`.
    pub fn get(&self, seq: u64) -> Result<Option<LoggedOp>, StoreError> {
        match self.db.get_cf(self.cf(CF_OPS)?, seq.to_be_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(decode(&seq.to_be_bytes(), &v)?)),
        }
    }

    /// Every op of `did`, valid and nullified, in seq order (at most `limit`).
    pub fn ops_for_did(&self, did: &str, limit: usize) -> Result<Vec<LoggedOp>, StoreError> {
        let prefix = did_prefix(did);
        let ops_cf = self.cf(CF_OPS)?;
        let iter = self.db.iterator_cf(
            self.cf(CF_DID_OPS)?,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, _) = item?;
            let Some(seq) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if out.len() >= limit {
                break;
            }
            let seq: [u8; 8] = seq
                .try_into()
                .map_err(|_| StoreError::Corrupt("did_ops key has a bad seq".into()))?;
            let value = self.db.get_cf(ops_cf, seq)?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "did_ops names seq {} which is missing",
                    u64::from_be_bytes(seq)
                ))
            })?;
            out.push(decode(&seq, &value)?);
        }
        Ok(out)
    }

    /// Up to `count` ops with seq ≥ `first`, in seq order.
    pub fn read_from(&self, first: u64, count: usize) -> Result<Vec<LoggedOp>, StoreError> {
        let start = first.to_be_bytes();
        let iter = self.db.iterator_cf(
            self.cf(CF_OPS)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::with_capacity(count.min(1024));
        for item in iter.take(count) {
            let (k, v) = item?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Writes `op` (new) and rewrites each of `nullified` with its flag set,
    /// atomically and durably.
    pub fn append(&self, op: &LoggedOp, nullified: &[LoggedOp]) -> Result<(), StoreError> {
        let ops_cf = self.cf(CF_OPS)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(ops_cf, op.seq.to_be_bytes(), encode(op)?);
        let mut index = did_prefix(&op.did);
        index.extend_from_slice(&op.seq.to_be_bytes());
        batch.put_cf(self.cf(CF_DID_OPS)?, index, []);
        for old in nullified {
            let mut old = old.clone();
            old.nullified = true;
            batch.put_cf(ops_cf, old.seq.to_be_bytes(), encode(&old)?);
        }
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(())
    }
}

/// `did ‖ 0x00`: DIDs contain no NUL, so one DID's keys never share a prefix
/// with another's.
fn did_prefix(did: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(did.len() + 9);
    key.extend_from_slice(did.as_bytes());
    key.push(0);
    key
}

fn encode(op: &LoggedOp) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&Record {
        did: op.did.clone(),
        operation: op.operation.to_json(),
        cid: op.cid.to_string(),
        created_at: op.created_at_micros,
        nullified: op.nullified,
    })
    .map_err(|e| StoreError::Corrupt(format!("encoding an op: {e}")))
}

fn decode(key: &[u8], value: &[u8]) -> Result<LoggedOp, StoreError> {
    let seq = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("ops key is not 8 bytes".into()))?;
    let corrupt = |what: String| StoreError::Corrupt(format!("op {seq}: {what}"));
    let record: Record = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    let operation =
        SignedOperation::from_stored_json(&record.operation).map_err(|e| corrupt(e.to_string()))?;
    let cid: Cid = record
        .cid
        .parse()
        .map_err(|e: crate::wire::cid::CidError| corrupt(e.to_string()))?;
    Ok(LoggedOp {
        seq,
        did: record.did,
        operation,
        cid,
        created_at_micros: record.created_at,
        nullified: record.nullified,
    })
}
