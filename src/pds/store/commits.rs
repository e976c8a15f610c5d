//! Repo heads and commit application: [`RepoHeadRecord`], [`CommitWrite`]
//! and [`PdsStore::apply_commit`], which lands a commit's blocks, head and
//! record-index changes in one synced batch.

use rocksdb::WriteBatch;

use super::schema::{did_cid_key, record_key, CF_BLOCKS, CF_HEADS, CF_RECORDS};
use super::{check_did, PdsStore, StoreError};
use crate::repo::builder::{BuiltCommit, RepoHead};
use crate::repo::mst::empty_tree_node;
use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use crate::wire::cid::Cid;
use crate::wire::frame::Action;
use crate::wire::syntax::{validate_nsid, validate_record_key};
use crate::wire::tid::Tid;

/// Where a repo stands after its latest commit, stored in the `heads` CF as a
/// DAG-CBOR map `{rev, data, commit}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoHeadRecord {
    /// CID of the latest signed commit.
    pub commit: Cid,
    /// Its rev (a TID string; revs compare as strings).
    pub rev: String,
    /// Its MST root.
    pub data: Cid,
}

impl RepoHeadRecord {
    /// Appends the DAG-CBOR encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out);
        enc.map(3);
        enc.text("rev");
        enc.text(&self.rev);
        enc.text("data");
        enc.cid(&self.data);
        enc.text("commit");
        enc.cid(&self.commit);
    }

    /// Decodes a stored value; a malformed one is [`StoreError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<RepoHeadRecord, StoreError> {
        decode_head(bytes).map_err(|e| StoreError::corrupt("repo head", e))
    }

    /// The in-memory head the commit builder works from.
    pub fn to_repo_head(&self, did: &str) -> Result<RepoHead, StoreError> {
        let rev = Tid::parse(&self.rev).map_err(|e| StoreError::corrupt("repo head rev", e))?;
        Ok(RepoHead {
            did: did.to_owned(),
            rev: Some(rev),
            data: self.data,
            commit: Some(self.commit),
        })
    }

    /// The record of a builder head; `None` for a head with no commit yet
    /// (an empty repo has no head record).
    pub fn from_repo_head(head: &RepoHead) -> Option<RepoHeadRecord> {
        Some(RepoHeadRecord {
            commit: head.commit?,
            rev: head.rev?.to_string(),
            data: head.data,
        })
    }
}

fn decode_head(bytes: &[u8]) -> Result<RepoHeadRecord, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let n = dec.map()?;
    let mut keys = KeyOrder::new();
    let (mut rev, mut data, mut commit) = (None, None, None);
    for _ in 0..n {
        match keys.next(&mut dec)? {
            "rev" => rev = Some(dec.text()?.to_owned()),
            "data" => data = Some(dec.cid()?),
            "commit" => commit = Some(dec.cid()?),
            _ => dec.skip()?,
        }
    }
    dec.finish()?;
    Ok(RepoHeadRecord {
        commit: commit.ok_or(DecodeError::MissingField("commit"))?,
        rev: rev.ok_or(DecodeError::MissingField("rev"))?,
        data: data.ok_or(DecodeError::MissingField("data"))?,
    })
}

/// Everything one commit changes in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitWrite {
    /// New blocks: the signed commit, new MST nodes, new record blocks
    /// ([`BuiltCommit::new_blocks`](crate::repo::builder::BuiltCommit::new_blocks)).
    /// Trusted to match their CIDs: they come from our own builder.
    pub new_blocks: Vec<(Cid, Vec<u8>)>,
    /// The head after the commit; `head.commit` must be among `new_blocks`.
    pub head: RepoHeadRecord,
    /// Records created or updated: `(collection, rkey, record CID)`.
    pub record_puts: Vec<(String, String, Cid)>,
    /// Records deleted: `(collection, rkey)`.
    pub record_deletes: Vec<(String, String)>,
}

