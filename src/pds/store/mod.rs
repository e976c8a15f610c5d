//! The PDS's durable state: accounts, repo blocks and heads, the record
//! index, blobs, refresh tokens and server secrets, in one RocksDB database
//! plus a directory of blob files.
//!
//! [`PdsStore`] is a cheap handle (`Clone` shares one `Arc`). Every write is
//! one RocksDB `WriteBatch` with the WAL fsynced before the call returns, so
//! anything a handler acknowledged survives `kill -9` and power loss, and
//! every multi-key change (an account and its handle index, a commit's blocks,
//! head and records) is all-or-nothing. The layout is in [`schema`].
//!
//! ```
//! use atrelay::pds::store::{AccountRecord, PdsStore};
//! let dir = tempfile::tempdir().unwrap();
//! let store = PdsStore::open(dir.path()).unwrap();
//! store.create_account(&AccountRecord {
//!     did: "did:plc:abcdefghijklmnopqrstuvwx".into(),
//!     handle: "Alice.Test".into(),
//!     email: None,
//!     password_hash: "$scrypt$...".into(),
//!     signing_key: [7; 32],
//!     created_micros: 0,
//!     status: None,
//! }).unwrap();
//! assert_eq!(
//!     store.did_for_handle("alice.test").unwrap().as_deref(),
//!     Some("did:plc:abcdefghijklmnopqrstuvwx"),
//! );
//! // The new account's repo is the empty tree, ready for its first commit.
//! let head = store.repo_head("did:plc:abcdefghijklmnopqrstuvwx").unwrap();
//! assert!(head.commit.is_none());
//! ```

mod accounts;
mod blobs;
mod blocks;
mod commits;
mod error;
mod records;
pub mod schema;
mod secrets;
mod tokens;

pub use accounts::AccountRecord;
pub use blobs::BlobMeta;
pub use blocks::RepoBlocks;
pub use commits::{CommitWrite, RepoHeadRecord};
pub use error::StoreError;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBRecoveryMode, LogLevel, Options, ReadOptions,
    WriteBatch, WriteOptions, DB,
};

use crate::wire::syntax::validate_did;
use schema::{ALL_CFS, CF_META, META_SCHEMA_VERSION, SCHEMA_VERSION};

/// The PDS's store. See the [module docs](self) for an example.
///
/// Concurrency: reads take no lock. Writes that check before they write take
/// one of a few std mutexes (never held across an `.await`; the critical
/// section is the blocking RocksDB write itself, so async callers should run
/// store calls in `spawn_blocking`):
/// - the *account gate*, an `RwLock`: account creation, handle changes,
///   status changes and deletion take it exclusively, so uniqueness checks
///   and the writes they guard cannot interleave; commits, blob uploads and
///   new refresh tokens take it shared and check the account exists, so
///   nothing can be written for an account after its deletion;
/// - a striped per-repo lock, so two commits to one repo are checked against
///   the head one after the other (commits to different repos still run in
///   parallel and share RocksDB's group commit);
/// - a lock for refresh-token rotation and one for secret creation.
#[derive(Clone)]
pub struct PdsStore {
    inner: Arc<Inner>,
}

/// Number of per-repo commit locks; DIDs hash onto them.
const REPO_LOCK_STRIPES: usize = 32;

struct Inner {
    db: DB,
    dir: PathBuf,
    blobs_dir: PathBuf,
    /// WAL on and fsynced: a write is durable when it returns.
    sync_write: WriteOptions,
    account_gate: RwLock<()>,
    repo_locks: [Mutex<()>; REPO_LOCK_STRIPES],
    tokens_lock: Mutex<()>,
    secrets_lock: Mutex<()>,
}

impl fmt::Debug for PdsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdsStore")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl PdsStore {
    /// Opens (creating if missing) the store in `dir`: the database in
    /// `dir/db`, blobs under `dir/blobs`. Checks (or, for a new database,
    /// records) the schema version; another version is
    /// [`StoreError::Corrupt`].
    pub fn open(dir: &Path) -> Result<PdsStore, StoreError> {
        let blobs_dir = dir.join("blobs");
        std::fs::create_dir_all(&blobs_dir)?;
        let db = DB::open_cf_descriptors(&db_options(), dir.join("db"), cf_descriptors())?;
        let mut sync_write = WriteOptions::default();
        sync_write.set_sync(true);
        sync_write.disable_wal(false);
        let store = PdsStore {
            inner: Arc::new(Inner {
                db,
                dir: dir.to_path_buf(),
                blobs_dir,
                sync_write,
                account_gate: RwLock::new(()),
                repo_locks: std::array::from_fn(|_| Mutex::new(())),
                tokens_lock: Mutex::new(()),
                secrets_lock: Mutex::new(()),
            }),
        };
        store.check_schema()?;
        tracing::info!(path = %dir.display(), "PDS store opened");
        Ok(store)
    }

    /// The directory the store was opened in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        match self.get(CF_META, META_SCHEMA_VERSION)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema version is not 4 bytes".into()))?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "schema version {found}, this build reads {SCHEMA_VERSION}"
                    )));
                }
                Ok(())
            }
            None => {
                let mut wb = WriteBatch::default();
                wb.put_cf(
                    self.cf(CF_META)?,
                    META_SCHEMA_VERSION,
                    SCHEMA_VERSION.to_be_bytes(),
                );
                self.write(wb)
            }
        }
    }

    // ---- helpers shared by the concept files ----

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.inner
            .db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("column family `{name}` is not open")))
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.db.get_cf(self.cf(cf)?, key)?)
    }

    fn exists(&self, cf: &str, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.inner.db.get_pinned_cf(self.cf(cf)?, key)?.is_some())
    }

    /// Writes `batch` atomically with the WAL fsynced.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        Ok(self.inner.db.write_opt(batch, &self.inner.sync_write)?)
    }

    /// Calls `f(key, value)` for each key in `[lower, upper)`, forward or
    /// backward, until it returns `false`. Bounded iteration, so RocksDB
    /// never reads past the range (cheap over range tombstones too).
    fn scan(
        &self,
        cf: &str,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(lower.to_vec());
        opts.set_iterate_upper_bound(upper.to_vec());
        let mut it = self.inner.db.raw_iterator_cf_opt(self.cf(cf)?, opts);
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !f(k, v)? {
                return Ok(());
            }
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        Ok(it.status()?)
    }

    /// Whether an account with `did` exists.
    fn account_exists(&self, did: &str) -> Result<bool, StoreError> {
        self.exists(schema::CF_ACCOUNTS, did.as_bytes())
    }

    fn gate_shared(&self) -> RwLockReadGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .account_gate
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn gate_exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.inner
            .account_gate
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn repo_lock(&self, did: &str) -> MutexGuard<'_, ()> {
        // FNV-1a: stable, cheap, good enough to spread DIDs over the stripes.
        let h = did.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        lock(&self.inner.repo_locks[(h % REPO_LOCK_STRIPES as u64) as usize])
    }
}

