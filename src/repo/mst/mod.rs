//! The Merkle Search Tree: a deterministic, content-addressed sorted map from
//! repo paths to record CIDs.
//!
//! [`Mst`] holds a tree that may be *partial*: subtrees whose blocks have not
//! been loaded stay as stubs (a CID and a layer). Every operation loads what it
//! needs from a [`BlockSource`] on demand and fails with
//! [`MstError::MissingBlock`] when the block is not there. The one mechanism
//! serves both sides of the inductive firehose:
//!
//! - a PDS applies writes to a tree backed by its block store, touching only
//!   the paths it needs, and learns which nodes a diff must carry;
//! - a relay loads the post-commit tree from a diff's CAR and inverts the ops
//!   on it; a diff lacking a needed proof node fails with `MissingBlock`.
//!
//! ```
//! use std::collections::HashMap;
//! use atrelay::repo::mst::{Mst, NoBlocks};
//! use atrelay::wire::cid::Cid;
//!
//! let value = Cid::for_cbor(b"\xa0");
//! let mut tree = Mst::new();
//! tree.insert(b"app.bsky.feed.post/3k2a", value, &NoBlocks).unwrap();
//! let (root, nodes) = tree.build(&NoBlocks).unwrap();
//!
//! // Reload lazily from the nodes (a CAR or a block store works the same way).
//! let store: HashMap<Cid, Vec<u8>> = nodes.into_iter().collect();
//! let mut reloaded = Mst::load(root, &store).unwrap();
//! assert_eq!(reloaded.get(b"app.bsky.feed.post/3k2a", &store).unwrap(), Some(value));
//! assert_eq!(reloaded.get(b"app.bsky.feed.post/zzzz", &store).unwrap(), None);
//! ```

mod key;
mod node;
mod tree;

pub use key::{common_prefix_len, key_layer, MAX_KEY_LEN};
pub use node::{Entry, Node};
pub use tree::Mst;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::wire::car::Car;
use crate::wire::cbor::DecodeError;
use crate::wire::cid::Cid;

/// An encoded node with its CID.
pub type NodeBlock = (Cid, Vec<u8>);

/// The empty tree's root node `{e: [], l: null}`: the MST of a repo with no
/// records.
pub fn empty_tree_node() -> NodeBlock {
    Node::default().to_block()
}

/// Why an MST operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MstError {
    /// A node the operation must read is not available: for a firehose diff,
    /// the diff lacks a proof node.
    #[error("MST node {0} is needed but missing")]
    MissingBlock(Cid),
    #[error("MST node does not decode: {0}")]
    Decode(DecodeError),
    #[error("malformed MST: {0}")]
    Malformed(&'static str),
    #[error("MST key is empty or longer than {MAX_KEY_LEN} bytes")]
    BadKey,
}

/// Where MST nodes are read from: a CAR, a map, a block store.
pub trait BlockSource {
    /// The block named `cid`, if available.
    fn get_block(&self, cid: &Cid) -> Option<Cow<'_, [u8]>>;
}

impl BlockSource for Car<'_> {
    fn get_block(&self, cid: &Cid) -> Option<Cow<'_, [u8]>> {
        self.get(cid).map(Cow::Borrowed)
    }
}

impl BlockSource for HashMap<Cid, Vec<u8>> {
    fn get_block(&self, cid: &Cid) -> Option<Cow<'_, [u8]>> {
        self.get(cid).map(|v| Cow::Borrowed(&v[..]))
    }
}

impl BlockSource for BTreeMap<Cid, Vec<u8>> {
    fn get_block(&self, cid: &Cid) -> Option<Cow<'_, [u8]>> {
        self.get(cid).map(|v| Cow::Borrowed(&v[..]))
    }
}

/// Two sources, the first consulted first (new blocks over a store).
impl<A: BlockSource, B: BlockSource> BlockSource for (&A, &B) {
    fn get_block(&self, cid: &Cid) -> Option<Cow<'_, [u8]>> {
        self.0.get_block(cid).or_else(|| self.1.get_block(cid))
    }
}

/// A source with no blocks: for trees built entirely in memory.
pub struct NoBlocks;

impl BlockSource for NoBlocks {
    fn get_block(&self, _: &Cid) -> Option<Cow<'_, [u8]>> {
        None
    }
}