impl CommitWrite {
    /// What a commit from the builder changes: its new blocks, its head, and
    /// its ops as index changes. Borrows `built` (it is still needed for the
    /// `#commit` event) and copies the blocks.
    pub fn from_built(built: &BuiltCommit) -> Result<CommitWrite, StoreError> {
        let head = RepoHeadRecord::from_repo_head(&built.head)
            .ok_or_else(|| StoreError::Invalid("built commit has no commit CID or rev".into()))?;
        let mut record_puts = Vec::new();
        let mut record_deletes = Vec::new();
        for op in &built.ops {
            let (collection, rkey) = op
                .path
                .split_once('/')
                .ok_or_else(|| StoreError::Invalid(format!("repo path {:?}", op.path)))?;
            let (collection, rkey) = (collection.to_owned(), rkey.to_owned());
            match (op.action, op.cid) {
                (Action::Create | Action::Update, Some(cid)) => {
                    record_puts.push((collection, rkey, cid))
                }
                (Action::Delete, _) => record_deletes.push((collection, rkey)),
                (_, None) => {
                    return Err(StoreError::Invalid(format!(
                        "{:?} of {} without a CID",
                        op.action, op.path
                    )))
                }
            }
        }
        Ok(CommitWrite {
            new_blocks: built.new_blocks.clone(),
            head,
            record_puts,
            record_deletes,
        })
    }
}

impl PdsStore {
    /// The repo's head, `None` before its first commit (or for no account).
    pub fn head(&self, did: &str) -> Result<Option<RepoHeadRecord>, StoreError> {
        self.get(CF_HEADS, did.as_bytes())?
            .map(|v| RepoHeadRecord::decode(&v))
            .transpose()
    }

    /// The head to build the next commit on: the stored head, or for an
    /// account without commits the empty tree (whose root block
    /// [`create_account`](PdsStore::create_account) stored).
    /// [`StoreError::NotFound`] if there is no such account.
    pub fn repo_head(&self, did: &str) -> Result<RepoHead, StoreError> {
        if let Some(head) = self.head(did)? {
            return head.to_repo_head(did);
        }
        if !self.account_exists(did)? {
            return Err(StoreError::NotFound);
        }
        Ok(RepoHead {
            did: did.to_owned(),
            rev: None,
            data: empty_tree_node().0,
            commit: None,
        })
    }

    /// Lands a commit: its blocks, the new head and the record-index changes
    /// in one batch, WAL fsynced before returning. Readers see all of it or
    /// none of it; a crash leaves the old state or the new one.
    ///
    /// Checked before anything is written, under the account gate (shared)
    /// and the repo's commit lock:
    /// - the account exists ([`StoreError::NotFound`]), so a commit cannot
    ///   resurrect data of an account being deleted;
    /// - the new rev is strictly greater than the stored one
    ///   ([`StoreError::HeadChanged`]);
    /// - collections are NSIDs and rkeys record keys, and `head.commit` is
    ///   one of `new_blocks` ([`StoreError::Invalid`]).
    ///
    /// It does not check that the commit was built on the current head; use
    /// [`apply_commit_on`](PdsStore::apply_commit_on) for that (any write
    /// path that reads the head, builds, then writes should).
    pub fn apply_commit(&self, did: &str, write: CommitWrite) -> Result<(), StoreError> {
        self.apply_commit_inner(did, None, write)
    }

    /// [`apply_commit`](PdsStore::apply_commit), but only if the repo's
    /// current head commit is `expected_prev` (`None`: no commit yet).
    /// Otherwise [`StoreError::HeadChanged`] and nothing is written: two
    /// concurrent writes built on the same head cannot both land (the second
    /// would silently drop the first's MST changes while keeping its index
    /// entries). Also serves `swapCommit`.
    pub fn apply_commit_on(
        &self,
        did: &str,
        expected_prev: Option<Cid>,
        write: CommitWrite,
    ) -> Result<(), StoreError> {
        self.apply_commit_inner(did, Some(expected_prev), write)
    }

