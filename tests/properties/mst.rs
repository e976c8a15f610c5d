//! The MST's shape depends only on its contents; every diff we produce inverts
//! with only its own blocks.

use std::collections::{BTreeMap, HashMap};

use atrelay::repo::diff::{apply_writes, Write};
use atrelay::repo::invert::invert;
use atrelay::repo::mst::{Mst, NoBlocks};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::RepoOp;
use proptest::prelude::*;

/// Repo paths from a small alphabet so that neighbours, shared prefixes and
/// every layer from 0 to 3 or so occur often.
fn path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "app.bsky.feed.post",
            "app.bsky.feed.like",
            "com.example.x",
        ]),
        "[a-z2-7]{1,6}",
    )
        .prop_map(|(c, k)| format!("{c}/{k}"))
}

fn value(n: u32) -> Cid {
    Cid::for_cbor(&n.to_be_bytes())
}

fn root_of(entries: &BTreeMap<String, Cid>) -> Cid {
    Mst::from_entries(entries.iter().map(|(k, v)| (k.as_bytes(), *v)))
        .unwrap()
        .root(&NoBlocks)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn insert_order_does_not_matter(
        keys in prop::collection::btree_set(path(), 0..120),
        seed in any::<u64>(),
    ) {
        let entries: BTreeMap<String, Cid> =
            keys.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u32))).collect();
        let expected = root_of(&entries);
        let mut order: Vec<&String> = keys.iter().collect();
        // Deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            order.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut tree = Mst::new();
        for k in &order {
            tree.insert(k.as_bytes(), entries[*k], &NoBlocks).unwrap();
        }
        prop_assert_eq!(tree.root(&NoBlocks).unwrap(), expected);

        // Removing half again equals building the remaining half.
        let mut remaining = entries.clone();
        for k in order.iter().step_by(2) {
            prop_assert_eq!(tree.remove(k.as_bytes(), &NoBlocks).unwrap(), Some(entries[*k]));
            remaining.remove(*k);
        }
        prop_assert_eq!(tree.root(&NoBlocks).unwrap(), root_of(&remaining));
    }

    #[test]
    fn diffs_invert_with_only_their_blocks(
        initial in prop::collection::btree_set(path(), 0..150),
        new_keys in prop::collection::btree_set(path(), 0..8),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..8),
    ) {
        let before: BTreeMap<String, Cid> =
            initial.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u32))).collect();
        let mut tree = Mst::from_entries(before.iter().map(|(k, v)| (k.as_bytes(), *v))).unwrap();
        let (prev_root, nodes) = tree.build(&NoBlocks).unwrap();
        let store: HashMap<Cid, Vec<u8>> = nodes.into_iter().collect();

        // Writes: creates of absent keys, updates and deletes of present ones.
        let mut writes = Vec::new();
        let mut after = before.clone();
        for (n, k) in new_keys.iter().filter(|k| !before.contains_key(*k)).enumerate() {
            let cid = value(10_000 + n as u32);
            writes.push(Write::Create { path: k.clone(), cid });
            after.insert(k.clone(), cid);
        }
        let existing: Vec<&String> = before.keys().collect();
        let mut touched = std::collections::HashSet::new();
        if !existing.is_empty() {
            for (n, (idx, update)) in picks.iter().enumerate() {
                let k = existing[idx.index(existing.len())];
                if !touched.insert(k.clone()) {
                    continue;
                }
                if *update {
                    let cid = value(20_000 + n as u32);
                    writes.push(Write::Update { path: k.clone(), cid });
                    after.insert(k.clone(), cid);
                } else {
                    writes.push(Write::Delete { path: k.clone() });
                    after.remove(k);
                }
            }
        }

        let diff = apply_writes(prev_root, &store, &writes).unwrap();
        prop_assert_eq!(diff.data, root_of(&after));
        let blocks: HashMap<Cid, Vec<u8>> = diff.proof_nodes.iter().cloned().collect();
        let ops: Vec<RepoOp> = diff.ops.iter().map(|o| o.as_repo_op()).collect();
        prop_assert_eq!(invert(diff.data, &ops, &blocks).unwrap(), prev_root);
    }
}
