//! `firehose/commit-proof-fixtures.json`: the inductive firehose.
//!
//! For each fixture: build the tree from `keys`, apply `adds` and `dels` through
//! our diff producer, reproduce both roots, compare the MST nodes our diff
//! carries with `blocksInProof`, invert using only the diff's blocks, and check
//! that corrupted diffs fail.

use std::collections::{BTreeSet, HashMap};

use atrelay::repo::diff::{apply_writes, MstDiff, Write};
use atrelay::repo::invert::{invert, InvertError};
use atrelay::repo::mst::{Mst, MstError, NoBlocks};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::RepoOp;

use crate::common::{interop, read_json};

struct Fixture {
    comment: String,
    leaf: Cid,
    keys: Vec<String>,
    adds: Vec<String>,
    dels: Vec<String>,
    root_before: Cid,
    root_after: Cid,
    proof: BTreeSet<Cid>,
}

fn fixtures() -> Vec<Fixture> {
    let json = read_json(interop("firehose/commit-proof-fixtures.json"));
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let cid = |v: &serde_json::Value| -> Cid { v.as_str().unwrap().parse().unwrap() };
    let list: Vec<Fixture> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Fixture {
            comment: f["comment"].as_str().unwrap().to_owned(),
            leaf: cid(&f["leafValue"]),
            keys: strings(&f["keys"]),
            adds: strings(&f["adds"]),
            dels: strings(&f["dels"]),
            root_before: cid(&f["rootBeforeCommit"]),
            root_after: cid(&f["rootAfterCommit"]),
            proof: f["blocksInProof"]
                .as_array()
                .unwrap()
                .iter()
                .map(cid)
                .collect(),
        })
        .collect();
    assert_eq!(list.len(), 6, "expected all 6 commit-proof fixtures");
    list
}

/// Builds the pre-commit tree and applies the fixture's writes.
fn produce(f: &Fixture) -> MstDiff {
    let mut before = Mst::from_entries(f.keys.iter().map(|k| (k.as_bytes(), f.leaf))).unwrap();
    let (root, nodes) = before.build(&NoBlocks).unwrap();
    assert_eq!(root, f.root_before, "{}: root before", f.comment);
    let store: HashMap<Cid, Vec<u8>> = nodes.into_iter().collect();
    let writes: Vec<Write> = f
        .adds
        .iter()
        .map(|p| Write::Create {
            path: p.clone(),
            cid: f.leaf,
        })
        .chain(f.dels.iter().map(|p| Write::Delete { path: p.clone() }))
        .collect();
    apply_writes(root, &store, &writes).unwrap()
}

fn blocks_of(diff: &MstDiff) -> HashMap<Cid, Vec<u8>> {
    diff.proof_nodes.iter().cloned().collect()
}

#[test]
fn roots_and_proof_sets() {
    for f in fixtures() {
        let diff = produce(&f);
        assert_eq!(diff.data, f.root_after, "{}: root after", f.comment);
        let ours: BTreeSet<Cid> = diff.proof_nodes.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            ours,
            f.proof,
            "{}: our diff's MST nodes differ from blocksInProof\n extra: {:?}\n missing: {:?}",
            f.comment,
            ours.difference(&f.proof).collect::<Vec<_>>(),
            f.proof.difference(&ours).collect::<Vec<_>>()
        );
    }
}

#[test]
fn inversion_with_only_the_diff() {
    for f in fixtures() {
        let diff = produce(&f);
        let blocks = blocks_of(&diff);
        let ops: Vec<RepoOp> = diff.ops.iter().map(|o| o.as_repo_op()).collect();
        let inverted = invert(diff.data, &ops, &blocks)
            .unwrap_or_else(|e| panic!("{}: inversion failed: {e}", f.comment));
        assert_eq!(inverted, f.root_before, "{}", f.comment);
    }
}

