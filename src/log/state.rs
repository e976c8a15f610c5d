//! Reads of the account and host state, and the caller's `meta` entries.
//!
//! Writes of account and host state go through
//! [`EventLog::append`](super::EventLog::append) only, together with the
//! events that change them.

use rocksdb::IteratorMode;

use super::account::AccountState;
use super::error::LogError;
use super::event_log::EventLog;
use super::host::HostState;
use super::schema::{CF_ACCOUNTS, CF_HOSTS, CF_META, RESERVED_META_PREFIX};

/// Prefixes a decoding error with the key it concerns.
fn context(what: &str, key: &str, e: LogError) -> LogError {
    match e {
        LogError::Corrupt(m) => LogError::Corrupt(format!("{what} {key}: {m}")),
        e => e,
    }
}

/// A stored key as UTF-8, or [`LogError::Corrupt`].
fn key_str(cf: &str, key: &[u8]) -> Result<String, LogError> {
    String::from_utf8(key.to_vec())
        .map_err(|_| LogError::Corrupt(format!("{cf} key {key:02x?} is not UTF-8")))
}

impl EventLog {
    /// The stored state of `did`, `None` if the relay has never seen it (or
    /// it was deleted).
    pub fn get_account(&self, did: &str) -> Result<Option<AccountState>, LogError> {
        let db = self.inner.db()?;
        let stored = db.get_pinned_cf(db.cf(CF_ACCOUNTS)?, did.as_bytes())?;
        match stored {
            Some(v) => AccountState::decode(&v)
                .map(Some)
                .map_err(|e| context("account", did, e)),
            None => Ok(None),
        }
    }

    /// Up to `limit` accounts in DID (bytewise) order, starting after `after`
    /// (exclusive) or from the first: the pages of `com.atproto.sync.listRepos`,
    /// whose cursor is the last DID of the previous page.
    pub fn list_accounts(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, AccountState)>, LogError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        let db = self.inner.db()?;
        let mut it = db.raw_iterator_cf(db.cf(CF_ACCOUNTS)?);
        match after {
            Some(after) => {
                it.seek(after.as_bytes());
                if it.key() == Some(after.as_bytes()) {
                    it.next();
                }
            }
            None => it.seek_to_first(),
        }
        while out.len() < limit {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let did = key_str(CF_ACCOUNTS, k)?;
            let state = AccountState::decode(v).map_err(|e| context("account", &did, e))?;
            out.push((did, state));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// The stored state of upstream `hostname`, `None` if unknown.
    pub fn get_host(&self, hostname: &str) -> Result<Option<HostState>, LogError> {
        let db = self.inner.db()?;
        let stored = db.get_pinned_cf(db.cf(CF_HOSTS)?, hostname.as_bytes())?;
        match stored {
            Some(v) => HostState::decode(&v)
                .map(Some)
                .map_err(|e| context("host", hostname, e)),
            None => Ok(None),
        }
    }

    /// Every known host in hostname order. Hosts number in the thousands at
    /// most, so this reads them all (startup, `listHosts`).
    pub fn list_hosts(&self) -> Result<Vec<(String, HostState)>, LogError> {
        let db = self.inner.db()?;
        let mut out = Vec::new();
        for item in db.iterator_cf(db.cf(CF_HOSTS)?, IteratorMode::Start) {
            let (k, v) = item?;
            let host = key_str(CF_HOSTS, &k)?;
            let state = HostState::decode(&v).map_err(|e| context("host", &host, e))?;
            out.push((host, state));
        }
        Ok(out)
    }

    /// A caller metadata entry (admin settings and the like), `None` if unset.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogError> {
        let db = self.inner.db()?;
        Ok(db.get_cf(db.cf(CF_META)?, key.as_bytes())?)
    }

    /// Stores a caller metadata entry, durably per the configured
    /// durability. Keys starting with `log/` belong to the log itself and are
    /// refused with [`LogError::InvalidArgument`].
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), LogError> {
        if key.starts_with(RESERVED_META_PREFIX) {
            return Err(LogError::InvalidArgument(format!(
                "meta key `{key}` is in the reserved `{RESERVED_META_PREFIX}` namespace"
            )));
        }
        if key.is_empty() {
            return Err(LogError::InvalidArgument("empty meta key".into()));
        }
        self.write_state(|db, w| Ok(db.put_cf_opt(db.cf(CF_META)?, key.as_bytes(), value, w)?))
    }

    /// Removes a caller metadata entry (absent keys are fine). The reserved
    /// `log/` namespace is refused as in [`EventLog::put_meta`].
    pub fn delete_meta(&self, key: &str) -> Result<(), LogError> {
        if key.starts_with(RESERVED_META_PREFIX) || key.is_empty() {
            return Err(LogError::InvalidArgument(format!(
                "meta key `{key}` is empty or reserved"
            )));
        }
        self.write_state(|db, w| Ok(db.delete_cf_opt(db.cf(CF_META)?, key.as_bytes(), w)?))
    }

    /// Every caller metadata entry whose key starts with `prefix`, in key
    /// order (small administrative sets: allowlists, bans, overrides).
    pub fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, LogError> {
        let db = self.inner.db()?;
        let mut out = Vec::new();
        let mut it = db.raw_iterator_cf(db.cf(CF_META)?);
        it.seek(prefix.as_bytes());
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push((key_str(CF_META, k)?, v.to_vec()));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Writes one host's state outside an event batch: administrative changes
    /// (block, cursor reset, status) that must survive a restart even when the
    /// host sends nothing. The sequencer's later batches carry the same
    /// in-memory entry's snapshot, so the two never disagree for long.
    pub fn put_host(&self, hostname: &str, state: &HostState) -> Result<(), LogError> {
        let mut value = Vec::with_capacity(64);
        state.encode(&mut value);
        self.write_state(|db, w| {
            Ok(db.put_cf_opt(db.cf(CF_HOSTS)?, hostname.as_bytes(), &value, w)?)
        })
    }

    /// Removes one host's record (absent hosts are fine): a record stored
    /// under a spelling that is not the host's canonical one, folded into
    /// the canonical record at load.
    pub fn delete_host(&self, hostname: &str) -> Result<(), LogError> {
        self.write_state(|db, w| Ok(db.delete_cf_opt(db.cf(CF_HOSTS)?, hostname.as_bytes(), w)?))
    }
}
