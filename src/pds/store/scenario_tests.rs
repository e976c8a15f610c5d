//! Scenarios across the store's parts: a real repo built with the commit
//! builder over [`RepoBlocks`](super::RepoBlocks), survived across reopen,
//! and an account deletion that must leave nothing behind.

use std::collections::BTreeMap;

use super::test_support::account;
use super::{CommitWrite, PdsStore, StoreError};
use crate::crypto::{Curve, PrivateKey};
use crate::repo::builder::RecordWrite;
use crate::repo::commit::Commit;
use crate::repo::mst::Mst;
use crate::wire::cbor::Encoder;
use crate::wire::cid::Cid;
use crate::wire::tid::TidClock;

const ALICE: &str = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
const BOB: &str = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";
const COLLECTIONS: [&str; 3] = [
    "app.bsky.feed.like",
    "app.bsky.feed.post",
    "app.bsky.graph.follow",
];

/// A small DAG-CBOR record `{text, $type}`.
fn record(collection: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    e.map(2);
    e.text("text");
    e.text(text);
    e.text("$type");
    e.text(collection);
    out
}

/// Builds a commit of `writes` on the stored head and applies it; returns
/// the paths and CIDs it put.
fn commit(
    store: &PdsStore,
    did: &str,
    key: &PrivateKey,
    clock: &TidClock,
    writes: Vec<RecordWrite>,
) {
    let head = store.repo_head(did).unwrap();
    let built = head
        .commit(&store.repo_blocks(did), writes, key, clock.next())
        .unwrap();
    let write = CommitWrite::from_built(&built).unwrap();
    store.apply_commit_on(did, head.commit, write).unwrap();
}

/// Checks that the head, the MST, the record blocks and the record index all
/// describe exactly `expected`.
fn assert_repo_matches(
    store: &PdsStore,
    did: &str,
    key: &PrivateKey,
    expected: &BTreeMap<String, Cid>,
) {
    let head = store.head(did).unwrap().expect("head");
    let blocks = store.repo_blocks(did);
    // The commit block is stored, signed by the account key, and points at `data`.
    let commit_bytes = store
        .get_block(did, &head.commit)
        .unwrap()
        .expect("commit block");
    let commit = Commit::decode(&commit_bytes).unwrap();
    commit.verify_signature(&key.public_key()).unwrap();
    assert_eq!(
        (commit.data, commit.rev, commit.did),
        (head.data, head.rev.as_str(), did)
    );
    // The MST loads from the store and holds exactly the expected records.
    let mut tree = Mst::load(head.data, &blocks).unwrap();
    tree.load_all(&blocks).unwrap();
    let in_tree: BTreeMap<String, Cid> = tree
        .entries()
        .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), *v))
        .collect();
    assert_eq!(&in_tree, expected);
    for (path, cid) in expected {
        assert_eq!(tree.get(path.as_bytes(), &blocks).unwrap(), Some(*cid));
        let bytes = store.get_block(did, cid).unwrap().expect("record block");
        assert_eq!(Cid::for_cbor(&bytes), *cid);
        let (collection, rkey) = path.split_once('/').unwrap();
        assert_eq!(store.record_cid(did, collection, rkey).unwrap(), Some(*cid));
    }
    // The index holds nothing else.
    let mut indexed = BTreeMap::new();
    for collection in store.collections(did).unwrap() {
        for (rkey, cid) in store
            .list_records(did, &collection, 1000, None, false)
            .unwrap()
        {
            indexed.insert(format!("{collection}/{rkey}"), cid);
        }
    }
    assert_eq!(&indexed, expected);
    assert_eq!(store.record_count(did).unwrap(), expected.len() as u64);
}

