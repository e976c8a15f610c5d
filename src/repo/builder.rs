//! Building signed commits: record writes in, a `#commit`-ready diff out.
//!
//! This is the producer side of the inductive firehose, used by the PDS mode,
//! the load generator, the benches and the tests: apply writes to the repo's
//! MST (reading only what it needs from the block store), sign a new commit,
//! and assemble the diff CAR (commit, new and proof MST nodes, new records).
//!
//! ```
//! use std::collections::HashMap;
//! use atrelay::crypto::{Curve, PrivateKey};
//! use atrelay::repo::builder::{RecordWrite, RepoHead};
//! use atrelay::wire::tid::TidClock;
//!
//! let key = PrivateKey::generate(Curve::K256);
//! let mut store = HashMap::new();
//! let clock = TidClock::new();
//! let head = RepoHead::empty("did:plc:abcdefghijklmnopqrstuvwx", &mut store);
//! let record = b"\xa2\x64text\x62hi\x65$type\x72app.bsky.feed.post".to_vec();
//! let built = head
//!     .commit(&store, vec![RecordWrite::Create { path: "app.bsky.feed.post/3k2a".into(), record }], &key, clock.next())
//!     .unwrap();
//! built.store_into(&mut store);
//! assert_eq!(built.ops.len(), 1);
//! ```

use std::collections::HashMap;

use super::commit::Commit;
use super::diff::{apply_writes, DiffError, DiffOp, Write};
use super::mst::{empty_tree_node, BlockSource};
use crate::crypto::PrivateKey;
use crate::wire::car::CarWriter;
use crate::wire::cid::Cid;
use crate::wire::frame;
use crate::wire::tid::Tid;

/// A record write with the record's DAG-CBOR bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordWrite {
    Create { path: String, record: Vec<u8> },
    Update { path: String, record: Vec<u8> },
    Delete { path: String },
}

/// Where a repo stands: what the next commit builds on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoHead {
    pub did: String,
    /// Rev of the latest commit; `None` before the first commit.
    pub rev: Option<Tid>,
    /// MST root of the latest commit (the empty tree's root before any).
    pub data: Cid,
    /// CID of the latest commit, if any.
    pub commit: Option<Cid>,
}

/// A signed commit with its diff.
#[derive(Clone, Debug)]
pub struct BuiltCommit {
    pub commit: Cid,
    pub rev: Tid,
    /// The previous rev (`since`).
    pub since: Option<Tid>,
    /// The previous MST root (`prevData`).
    pub prev_data: Cid,
    /// The new MST root.
    pub data: Cid,
    pub ops: Vec<DiffOp>,
    /// The diff CAR for `#commit.blocks`.
    pub car: Vec<u8>,
    /// Every new block (commit, MST nodes, records) to persist.
    pub new_blocks: Vec<(Cid, Vec<u8>)>,
    /// The head after this commit.
    pub head: RepoHead,
}

impl RepoHead {
    /// A new repo with an empty tree; stores the empty root node.
    pub fn empty(did: &str, store: &mut HashMap<Cid, Vec<u8>>) -> RepoHead {
        let (data, bytes) = empty_tree_node();
        store.insert(data, bytes);
        RepoHead {
            did: did.to_owned(),
            rev: None,
            data,
            commit: None,
        }
    }

    /// Applies `writes`, signs a commit at `rev` with `key`, and assembles the
    /// diff. `rev` is raised above the previous rev if needed.
    pub fn commit(
        &self,
        store: &impl BlockSource,
        writes: Vec<RecordWrite>,
        key: &PrivateKey,
        rev: Tid,
    ) -> Result<BuiltCommit, DiffError> {
        let rev = match self.rev {
            Some(prev) if rev <= prev => Tid::from_u64(prev.as_u64() + 1).unwrap_or(prev),
            _ => rev,
        };
        let mut records: Vec<(Cid, Vec<u8>)> = Vec::new();
        let writes: Vec<Write> = writes
            .into_iter()
            .map(|w| match w {
                RecordWrite::Create { path, record } => {
                    let cid = Cid::for_cbor(&record);
                    records.push((cid, record));
                    Write::Create { path, cid }
                }
                RecordWrite::Update { path, record } => {
                    let cid = Cid::for_cbor(&record);
                    records.push((cid, record));
                    Write::Update { path, cid }
                }
                RecordWrite::Delete { path } => Write::Delete { path },
            })
            .collect();
        let diff = apply_writes(self.data, store, &writes)?;
        let signed = Commit::sign(&self.did, &rev.to_string(), diff.data, None, key);

        let mut car = CarWriter::new(&[signed.cid]);
        car.push(&signed.cid, &signed.bytes);
        for (cid, bytes) in &diff.proof_nodes {
            car.push(cid, bytes);
        }
        records.sort_unstable_by_key(|(c, _)| *c);
        records.dedup_by_key(|(c, _)| *c);
        for (cid, bytes) in &records {
            car.push(cid, bytes);
        }

        let mut new_blocks = Vec::with_capacity(1 + diff.new_nodes.len() + records.len());
        new_blocks.push((signed.cid, signed.bytes));
        new_blocks.extend(diff.new_nodes);
        new_blocks.extend(records);
        Ok(BuiltCommit {
            commit: signed.cid,
            rev,
            since: self.rev,
            prev_data: self.data,
            data: diff.data,
            ops: diff.ops,
            car: car.finish(),
            new_blocks,
            head: RepoHead {
                did: self.did.clone(),
                rev: Some(rev),
                data: diff.data,
                commit: Some(signed.cid),
            },
        })
    }
}

/// Owned strings the borrowed frame points into.
pub struct FrameStrings {
    rev: String,
    since: Option<String>,
}

impl BuiltCommit {
    /// Adds the new blocks to an in-memory store.
    pub fn store_into(&self, store: &mut HashMap<Cid, Vec<u8>>) {
        for (cid, bytes) in &self.new_blocks {
            store.insert(*cid, bytes.clone());
        }
    }

    /// The strings a [`frame::Commit`] for this commit borrows.
    pub fn frame_strings(&self) -> FrameStrings {
        FrameStrings {
            rev: self.rev.to_string(),
            since: self.since.map(|t| t.to_string()),
        }
    }

    /// The `#commit` event for this commit.
    pub fn to_frame<'a>(
        &'a self,
        strings: &'a FrameStrings,
        seq: i64,
        time: &'a str,
    ) -> frame::Commit<'a> {
        frame::Commit {
            seq,
            rebase: false,
            too_big: false,
            repo: &self.head.did,
            commit: self.commit,
            rev: &strings.rev,
            since: strings.since.as_deref(),
            blocks: &self.car,
            ops: self.ops.iter().map(DiffOp::as_repo_op).collect(),
            blobs: Vec::new(),
            prev_data: Some(self.prev_data),
            time,
        }
    }
}
