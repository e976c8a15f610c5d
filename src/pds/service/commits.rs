//! Record writes as signed commits: one call, one commit, built, stored and
//! emitted under the repo's lock so `swapCommit` / `swapRecord` are checked
//! against exactly the state the commit builds on. Its own file because it
//! is the repo half of [`Pds`]; checking and encoding each write is
//! [`crate::pds::writes`].

use super::{Pds, PdsError};
use crate::pds::store::CommitWrite;
use crate::pds::writes::{
    check_swap_commit, check_swap_record, prepare, PreparedWrite, WriteError, WriteRequest,
};
use crate::repo::builder::RecordWrite;
use crate::wire::cid::Cid;

/// The outcome of one write call: the new commit and each write's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub commit: Cid,
    pub rev: String,
    /// Per write: `(uri, record cid)`; `None` for deletes.
    pub results: Vec<Option<(String, Cid)>>,
}

/// A write with its optional `swapRecord` (`Some(None)`: must not exist).
#[derive(Clone, Debug, PartialEq)]
pub struct SwappedWrite {
    pub write: WriteRequest,
    pub swap_record: Option<Option<Cid>>,
}

impl From<WriteRequest> for SwappedWrite {
    fn from(write: WriteRequest) -> SwappedWrite {
        SwappedWrite {
            write,
            swap_record: None,
        }
    }
}

impl Pds {
    /// Applies `writes` to `did`'s repo as one signed commit (an empty list
    /// makes an empty commit) and emits it.
    pub async fn write(
        &self,
        did: &str,
        writes: Vec<SwappedWrite>,
        swap_commit: Option<Cid>,
    ) -> Result<WriteOutcome, PdsError> {
        if writes.len() > self.inner.cfg.limits.max_writes {
            return Err(PdsError::Invalid(
                "InvalidRequest",
                format!(
                    "at most {} writes per call",
                    self.inner.cfg.limits.max_writes
                ),
            ));
        }
        let account = self.account(did)?;
        if let Some(status) = account.status {
            return Err(PdsError::AccountInactive(status));
        }
        self.commit(did, writes, swap_commit).await
    }

    /// Builds, stores and emits one commit under the repo's lock.
    pub(super) async fn commit(
        &self,
        did: &str,
        writes: Vec<SwappedWrite>,
        swap_commit: Option<Cid>,
    ) -> Result<WriteOutcome, PdsError> {
        let prepared = writes
            .into_iter()
            .map(|w| Ok((prepare(w.write, &self.inner.tids)?, w.swap_record)))
            .collect::<Result<Vec<_>, WriteError>>()?;
        let lock = self
            .inner
            .repo_locks
            .entry(did.to_owned())
            .or_default()
            .clone();
        let _held = lock.lock().await;
        // Store reads, the signature, the synced write and the log append
        // block: off the async runtime, still under the repo's lock.
        let this = self.clone();
        let did = did.to_owned();
        tokio::task::spawn_blocking(move || this.commit_locked(&did, prepared, swap_commit))
            .await
            .map_err(|e| PdsError::Internal(format!("commit task: {e}")))?
    }

    /// The part of [`Pds::commit`] that runs with the repo's lock held.
    fn commit_locked(
        &self,
        did: &str,
        prepared: Vec<(PreparedWrite, Option<Option<Cid>>)>,
        swap_commit: Option<Cid>,
    ) -> Result<WriteOutcome, PdsError> {
        let store = &self.inner.store;
        let head = store.repo_head(did)?;
        check_swap_commit(swap_commit, head.commit)?;
        let mut repo_writes: Vec<RecordWrite> = Vec::with_capacity(prepared.len());
        let mut seen = std::collections::HashSet::new();
        let mut results = Vec::with_capacity(prepared.len());
        for (w, swap) in &prepared {
            let path = w.path();
            if !seen.insert(path.clone()) {
                return Err(WriteError::InvalidRequest(format!("{path} is written twice")).into());
            }
            let existing = store.record_cid(did, &w.collection, &w.rkey)?;
            check_swap_record(&path, *swap, existing)?;
            repo_writes.push(w.to_repo_write(existing)?);
            results.push(w.record.as_ref().map(|(cid, _)| (w.uri(did), *cid)));
        }
        let key = self
            .account(did)?
            .signing_key()
            .map_err(|e| PdsError::Internal(format!("stored signing key: {e}")))?;
        let blocks = store.repo_blocks(did);
        let built = head
            .commit(&blocks, repo_writes, &key, self.inner.tids.next())
            .map_err(|e| PdsError::Internal(format!("building the commit: {e}")))?;
        store.apply_commit_on(did, head.commit, CommitWrite::from_built(&built)?)?;
        self.emit_commit(&built)?;
        Ok(WriteOutcome {
            commit: built.commit,
            rev: built.rev.to_string(),
            results,
        })
    }
}
