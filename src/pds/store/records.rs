//! The record index: `(collection, rkey) → record CID` per repo, kept in step
//! with the MST by [`apply_commit`](PdsStore::apply_commit) so `getRecord`,
//! `listRecords` and `describeRepo` never walk the tree.

use rocksdb::ReadOptions;

use super::schema::{
    collection_prefix, decode_cid_value, decode_text, did_prefix, prefix_end, record_key,
    CF_RECORDS,
};
use super::{PdsStore, StoreError};
use crate::wire::cid::Cid;

impl PdsStore {
    /// The CID of the record at `collection/rkey`, if it exists.
    pub fn record_cid(
        &self,
        did: &str,
        collection: &str,
        rkey: &str,
    ) -> Result<Option<Cid>, StoreError> {
        self.get(CF_RECORDS, &record_key(did, collection, rkey))?
            .map(|v| decode_cid_value(&v))
            .transpose()
    }

    /// Up to `limit` records of one collection as `(rkey, cid)` in rkey
    /// order (byte order, which for TIDs is time order), descending if
    /// `reverse`. `cursor_rkey` is exclusive: the page starts just after it
    /// (before it, in reverse), so passing the last rkey of a page gets the
    /// next page.
    pub fn list_records(
        &self,
        did: &str,
        collection: &str,
        limit: usize,
        cursor_rkey: Option<&str>,
        reverse: bool,
    ) -> Result<Vec<(String, Cid)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let prefix = collection_prefix(did, collection);
        let mut lower = prefix.clone();
        let mut upper = prefix_end(&prefix);
        if let Some(cursor) = cursor_rkey {
            if reverse {
                // Strictly below the cursor's key: it is the exclusive bound.
                upper = record_key(did, collection, cursor);
            } else {
                // The smallest key strictly above the cursor's is key ‖ 00.
                lower = record_key(did, collection, cursor);
                lower.push(0);
            }
        }
        self.scan(CF_RECORDS, &lower, &upper, reverse, |k, v| {
            let rkey = decode_text(&k[prefix.len()..], "record key")?;
            out.push((rkey, decode_cid_value(v)?));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// The collections that hold at least one record, in NSID byte order.
    /// One seek per collection, however many records each holds.
    pub fn collections(&self, did: &str) -> Result<Vec<String>, StoreError> {
        let prefix = did_prefix(did);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(prefix_end(&prefix));
        let mut it = self
            .inner
            .db
            .raw_iterator_cf_opt(self.cf(CF_RECORDS)?, opts);
        let mut out = Vec::new();
        it.seek(&prefix);
        while let Some(key) = it.key() {
            let rest = key
                .strip_prefix(prefix.as_slice())
                .ok_or_else(|| StoreError::Corrupt("record key outside its DID range".into()))?;
            let end = rest.iter().position(|&b| b == 0).ok_or_else(|| {
                StoreError::Corrupt("record key without a collection separator".into())
            })?;
            let collection = decode_text(&rest[..end], "collection")?;
            // Skip the rest of this collection: `DID ‖ 00 ‖ collection ‖ 01`.
            let mut next = collection_prefix(did, &collection);
            if let Some(last) = next.last_mut() {
                *last = 1;
            }
            out.push(collection);
            it.seek(&next);
        }
        it.status()?;
        Ok(out)
    }

    /// How many records the repo holds (a key-only scan of its index: fine
    /// for `describeRepo`-style use, not for a hot path).
    pub fn record_count(&self, did: &str) -> Result<u64, StoreError> {
        let prefix = did_prefix(did);
        let mut n = 0u64;
        self.scan(CF_RECORDS, &prefix, &prefix_end(&prefix), false, |_, _| {
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{account, temp_store};
    use super::super::{CommitWrite, RepoHeadRecord};
    use super::*;
    use crate::repo::mst::empty_tree_node;

    const DID: &str = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    const POST: &str = "app.bsky.feed.post";

    /// Applies a commit with these index changes (the blocks are a dummy
    /// commit; the record index does not look at them).
    fn index(store: &PdsStore, rev: &str, puts: &[(&str, &str, Cid)], deletes: &[(&str, &str)]) {
        let commit = rev.as_bytes().to_vec();
        let cid = Cid::for_cbor(&commit);
        store
            .apply_commit(
                DID,
                CommitWrite {
                    new_blocks: vec![(cid, commit)],
                    head: RepoHeadRecord {
                        commit: cid,
                        rev: rev.into(),
                        data: empty_tree_node().0,
                    },
                    record_puts: puts
                        .iter()
                        .map(|(c, r, cid)| (c.to_string(), r.to_string(), *cid))
                        .collect(),
                    record_deletes: deletes
                        .iter()
                        .map(|(c, r)| (c.to_string(), r.to_string()))
                        .collect(),
                },
            )
            .unwrap();
    }

    fn rkeys(page: &[(String, Cid)]) -> Vec<&str> {
        page.iter().map(|(r, _)| r.as_str()).collect()
    }

    #[test]
    fn puts_deletes_and_lookups() {
        let (_dir, store) = temp_store();
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let (c1, c2) = (Cid::for_cbor(b"\x01"), Cid::for_cbor(b"\x02"));
        index(
            &store,
            "3l3qo2vuowo2b",
            &[(POST, "k1", c1), (POST, "k2", c1)],
            &[],
        );
        index(
            &store,
            "3l3qo2vuowo2c",
            &[(POST, "k1", c2)],
            &[(POST, "k2")],
        );
        assert_eq!(store.record_cid(DID, POST, "k1").unwrap(), Some(c2));
        assert_eq!(store.record_cid(DID, POST, "k2").unwrap(), None);
        assert_eq!(
            store.record_cid(DID, "app.bsky.feed.like", "k1").unwrap(),
            None
        );
        assert_eq!(store.record_count(DID).unwrap(), 1);
    }

    #[test]
    fn list_records_pages_both_ways() {
        let (_dir, store) = temp_store();
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let cid = Cid::for_cbor(b"\x01");
        let keys = ["3k2a", "3k2b", "3k2b0", "3k2c", "3k2d", "3k2e", "3k2f"];
        let puts: Vec<_> = keys.iter().map(|k| (POST, *k, cid)).collect();
        // Neighbouring collections must not leak into the listing.
        let mut all = puts.clone();
        all.push(("app.bsky.feed.postgate", "3k2a", cid));
        all.push(("app.bsky.feed.like", "zzzz", cid));
        all.push(("app.bsky.feed.pos", "3k2a", cid));
        index(&store, "3l3qo2vuowo2b", &all, &[]);

        for reverse in [false, true] {
            let mut expected: Vec<&str> = keys.to_vec();
            if reverse {
                expected.reverse();
            }
            let mut seen: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .list_records(DID, POST, 3, cursor.as_deref(), reverse)
                    .unwrap();
                if page.is_empty() {
                    break;
                }
                assert!(page.len() <= 3);
                cursor = page.last().map(|(r, _)| r.clone());
                seen.extend(page.into_iter().map(|(r, _)| r));
            }
            assert_eq!(seen, expected, "reverse={reverse}");
        }
        let page = store
            .list_records(DID, POST, 10, Some("3k2b"), false)
            .unwrap();
        assert_eq!(rkeys(&page), ["3k2b0", "3k2c", "3k2d", "3k2e", "3k2f"]);
        let page = store
            .list_records(DID, POST, 10, Some("3k2b0"), true)
            .unwrap();
        assert_eq!(rkeys(&page), ["3k2b", "3k2a"]);
        // A cursor that is not itself a key still splits correctly.
        let page = store
            .list_records(DID, POST, 2, Some("3k2bz"), false)
            .unwrap();
        assert_eq!(rkeys(&page), ["3k2c", "3k2d"]);
        assert!(store
            .list_records(DID, POST, 0, None, false)
            .unwrap()
            .is_empty());
        assert!(store
            .list_records(DID, "a.b.c", 5, None, false)
            .unwrap()
            .is_empty());

        assert_eq!(
            store.collections(DID).unwrap(),
            [
                "app.bsky.feed.like",
                "app.bsky.feed.pos",
                "app.bsky.feed.post",
                "app.bsky.feed.postgate"
            ]
        );
        assert_eq!(store.record_count(DID).unwrap(), keys.len() as u64 + 3);
        assert!(store.collections("did:plc:nobody").unwrap().is_empty());
    }
}