#[test]
fn real_repo_round_trip_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(Curve::K256);
    let clock = TidClock::new();
    let mut expected: BTreeMap<String, Cid> = BTreeMap::new();
    {
        let store = PdsStore::open(dir.path()).unwrap();
        let mut acct = account(ALICE, "alice.test", None);
        acct.signing_key = key.to_bytes();
        store.create_account(&acct).unwrap();

        // Commit 1..4: creates across collections.
        for batch in 0..4 {
            let mut writes = Vec::new();
            for i in 0..10 {
                let collection = COLLECTIONS[i % COLLECTIONS.len()];
                let path = format!("{collection}/{}", clock.next());
                let rec = record(collection, &format!("b{batch} r{i}"));
                expected.insert(path.clone(), Cid::for_cbor(&rec));
                writes.push(RecordWrite::Create { path, record: rec });
            }
            commit(&store, ALICE, &key, &clock, writes);
            assert_repo_matches(&store, ALICE, &key, &expected);
        }
        // Commit 5: updates and deletes mixed with a create.
        let paths: Vec<String> = expected.keys().cloned().collect();
        let mut writes = Vec::new();
        for path in paths.iter().step_by(4) {
            let rec = record("app.bsky.feed.post", &format!("updated {path}"));
            expected.insert(path.clone(), Cid::for_cbor(&rec));
            writes.push(RecordWrite::Update {
                path: path.clone(),
                record: rec,
            });
        }
        for path in paths.iter().skip(2).step_by(4) {
            expected.remove(path);
            writes.push(RecordWrite::Delete { path: path.clone() });
        }
        let path = "app.bsky.actor.profile/self".to_string();
        let rec = record("app.bsky.actor.profile", "me");
        expected.insert(path.clone(), Cid::for_cbor(&rec));
        writes.push(RecordWrite::Create { path, record: rec });
        commit(&store, ALICE, &key, &clock, writes);
        assert_repo_matches(&store, ALICE, &key, &expected);
        // An empty collection disappears from the list once emptied.
        let likes: Vec<RecordWrite> = expected
            .keys()
            .filter(|p| p.starts_with("app.bsky.feed.like/"))
            .map(|p| RecordWrite::Delete { path: p.clone() })
            .collect();
        expected.retain(|p, _| !p.starts_with("app.bsky.feed.like/"));
        commit(&store, ALICE, &key, &clock, likes);
        assert!(!store
            .collections(ALICE)
            .unwrap()
            .iter()
            .any(|c| c == "app.bsky.feed.like"));
        assert_repo_matches(&store, ALICE, &key, &expected);
    }
    // Reopen: the same head, tree, blocks and index.
    let store = PdsStore::open(dir.path()).unwrap();
    assert_repo_matches(&store, ALICE, &key, &expected);
    let stored_key = store
        .account(ALICE)
        .unwrap()
        .unwrap()
        .signing_key()
        .unwrap();
    assert_eq!(stored_key.public_key(), key.public_key());
    // And the repo keeps growing from where it was.
    let path = "app.bsky.feed.post/3zzzzzzzzzzzz".to_string();
    let rec = record("app.bsky.feed.post", "after reopen");
    expected.insert(path.clone(), Cid::for_cbor(&rec));
    commit(
        &store,
        ALICE,
        &key,
        &clock,
        vec![RecordWrite::Create { path, record: rec }],
    );
    assert_repo_matches(&store, ALICE, &key, &expected);
}

#[test]
fn deleting_an_account_removes_everything_it_owns() {
    let dir = tempfile::tempdir().unwrap();
    let store = PdsStore::open(dir.path()).unwrap();
    let key = PrivateKey::generate(Curve::K256);
    let clock = TidClock::new();
    for (did, handle, email) in [
        (ALICE, "alice.test", "a@x.test"),
        (BOB, "bob.test", "b@x.test"),
    ] {
        store
            .create_account(&account(did, handle, Some(email)))
            .unwrap();
        let writes = (0..5)
            .map(|i| RecordWrite::Create {
                path: format!("app.bsky.feed.post/{}", clock.next()),
                record: record("app.bsky.feed.post", &format!("{did} {i}")),
            })
            .collect();
        commit(&store, did, &key, &clock, writes);
        let blob = format!("blob of {did}").into_bytes();
        store
            .put_blob(did, &Cid::for_raw(&blob), "text/plain", &blob)
            .unwrap();
        store
            .put_refresh(&format!("jti-{did}"), did, u64::MAX)
            .unwrap();
    }
    let bob_blocks = store.all_blocks(BOB).unwrap();

    store.delete_account(ALICE).unwrap();
    assert!(matches!(
        store.delete_account(ALICE),
        Err(StoreError::NotFound)
    ));

    let gone = |store: &PdsStore| {
        assert_eq!(store.account(ALICE).unwrap(), None);
        assert_eq!(store.did_for_handle("alice.test").unwrap(), None);
        assert_eq!(store.did_for_email("a@x.test").unwrap(), None);
        assert_eq!(store.head(ALICE).unwrap(), None);
        assert!(store.all_blocks(ALICE).unwrap().is_empty());
        assert_eq!(store.record_count(ALICE).unwrap(), 0);
        assert!(store.collections(ALICE).unwrap().is_empty());
        assert!(store.list_blobs(ALICE, None, 10).unwrap().is_empty());
        assert!(!dir.path().join("blobs").join(ALICE).exists());
        assert!(matches!(store.repo_head(ALICE), Err(StoreError::NotFound)));
        // Bob is untouched.
        assert_eq!(
            store.did_for_handle("bob.test").unwrap().as_deref(),
            Some(BOB)
        );
        assert_eq!(store.record_count(BOB).unwrap(), 5);
        assert_eq!(store.all_blocks(BOB).unwrap(), bob_blocks);
        assert_eq!(store.list_blobs(BOB, None, 10).unwrap().len(), 1);
    };
    gone(&store);
    assert_eq!(store.take_refresh(&format!("jti-{ALICE}")).unwrap(), None);
    drop(store);
    let store = PdsStore::open(dir.path()).unwrap();
    gone(&store);
    assert!(store.take_refresh(&format!("jti-{BOB}")).unwrap().is_some());

    // Nothing can be written for the deleted account...
    let blob = b"late".to_vec();
    assert!(matches!(
        store.put_blob(ALICE, &Cid::for_raw(&blob), "text/plain", &blob),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.put_refresh("late", ALICE, 1),
        Err(StoreError::NotFound)
    ));
    // ...and its handle, email and DID are free again, with a fresh repo.
    store
        .create_account(&account(ALICE, "alice.test", Some("A@X.test")))
        .unwrap();
    assert_eq!(store.repo_head(ALICE).unwrap().commit, None);
    assert_eq!(store.all_blocks(ALICE).unwrap().len(), 1);
}
