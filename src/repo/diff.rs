//! Diff production: applying a batch of record writes to a repo's MST and
//! gathering the blocks a `#commit` must carry so any relay can invert it.
//!
//! The blocks are (a) every MST node that is new in the post-commit tree,
//! (b) the covering proof of every written key in the post-commit tree (the
//! paths to the key and to its nearest neighbours, as the reference PDS sends,
//! so any relay's inverter finds what it reads), and (c) every node our own
//! inversion ([`super::invert`]) reads. (c) is found by running the real
//! inversion over the new nodes plus the store and recording what it loads; it
//! is checked to land on the previous root before the diff is returned.

use std::collections::HashMap;

use super::invert::invert_tree;
use super::mst::{BlockSource, Mst, MstError};
use crate::wire::cid::Cid;
use crate::wire::frame::{Action, RepoOp};

/// One record write requested by a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Creates `path` (must not exist) holding the record `cid`.
    Create { path: String, cid: Cid },
    /// Replaces the record at `path` (must exist) with `cid`.
    Update { path: String, cid: Cid },
    /// Deletes the record at `path` (must exist).
    Delete { path: String },
}

impl Write {
    /// The record path written.
    pub fn path(&self) -> &str {
        match self {
            Write::Create { path, .. } | Write::Update { path, .. } | Write::Delete { path } => {
                path
            }
        }
    }
}

/// An op as it will appear in the `#commit`, owning its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffOp {
    pub action: Action,
    pub path: String,
    pub cid: Option<Cid>,
    pub prev: Option<Cid>,
}

impl DiffOp {
    /// The firehose form.
    pub fn as_repo_op(&self) -> RepoOp<'_> {
        RepoOp {
            action: self.action,
            path: &self.path,
            cid: self.cid,
            prev: self.prev,
        }
    }
}

/// The result of applying writes.
#[derive(Clone, Debug)]
pub struct MstDiff {
    /// MST root before the writes.
    pub prev_data: Cid,
    /// MST root after the writes.
    pub data: Cid,
    /// The ops, in the order the writes were given, each with its `prev`.
    pub ops: Vec<DiffOp>,
    /// MST nodes created by the writes (to be stored).
    pub new_nodes: Vec<(Cid, Vec<u8>)>,
    /// MST nodes a `#commit` must carry: the new ones plus the unchanged ones
    /// inversion reads. Every block appears once.
    pub proof_nodes: Vec<(Cid, Vec<u8>)>,
}

/// Why writes could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error("{0}")]
    Mst(#[from] MstError),
    #[error("record {0} already exists")]
    AlreadyExists(String),
    #[error("record {0} does not exist")]
    NotFound(String),
    #[error("path {0} is written more than once in one commit")]
    DuplicatePath(String),
    #[error("internal: the diff does not invert to the previous root: {0}")]
    Inversion(String),
}

/// Applies `writes` to the tree rooted at `prev_data` (read from `store`).
pub fn apply_writes(
    prev_data: Cid,
    store: &impl BlockSource,
    writes: &[Write],
) -> Result<MstDiff, DiffError> {
    let mut paths: Vec<&str> = writes.iter().map(Write::path).collect();
    paths.sort_unstable();
    if let Some(w) = paths.windows(2).find(|w| w[0] == w[1]) {
        return Err(DiffError::DuplicatePath(w[0].to_owned()));
    }

    let mut tree = Mst::load(prev_data, store)?;
    let mut ops = Vec::with_capacity(writes.len());
    for write in writes {
        let op = match write {
            Write::Create { path, cid } => {
                if tree.get(path.as_bytes(), store)?.is_some() {
                    return Err(DiffError::AlreadyExists(path.clone()));
                }
                tree.insert(path.as_bytes(), *cid, store)?;
                DiffOp {
                    action: Action::Create,
                    path: path.clone(),
                    cid: Some(*cid),
                    prev: None,
                }
            }
            Write::Update { path, cid } => {
                let prev = tree
                    .insert(path.as_bytes(), *cid, store)?
                    .ok_or_else(|| DiffError::NotFound(path.clone()))?;
                DiffOp {
                    action: Action::Update,
                    path: path.clone(),
                    cid: Some(*cid),
                    prev: Some(prev),
                }
            }
            Write::Delete { path } => {
                let prev = tree
                    .remove(path.as_bytes(), store)?
                    .ok_or_else(|| DiffError::NotFound(path.clone()))?;
                DiffOp {
                    action: Action::Delete,
                    path: path.clone(),
                    cid: None,
                    prev: Some(prev),
                }
            }
        };
        ops.push(op);
    }

    let (data, built) = tree.build(store)?;
    let new: HashMap<Cid, Vec<u8>> = built
        .into_iter()
        .filter(|(cid, _)| store.get_block(cid).is_none())
        .collect();

    // Invert over new nodes + store and record which nodes were read.
    let both = (&new, store);
    let mut post = Mst::load(data, &both)?;
    let repo_ops: Vec<RepoOp> = ops.iter().map(DiffOp::as_repo_op).collect();
    invert_tree(&mut post, &repo_ops, &both).map_err(|e| DiffError::Inversion(e.to_string()))?;
    let inverted = post.root(&both)?;
    if inverted != prev_data {
        return Err(DiffError::Inversion(format!(
            "got {inverted}, expected {prev_data}"
        )));
    }

    // The covering proof of every written key, as the reference PDS builds it,
    // so inverters that look further than ours still find what they need.
    let mut cover = Mst::load(data, &both)?;
    for op in &ops {
        cover.load_covering_proof(op.path.as_bytes(), &both)?;
    }

    let mut proof_nodes: Vec<(Cid, Vec<u8>)> = new.iter().map(|(c, b)| (*c, b.clone())).collect();
    for cid in post.loaded_nodes().iter().chain(cover.loaded_nodes()) {
        if !new.contains_key(cid) {
            let bytes = store.get_block(cid).ok_or(MstError::MissingBlock(*cid))?;
            proof_nodes.push((*cid, bytes.into_owned()));
        }
    }
    proof_nodes.sort_unstable_by_key(|(c, _)| *c);
    proof_nodes.dedup_by_key(|(c, _)| *c);
    let mut new_nodes: Vec<(Cid, Vec<u8>)> = new.into_iter().collect();
    new_nodes.sort_unstable_by_key(|(c, _)| *c);

    Ok(MstDiff {
        prev_data,
        data,
        ops,
        new_nodes,
        proof_nodes,
    })
}