/// Locks a `Mutex<()>`, ignoring poisoning (there is no data to corrupt).
fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Refuses a DID that is not syntactically valid before it becomes part of a
/// key or a file name.
fn check_did(did: &str) -> Result<(), StoreError> {
    validate_did(did).map_err(|e| StoreError::Invalid(format!("DID {did:?}: {e}")))
}

/// Current time in microseconds since the Unix epoch.
/// DB-wide options: create what is missing, recover to the last consistent
/// point after a crash, and stay small: a PDS store is tiny next to the
/// relay's log and shares the machine with it.
/// Most table files the store's RocksDB keeps open (its default keeps all
/// of them; see [`crate::log::FILE_DESCRIPTORS`] for why that matters).
const MAX_OPEN_FILES: i32 = 128;

/// Descriptors the store may hold: its tables, WALs, manifest, info logs,
/// and blob files being read or written.
pub const FILE_DESCRIPTORS: u64 = MAX_OPEN_FILES as u64 + 64;

fn db_options() -> Options {
    let mut o = Options::default();
    o.set_max_open_files(MAX_OPEN_FILES);
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    o.set_max_background_jobs(2);
    // Rarely written CFs share the WAL with busy ones; force their flush so
    // WAL files can be recycled.
    o.set_max_total_wal_size(64 << 20);
    o.set_keep_log_file_num(4);
    o.set_max_log_file_size(16 << 20);
    o.set_log_level(LogLevel::Warn);
    o
}

/// All CFs with small memtables (eleven CFs at RocksDB's default 64 MiB
/// would allow over a GiB of memtables) and bloom filters for the point
/// lookups that dominate (accounts, handles, blocks by CID).
fn cf_descriptors() -> Vec<ColumnFamilyDescriptor> {
    ALL_CFS
        .iter()
        .map(|name| {
            let mut o = Options::default();
            let buffer = if *name == schema::CF_BLOCKS {
                16 << 20
            } else {
                4 << 20
            };
            o.set_write_buffer_size(buffer);
            o.set_level_compaction_dynamic_level_bytes(true);
            let mut t = rocksdb::BlockBasedOptions::default();
            t.set_bloom_filter(10.0, false);
            o.set_block_based_table_factory(&t);
            ColumnFamilyDescriptor::new(*name, o)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Temp-dir stores and sample accounts for the unit tests.

    use super::*;

    /// A store in a fresh temp dir (keep the `TempDir` alive).
    pub fn temp_store() -> (tempfile::TempDir, PdsStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = PdsStore::open(dir.path()).expect("open store");
        (dir, store)
    }

    /// A plausible account; the password hash is not a real one.
    pub fn account(did: &str, handle: &str, email: Option<&str>) -> AccountRecord {
        AccountRecord {
            did: did.into(),
            handle: handle.into(),
            email: email.map(Into::into),
            password_hash: "$scrypt$ln=4,r=8,p=1$c2FsdA$aGFzaA".into(),
            signing_key: [0x11; 32],
            created_micros: 1_700_000_000_000_000,
            status: None,
        }
    }
}

#[cfg(test)]
mod scenario_tests;

#[cfg(test)]
mod tests {
    use super::test_support::temp_store;
    use super::*;

    #[test]
    fn reopens_and_checks_schema_version() {
        let (dir, store) = temp_store();
        drop(store);
        let store = PdsStore::open(dir.path()).unwrap();
        let mut wb = WriteBatch::default();
        wb.put_cf(
            store.cf(CF_META).unwrap(),
            META_SCHEMA_VERSION,
            99u32.to_be_bytes(),
        );
        store.write(wb).unwrap();
        drop(store);
        let err = PdsStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m.contains("99")),
            "{err}"
        );
    }

    #[test]
    fn handle_is_shared_and_debug_names_the_dir() {
        let (dir, store) = temp_store();
        let other = store.clone();
        assert_eq!(other.dir(), dir.path());
        assert!(format!("{store:?}").contains("PdsStore"));
    }
}