    fn apply_commit_inner(
        &self,
        did: &str,
        expected_prev: Option<Option<Cid>>,
        write: CommitWrite,
    ) -> Result<(), StoreError> {
        check_did(did)?;
        validate_commit_write(&write)?;
        let _gate = self.gate_shared();
        let _repo = self.repo_lock(did);
        if !self.account_exists(did)? {
            return Err(StoreError::NotFound);
        }
        let current = self.head(did)?;
        if let Some(expected) = expected_prev {
            let actual = current.as_ref().map(|h| h.commit);
            if actual != expected {
                return Err(StoreError::HeadChanged(format!(
                    "expected head {}, found {}",
                    fmt_opt(expected),
                    fmt_opt(actual)
                )));
            }
        }
        if let Some(cur) = &current {
            if write.head.rev <= cur.rev {
                return Err(StoreError::HeadChanged(format!(
                    "rev {} does not follow the current rev {}",
                    write.head.rev, cur.rev
                )));
            }
        }

        let mut wb = WriteBatch::default();
        let blocks = self.cf(CF_BLOCKS)?;
        for (cid, bytes) in &write.new_blocks {
            wb.put_cf(blocks, did_cid_key(did, cid), bytes);
        }
        let records = self.cf(CF_RECORDS)?;
        for (collection, rkey) in &write.record_deletes {
            wb.delete_cf(records, record_key(did, collection, rkey));
        }
        for (collection, rkey, cid) in &write.record_puts {
            wb.put_cf(records, record_key(did, collection, rkey), cid.as_bytes());
        }
        let mut head = Vec::with_capacity(100);
        write.head.encode(&mut head);
        wb.put_cf(self.cf(CF_HEADS)?, did, head);
        self.write(wb)?;
        tracing::debug!(
            did,
            rev = %write.head.rev,
            blocks = write.new_blocks.len(),
            puts = write.record_puts.len(),
            deletes = write.record_deletes.len(),
            "commit applied"
        );
        Ok(())
    }
}

fn fmt_opt(cid: Option<Cid>) -> String {
    cid.map_or_else(|| "none".to_owned(), |c| c.to_string())
}