#[test]
fn inversion_with_the_fixture_blocks() {
    // The fixture's own proof set (built from the full post-commit tree) must
    // suffice for our inverter too.
    for f in fixtures() {
        let mut after = Mst::from_entries(
            f.keys
                .iter()
                .filter(|k| !f.dels.contains(k))
                .chain(f.adds.iter())
                .map(|k| (k.as_bytes(), f.leaf)),
        )
        .unwrap();
        let (root, nodes) = after.build(&NoBlocks).unwrap();
        assert_eq!(root, f.root_after, "{}", f.comment);
        let blocks: HashMap<Cid, Vec<u8>> = nodes
            .into_iter()
            .filter(|(c, _)| f.proof.contains(c))
            .collect();
        assert_eq!(
            blocks.len(),
            f.proof.len(),
            "{}: proof blocks are in the tree",
            f.comment
        );
        let diff = produce(&f);
        let ops: Vec<RepoOp> = diff.ops.iter().map(|o| o.as_repo_op()).collect();
        assert_eq!(
            invert(root, &ops, &blocks).unwrap(),
            f.root_before,
            "{}",
            f.comment
        );
    }
}

/// Removing any node our inverter reads makes inversion fail with exactly that
/// node reported missing; removing a node carried only for other inverters (the
/// neighbour paths of the covering proof) leaves the result exact. Never a
/// wrong root.
#[test]
fn missing_proof_node_fails() {
    for f in fixtures() {
        let diff = produce(&f);
        let ops: Vec<RepoOp> = diff.ops.iter().map(|o| o.as_repo_op()).collect();
        let mut needed = 0;
        for (removed, _) in &diff.proof_nodes {
            let mut blocks = blocks_of(&diff);
            blocks.remove(removed);
            match invert(diff.data, &ops, &blocks) {
                Err(InvertError::Mst(MstError::MissingBlock(c))) => {
                    assert_eq!(&c, removed, "{}", f.comment);
                    needed += 1;
                }
                Ok(root) => assert_eq!(root, f.root_before, "{}: without {removed}", f.comment),
                Err(e) => panic!("{}: without {removed}: {e}", f.comment),
            }
        }
        // At least the new root is always needed.
        assert!(needed >= 1, "{}", f.comment);
        let mut no_root = blocks_of(&diff);
        no_root.remove(&diff.data);
        assert_eq!(
            invert(diff.data, &ops, &no_root),
            Err(InvertError::Mst(MstError::MissingBlock(diff.data)))
        );
    }
}

#[test]
fn wrong_prev_data_is_detected() {
    // The caller compares the inverted root with the announced prevData; a
    // commit announcing anything else must not match.
    for f in fixtures() {
        let diff = produce(&f);
        let ops: Vec<RepoOp> = diff.ops.iter().map(|o| o.as_repo_op()).collect();
        let inverted = invert(diff.data, &ops, &blocks_of(&diff)).unwrap();
        assert_ne!(inverted, f.root_after);
        assert_ne!(inverted, Cid::for_cbor(b"\xa0"));
    }
}

#[test]
fn tampered_ops_fail() {
    for f in fixtures() {
        let diff = produce(&f);
        let blocks = blocks_of(&diff);
        let good: Vec<RepoOp> = diff.ops.iter().map(|o| o.as_repo_op()).collect();

        // A different record CID on the first op.
        let mut ops = good.clone();
        let other = Cid::for_cbor(b"\x01");
        match ops[0].cid {
            Some(_) => ops[0].cid = Some(other),
            None => ops[0].prev = Some(other),
        }
        let r = invert(diff.data, &ops, &blocks);
        assert!(
            r.is_err() || r.as_ref().ok() != Some(&f.root_before),
            "{}: tampered cid accepted",
            f.comment
        );

        // An op dropped: the inverted root no longer matches.
        if good.len() > 1 {
            let r = invert(diff.data, &good[1..], &blocks);
            assert!(
                r.is_err() || r.unwrap() != f.root_before,
                "{}: dropped op",
                f.comment
            );
        }

        // A duplicated op.
        let mut dup = good.clone();
        dup.push(good[0]);
        assert!(matches!(
            invert(diff.data, &dup, &blocks),
            Err(InvertError::DuplicatePath(_))
        ));
    }
}
