//! Inversion: proving a `#commit`'s ops lead from `prevData` to `data`.
//!
//! Digest §2.2 step 9. Starting from the post-commit tree (loaded lazily from
//! the diff's blocks), each op is undone — a create removed, an update put back
//! to `prev`, a delete re-inserted at `prev` — and the resulting root must equal
//! the previous commit's `data`. Undoing an op also checks the op against the
//! tree: the created or updated key must hold exactly `op.cid`, a deleted key
//! must be absent. A diff that lacks a node this needs fails with
//! [`MstError::MissingBlock`]: it did not carry its proof.
//!
//! Always checked here: op shapes (create has `cid` and no `prev`, update both,
//! delete `prev` only), duplicate paths, op-vs-tree agreement, the inverted
//! root. Not checked here: that the inverted root equals the stored or
//! announced `prevData` (the caller compares the returned CID), signatures,
//! record blocks' presence (see [`super::verify`]).

use super::mst::{BlockSource, Mst, MstError};
use crate::wire::cid::Cid;
use crate::wire::frame::{Action, RepoOp};

/// Why a diff does not invert.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvertError {
    #[error("inversion: {0}")]
    Mst(#[from] MstError),
    #[error("op on {0} appears more than once")]
    DuplicatePath(String),
    #[error("{action} op on {path}: {reason}")]
    OpShape {
        action: &'static str,
        path: String,
        reason: &'static str,
    },
    #[error("{0}")]
    Mismatch(Box<OpMismatch>),
}

/// An op that disagrees with the tree (boxed: CIDs are large and errors are rare).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{action} op on {path}: the tree holds {found:?}, the op says {expected:?}")]
pub struct OpMismatch {
    pub action: &'static str,
    pub path: String,
    pub expected: Option<Cid>,
    pub found: Option<Cid>,
}

/// Checks an op's shape: which of `cid` and `prev` it must and must not have.
pub fn check_op_shape(op: &RepoOp) -> Result<(), InvertError> {
    let reason = match (op.action, op.cid.is_some(), op.prev.is_some()) {
        (Action::Create, true, false)
        | (Action::Update, true, true)
        | (Action::Delete, false, true) => return Ok(()),
        (Action::Create, false, _) | (Action::Update, false, _) => "cid is missing",
        (Action::Create, true, true) => "a create must not carry prev",
        (Action::Delete, true, _) => "a delete must have a null cid",
        (_, _, false) => "prev is missing (needed to invert)",
    };
    Err(InvertError::OpShape {
        action: op.action.as_str(),
        path: op.path.to_owned(),
        reason,
    })
}

/// Whether every op carries what inversion needs; pre-Sync-1.1 ("legacy")
/// updates and deletes lack `prev` and cannot be inverted.
pub fn is_invertible(ops: &[RepoOp]) -> bool {
    ops.iter()
        .all(|op| op.action == Action::Create || op.prev.is_some())
}

/// Undoes `ops` on the tree rooted at `data` and returns the resulting root,
/// which for a valid diff is the previous commit's `data`.
pub fn invert(data: Cid, ops: &[RepoOp], blocks: &impl BlockSource) -> Result<Cid, InvertError> {
    let mut tree = Mst::load(data, blocks)?;
    invert_tree(&mut tree, ops, blocks)?;
    Ok(tree.root(blocks)?)
}

/// Undoes `ops` on an already loaded tree (lets a caller see which nodes the
/// inversion touched).
pub fn invert_tree(
    tree: &mut Mst,
    ops: &[RepoOp],
    blocks: &impl BlockSource,
) -> Result<(), InvertError> {
    let mut paths: Vec<&str> = ops.iter().map(|op| op.path).collect();
    paths.sort_unstable();
    if let Some(w) = paths.windows(2).find(|w| w[0] == w[1]) {
        return Err(InvertError::DuplicatePath(w[0].to_owned()));
    }
    for op in ops {
        check_op_shape(op)?;
        let key = op.path.as_bytes();
        let found = match (op.action, op.prev) {
            (Action::Create, _) => tree.remove(key, blocks)?,
            (_, Some(prev)) => tree.insert(key, prev, blocks)?,
            (_, None) => return Err(InvertError::Mst(MstError::Malformed("op without prev"))),
        };
        // A create or update left `cid` at the key; a delete left nothing.
        let expected = op.cid;
        if found != expected {
            return Err(InvertError::Mismatch(Box::new(OpMismatch {
                action: op.action.as_str(),
                path: op.path.to_owned(),
                expected,
                found,
            })));
        }
    }
    Ok(())
}