/// The input checks of [`PdsStore::apply_commit`] that need no database.
fn validate_commit_write(write: &CommitWrite) -> Result<(), StoreError> {
    Tid::parse(&write.head.rev)
        .map_err(|e| StoreError::Invalid(format!("head rev {:?}: {e}", write.head.rev)))?;
    if !write
        .new_blocks
        .iter()
        .any(|(c, _)| *c == write.head.commit)
    {
        return Err(StoreError::Invalid(
            "the head's commit block is not among the new blocks".into(),
        ));
    }
    let paths = write
        .record_puts
        .iter()
        .map(|(c, r, _)| (c, r))
        .chain(write.record_deletes.iter().map(|(c, r)| (c, r)));
    for (collection, rkey) in paths {
        validate_nsid(collection)
            .map_err(|e| StoreError::Invalid(format!("collection {collection:?}: {e}")))?;
        validate_record_key(rkey)
            .map_err(|e| StoreError::Invalid(format!("record key {rkey:?}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{account, temp_store};
    use super::*;

    const DID: &str = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";

    fn head_at(rev: &str, commit_block: &[u8]) -> RepoHeadRecord {
        RepoHeadRecord {
            commit: Cid::for_cbor(commit_block),
            rev: rev.into(),
            data: empty_tree_node().0,
        }
    }

    fn write_at(rev: &str, commit_block: &[u8]) -> CommitWrite {
        CommitWrite {
            new_blocks: vec![(Cid::for_cbor(commit_block), commit_block.to_vec())],
            head: head_at(rev, commit_block),
            record_puts: Vec::new(),
            record_deletes: Vec::new(),
        }
    }

    #[test]
    fn head_record_round_trips_and_converts() {
        let rec = head_at("3l3qo2vuowo2b", b"\xa1\x61a\x01");
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(RepoHeadRecord::decode(&buf).unwrap(), rec);
        let mut dec = Decoder::new(&buf);
        dec.skip().unwrap();
        dec.finish().unwrap();
        assert!(RepoHeadRecord::decode(&buf[..buf.len() - 1]).is_err());

        let head = rec.to_repo_head(DID).unwrap();
        assert_eq!(head.did, DID);
        assert_eq!(RepoHeadRecord::from_repo_head(&head), Some(rec.clone()));
        let mut empty = head;
        empty.commit = None;
        assert_eq!(RepoHeadRecord::from_repo_head(&empty), None);
    }

    #[test]
    fn repo_head_before_and_after_first_commit() {
        let (_dir, store) = temp_store();
        assert!(matches!(store.repo_head(DID), Err(StoreError::NotFound)));
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let empty = store.repo_head(DID).unwrap();
        assert_eq!((empty.rev, empty.commit), (None, None));
        assert_eq!(empty.data, empty_tree_node().0);
        assert!(store.get_block(DID, &empty.data).unwrap().is_some());
        assert_eq!(store.head(DID).unwrap(), None);

        let w = write_at("3l3qo2vuowo2b", b"\xa1\x61a\x01");
        store.apply_commit(DID, w.clone()).unwrap();
        assert_eq!(store.head(DID).unwrap(), Some(w.head.clone()));
        assert_eq!(store.repo_head(DID).unwrap().commit, Some(w.head.commit));
    }

    #[test]
    fn stale_or_forked_commits_are_refused() {
        let (_dir, store) = temp_store();
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let first = write_at("3l3qo2vuowo2b", b"\xa1\x61a\x01");
        // Expected "no commit yet" holds for the first commit.
        store.apply_commit_on(DID, None, first.clone()).unwrap();
        // Same or older rev.
        let same = write_at("3l3qo2vuowo2b", b"\xa1\x61a\x02");
        assert!(matches!(
            store.apply_commit(DID, same),
            Err(StoreError::HeadChanged(_))
        ));
        // Built on a head that is no longer current.
        let fork = write_at("3l3qo2vuowo2c", b"\xa1\x61a\x03");
        assert!(matches!(
            store.apply_commit_on(DID, None, fork.clone()),
            Err(StoreError::HeadChanged(_))
        ));
        assert_eq!(store.head(DID).unwrap(), Some(first.head.clone()));
        assert_eq!(store.get_block(DID, &fork.head.commit).unwrap(), None);
        store
            .apply_commit_on(DID, Some(first.head.commit), fork)
            .unwrap();
    }

    #[test]
    fn invalid_writes_are_refused_before_writing() {
        let (_dir, store) = temp_store();
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let mut w = write_at("3l3qo2vuowo2b", b"\xa1\x61a\x01");
        w.new_blocks.clear();
        assert!(matches!(
            store.apply_commit(DID, w),
            Err(StoreError::Invalid(_))
        ));
        let cid = Cid::for_cbor(b"\xa0");
        for (coll, rkey) in [
            ("not an nsid", "abc"),
            ("app.bsky.feed.post", ".."),
            ("a.b.c", ""),
        ] {
            let mut w = write_at("3l3qo2vuowo2b", b"\xa1\x61a\x01");
            w.record_puts.push((coll.into(), rkey.into(), cid));
            assert!(matches!(
                store.apply_commit(DID, w),
                Err(StoreError::Invalid(_))
            ));
        }
        let mut w = write_at("3l3qo2vuowo2b", b"\xa1\x61a\x01");
        w.head.rev = "not-a-tid".into();
        assert!(matches!(
            store.apply_commit(DID, w),
            Err(StoreError::Invalid(_))
        ));
        let w = write_at("3l3qo2vuowo2b", b"\xa1\x61a\x01");
        assert!(matches!(
            store.apply_commit("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb", w),
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.head(DID).unwrap(), None);
        assert_eq!(store.record_count(DID).unwrap(), 0);
    }
}
