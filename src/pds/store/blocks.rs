//! Repo blocks: the per-DID block store behind a repo's commits, MST nodes
//! and records, and [`RepoBlocks`], the view the MST and commit builder read
//! through.

use std::borrow::Cow;

use super::schema::{cid_of_key, did_cid_key, did_prefix, prefix_end, CF_BLOCKS};
use super::{PdsStore, StoreError};
use crate::repo::mst::BlockSource;
use crate::wire::cid::Cid;

/// One repo's blocks as a [`BlockSource`], for
/// [`RepoHead::commit`](crate::repo::builder::RepoHead::commit) and
/// [`Mst::load`](crate::repo::mst::Mst::load). A cheap value (a store handle
/// and the DID); each lookup is one RocksDB point read.
///
/// A read *error* (not a missing block) is logged and reported as a missing
/// block, because the trait has no error channel; the MST operation then fails
/// with `MissingBlock`, which callers treat as an internal error for their own
/// repo anyway.
#[derive(Clone, Debug)]
pub struct RepoBlocks {
    store: PdsStore,
    did: String,
}

impl RepoBlocks {
    /// The repo's DID.
    pub fn did(&self) -> &str {
        &self.did
    }
}

impl BlockSource for RepoBlocks {
    fn get_block(&self, cid: &Cid) -> Option<Cow<'_, [u8]>> {
        match self.store.get_block(&self.did, cid) {
            Ok(block) => block.map(Cow::Owned),
            Err(e) => {
                tracing::warn!(did = %self.did, %cid, error = %e, "PDS block read failed");
                None
            }
        }
    }
}

impl PdsStore {
    /// The block view of `did`'s repo. Does not check the account exists
    /// (an unknown DID simply has no blocks).
    pub fn repo_blocks(&self, did: &str) -> RepoBlocks {
        RepoBlocks {
            store: self.clone(),
            did: did.to_owned(),
        }
    }

    /// The block `cid` of `did`'s repo, if stored.
    pub fn get_block(&self, did: &str, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_BLOCKS, &did_cid_key(did, cid))
    }

    /// Every block stored for `did`, in binary-CID order, including blocks of
    /// earlier commits that the current tree no longer references (there is
    /// no garbage collection). Fine for a full `getRepo` export (CAR readers
    /// ignore extra blocks); an exact export walks the tree from the head over
    /// [`repo_blocks`](PdsStore::repo_blocks) instead.
    pub fn all_blocks(&self, did: &str) -> Result<Vec<(Cid, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        self.for_each_block(did, |cid, bytes| {
            out.push((cid, bytes.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `f` on each of `did`'s blocks (as [`all_blocks`](PdsStore::all_blocks))
    /// without collecting them, until it returns `false`: for streaming a
    /// large export. The scan reads one consistent snapshot.
    pub fn for_each_block(
        &self,
        did: &str,
        mut f: impl FnMut(Cid, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = did_prefix(did);
        self.scan(CF_BLOCKS, &prefix, &prefix_end(&prefix), false, |k, v| {
            f(cid_of_key(k, prefix.len())?, v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{account, temp_store};
    use super::super::{CommitWrite, RepoHeadRecord};
    use super::*;
    use crate::repo::mst::empty_tree_node;

    #[test]
    fn blocks_are_per_did() {
        let (_dir, store) = temp_store();
        let (a, b) = ("did:web:a.test", "did:web:ab.test");
        store.create_account(&account(a, "a.test", None)).unwrap();
        store.create_account(&account(b, "ab.test", None)).unwrap();
        let commit = b"\xa1\x61c\x01".to_vec();
        let cid = Cid::for_cbor(&commit);
        store
            .apply_commit(
                a,
                CommitWrite {
                    new_blocks: vec![(cid, commit.clone())],
                    head: RepoHeadRecord {
                        commit: cid,
                        rev: "3l3qo2vuowo2b".into(),
                        data: empty_tree_node().0,
                    },
                    record_puts: vec![],
                    record_deletes: vec![],
                },
            )
            .unwrap();
        assert_eq!(store.get_block(a, &cid).unwrap(), Some(commit.clone()));
        assert_eq!(store.get_block(b, &cid).unwrap(), None);
        assert_eq!(
            store.repo_blocks(a).get_block(&cid).as_deref(),
            Some(&commit[..])
        );
        assert!(store.repo_blocks(b).get_block(&cid).is_none());
        // Both have the empty root; only `a` has the commit.
        let all_a = store.all_blocks(a).unwrap();
        assert_eq!(all_a.len(), 2);
        assert!(all_a.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(store.all_blocks(b).unwrap(), vec![empty_tree_node()]);
        let mut first = None;
        store
            .for_each_block(a, |c, _| {
                first = Some(c);
                Ok(false)
            })
            .unwrap();
        assert_eq!(first, Some(all_a[0].0));
    }
}
