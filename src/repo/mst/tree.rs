//! A possibly partial MST as a sorted sequence of leaves and stubs.
//!
//! The tree's shape is a pure function of its key set, so instead of mutating
//! nodes in place (splits and merges), the tree is kept flat: the sorted leaves
//! (key, value, layer) and, in the gaps between them, *stubs* for subtrees not
//! yet loaded. Nodes are rebuilt from the sequence when a root is asked for.
//!
//! Rebuilding reuses a stub's CID exactly when the stub alone forms a subtree
//! group at its own layer — then its key set, and so its node, is unchanged.
//! Whenever the rebuild would have to look inside a stub (a stub sharing a group
//! with other items, or at a layer its group is built above it), the stub is
//! loaded from the [`BlockSource`] and the rebuild retried; if the block is not
//! there, the operation fails with [`MstError::MissingBlock`]. Likewise a lookup,
//! insert or delete whose gap holds a stub loads it first, since the key could
//! be inside. So every result is either exact or an error, never a guess.

use super::key::{key_layer, MAX_KEY_LEN};
use super::node::{encode_parts, Node};
use super::{BlockSource, MstError, NodeBlock};
use crate::wire::cid::Cid;

/// An unloaded subtree: the CID of a node and that node's layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stub {
    cid: Cid,
    layer: u8,
}

/// A key with its value and layer, and the stubs in the gap after it.
#[derive(Clone, Debug)]
struct Leaf {
    key: Vec<u8>,
    value: Cid,
    layer: u8,
    after: Vec<Stub>,
}

/// A Merkle Search Tree, possibly partial. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Mst {
    /// Stubs before the first leaf.
    head: Vec<Stub>,
    leaves: Vec<Leaf>,
    /// Nodes decoded from a block source, in load order (the root first).
    loaded: Vec<Cid>,
}

/// What stopped a rebuild attempt.
enum Stop {
    /// The stub at `(gap, index)` must be loaded.
    Expand(usize, usize),
    Malformed(&'static str),
}

/// One element of the flattened sequence a rebuild walks.
#[derive(Clone, Copy)]
enum Item<'t> {
    Leaf(&'t Leaf),
    /// A stub and where it lives: gap number and index within the gap.
    Stub(Stub, usize, usize),
}

impl Mst {
    /// An empty tree.
    pub fn new() -> Mst {
        Mst::default()
    }

    /// A complete tree holding `entries` (any order). Duplicate keys, empty
    /// keys and keys over [`MAX_KEY_LEN`] are errors.
    pub fn from_entries<K: AsRef<[u8]>>(
        entries: impl IntoIterator<Item = (K, Cid)>,
    ) -> Result<Mst, MstError> {
        let mut leaves = Vec::new();
        for (k, value) in entries {
            let key = k.as_ref();
            check_key(key)?;
            leaves.push(Leaf {
                key: key.to_vec(),
                value,
                layer: key_layer(key),
                after: Vec::new(),
            });
        }
        leaves.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        if leaves.windows(2).any(|w| w[0].key == w[1].key) {
            return Err(MstError::Malformed("duplicate key"));
        }
        Ok(Mst {
            head: Vec::new(),
            leaves,
            loaded: Vec::new(),
        })
    }

    /// A tree rooted at `root`, loading only the root node now; the rest is
    /// loaded from `src` as operations need it.
    pub fn load(root: Cid, src: &impl BlockSource) -> Result<Mst, MstError> {
        let mut tree = Mst::new();
        let bytes = src.get_block(&root).ok_or(MstError::MissingBlock(root))?;
        let node = Node::decode(&bytes)?;
        tree.loaded.push(root);
        match node.layer()? {
            None if node.left.is_some() => Err(MstError::Malformed(
                "root is an empty node pointing down (not trimmed)",
            )),
            None => Ok(tree),
            Some(layer) => {
                tree.splice(0, 0, node, layer)?;
                Ok(tree)
            }
        }
    }

    /// Loads every remaining subtree from `src`, making the tree complete.
    pub fn load_all(&mut self, src: &impl BlockSource) -> Result<(), MstError> {
        while let Some((gap, index)) = self.first_stub() {
            self.expand(gap, index, src)?;
        }
        Ok(())
    }

    /// Whether no subtree is left unloaded.
    pub fn is_complete(&self) -> bool {
        self.first_stub().is_none()
    }

    /// The nodes decoded from block sources so far, root first.
    pub fn loaded_nodes(&self) -> &[Cid] {
        &self.loaded
    }

    /// The loaded leaves in key order (all of them, if the tree is complete).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &Cid)> {
        self.leaves.iter().map(|l| (&l.key[..], &l.value))
    }

    /// Number of loaded leaves.
    pub fn loaded_len(&self) -> usize {
        self.leaves.len()
    }

    /// The value at `key`, loading subtrees as needed.
    pub fn get(&mut self, key: &[u8], src: &impl BlockSource) -> Result<Option<Cid>, MstError> {
        loop {
            match self.search(key) {
                Ok(i) => return Ok(Some(self.leaves[i].value)),
                Err(gap) if self.gap(gap).is_empty() => return Ok(None),
                Err(gap) => self.expand(gap, 0, src)?,
            }
        }
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: Cid,
        src: &impl BlockSource,
    ) -> Result<Option<Cid>, MstError> {
        check_key(key)?;
        loop {
            match self.search(key) {
                Ok(i) => return Ok(Some(std::mem::replace(&mut self.leaves[i].value, value))),
                Err(gap) if self.gap(gap).is_empty() => {
                    self.leaves.insert(
                        gap,
                        Leaf {
                            key: key.to_vec(),
                            value,
                            layer: key_layer(key),
                            after: Vec::new(),
                        },
                    );
                    return Ok(None);
                }
                Err(gap) => self.expand(gap, 0, src)?,
            }
        }
    }

    /// Removes `key`; returns its value if it was present.
    pub fn remove(&mut self, key: &[u8], src: &impl BlockSource) -> Result<Option<Cid>, MstError> {
        loop {
            match self.search(key) {
                Ok(i) => {
                    let leaf = self.leaves.remove(i);
                    // The gap after the removed leaf joins the gap before it.
                    self.gap_mut(i).extend(leaf.after);
                    return Ok(Some(leaf.value));
                }
                Err(gap) if self.gap(gap).is_empty() => return Ok(None),
                Err(gap) => self.expand(gap, 0, src)?,
            }
        }
    }

    /// Loads the covering proof for `key`: the nodes on the path to it (or to
    /// where it would be) and on the paths to its nearest neighbours on either
    /// side. A diff carrying these for every written key can be inverted by any
    /// implementation, including ones that rebuild neighbouring subtrees.
    pub fn load_covering_proof(
        &mut self,
        key: &[u8],
        src: &impl BlockSource,
    ) -> Result<(), MstError> {
        loop {
            match self.search(key) {
                Ok(i) => {
                    // The predecessor is in the last stub of the gap before.
                    if let Some(last) = self.gap(i).len().checked_sub(1) {
                        self.expand(i, last, src)?;
                    } else if !self.gap(i + 1).is_empty() {
                        self.expand(i + 1, 0, src)?;
                    } else {
                        return Ok(());
                    }
                }
                Err(gap) if self.gap(gap).is_empty() => return Ok(()),
                Err(gap) => self.expand(gap, 0, src)?,
            }
        }
    }

    /// The root CID, loading whatever subtrees the rebuild must look into.
    pub fn root(&mut self, src: &impl BlockSource) -> Result<Cid, MstError> {
        self.rebuild(src, None)
    }

    /// The root CID and every node of the tree that is not a reused stub
    /// (encoded bytes with their CIDs), root last.
    pub fn build(&mut self, src: &impl BlockSource) -> Result<(Cid, Vec<NodeBlock>), MstError> {
        let mut nodes = Vec::new();
        let root = self.rebuild(src, Some(&mut nodes))?;
        Ok((root, nodes))
    }

    /// Rebuilds until no stub must be looked into. With `out`, collects the
    /// nodes of the successful attempt; without, copies nothing (inversion only
    /// needs the root).
    fn rebuild(
        &mut self,
        src: &impl BlockSource,
        mut out: Option<&mut Vec<NodeBlock>>,
    ) -> Result<Cid, MstError> {
        let mut buf = Vec::with_capacity(512);
        loop {
            if let Some(out) = out.as_deref_mut() {
                out.clear();
            }
            let mut sink = |cid: &Cid, bytes: &[u8]| {
                if let Some(out) = out.as_deref_mut() {
                    out.push((*cid, bytes.to_vec()));
                }
            };
            let items = self.flatten();
            let attempt = match items.as_slice() {
                // A lone stub is the root, unless it can be looked into: it may
                // be an empty node that trimming would remove.
                [Item::Stub(s, gap, index)] => {
                    if src.get_block(&s.cid).is_some() {
                        Err(Stop::Expand(*gap, *index))
                    } else {
                        Ok(s.cid)
                    }
                }
                [] => Ok(empty_root(&mut buf, &mut sink)),
                items => {
                    let top = items.iter().map(item_layer).max().unwrap_or(0);
                    build_group(items, top, &mut buf, &mut sink)
                        .map(|root| root.unwrap_or_else(|| empty_root(&mut buf, &mut sink)))
                }
            };
            drop(items);
            match attempt {
                Ok(root) => return Ok(root),
                Err(Stop::Expand(gap, index)) => self.expand(gap, index, src)?,
                Err(Stop::Malformed(why)) => return Err(MstError::Malformed(why)),
            }
        }
    }

    fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.leaves.binary_search_by(|l| l.key.as_slice().cmp(key))
    }

    /// Gap `g`: the stubs before leaf `g` and after leaf `g - 1`.
    fn gap(&self, g: usize) -> &[Stub] {
        if g == 0 {
            &self.head
        } else {
            &self.leaves[g - 1].after
        }
    }

    fn gap_mut(&mut self, g: usize) -> &mut Vec<Stub> {
        if g == 0 {
            &mut self.head
        } else {
            &mut self.leaves[g - 1].after
        }
    }

    fn first_stub(&self) -> Option<(usize, usize)> {
        if !self.head.is_empty() {
            return Some((0, 0));
        }
        self.leaves
            .iter()
            .position(|l| !l.after.is_empty())
            .map(|i| (i + 1, 0))
    }

    /// Loads the stub at `(gap, index)` and puts its contents in its place.
    fn expand(&mut self, gap: usize, index: usize, src: &impl BlockSource) -> Result<(), MstError> {
        let stub = self.gap(gap)[index];
        let bytes = src
            .get_block(&stub.cid)
            .ok_or(MstError::MissingBlock(stub.cid))?;
        let node = Node::decode(&bytes)?;
        self.loaded.push(stub.cid);
        match node.layer()? {
            Some(layer) if layer != stub.layer => Err(MstError::Malformed(
                "node keys are not at the layer below their parent",
            )),
            None if node.left.is_none() => Err(MstError::Malformed("empty non-root node")),
            None if stub.layer == 0 => Err(MstError::Malformed("empty node at layer 0")),
            _ => self.splice(gap, index, node, stub.layer),
        }
    }

    /// Replaces stub `index` of gap `gap` (or, for the root, inserts into the
    /// empty tree) with `node`'s contents, checking the node's keys fall between
    /// the neighbouring leaves and that nothing hangs below layer 0.
    fn splice(&mut self, gap: usize, index: usize, node: Node, layer: u8) -> Result<(), MstError> {
        if layer == 0 && (node.left.is_some() || node.entries.iter().any(|e| e.right.is_some())) {
            return Err(MstError::Malformed("layer-0 node has a subtree"));
        }
        if let Some(first) = node.entries.first() {
            if gap > 0 && self.leaves[gap - 1].key >= first.key {
                return Err(MstError::Malformed(
                    "subtree keys outside their parent's range",
                ));
            }
        }
        if let Some(last) = node.entries.last() {
            if self
                .leaves
                .get(gap)
                .is_some_and(|next| next.key <= last.key)
            {
                return Err(MstError::Malformed(
                    "subtree keys outside their parent's range",
                ));
            }
        }
        let child = |cid: Cid| Stub {
            cid,
            layer: layer.wrapping_sub(1),
        };
        let old = std::mem::take(self.gap_mut(gap));
        let (before, rest) = if old.is_empty() {
            (&old[..], &old[..])
        } else {
            (&old[..index], &old[index + 1..])
        };
        let mut head: Vec<Stub> = before.to_vec();
        head.extend(node.left.map(child));
        if node.entries.is_empty() {
            head.extend_from_slice(rest);
            *self.gap_mut(gap) = head;
            return Ok(());
        }
        *self.gap_mut(gap) = head;
        let count = node.entries.len();
        let new_leaves = node.entries.into_iter().enumerate().map(|(i, e)| {
            let mut after: Vec<Stub> = e.right.map(child).into_iter().collect();
            if i + 1 == count {
                after.extend_from_slice(rest);
            }
            Leaf {
                key: e.key,
                value: e.value,
                layer,
                after,
            }
        });
        self.leaves.splice(gap..gap, new_leaves);
        Ok(())
    }

    fn flatten(&self) -> Vec<Item<'_>> {
        let mut items = Vec::with_capacity(self.leaves.len() * 2 + self.head.len());
        items.extend(
            self.head
                .iter()
                .enumerate()
                .map(|(j, s)| Item::Stub(*s, 0, j)),
        );
        for (i, leaf) in self.leaves.iter().enumerate() {
            items.push(Item::Leaf(leaf));
            items.extend(
                leaf.after
                    .iter()
                    .enumerate()
                    .map(|(j, s)| Item::Stub(*s, i + 1, j)),
            );
        }
        items
    }
}

fn check_key(key: &[u8]) -> Result<(), MstError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        Err(MstError::BadKey)
    } else {
        Ok(())
    }
}

fn item_layer(item: &Item) -> u8 {
    match item {
        Item::Leaf(l) => l.layer,
        Item::Stub(s, ..) => s.layer,
    }
}

/// The empty tree's root `{e: [], l: null}`.
fn empty_root(buf: &mut Vec<u8>, sink: &mut dyn FnMut(&Cid, &[u8])) -> Cid {
    buf.clear();
    encode_parts(None, std::iter::empty(), buf);
    let cid = Cid::for_cbor(buf);
    sink(&cid, buf);
    cid
}

/// Builds the node at `layer` covering `items` (which all belong below the
/// parent entry bounds), returning its CID, or `None` for an empty group.
fn build_group(
    items: &[Item],
    layer: u8,
    buf: &mut Vec<u8>,
    sink: &mut dyn FnMut(&Cid, &[u8]),
) -> Result<Option<Cid>, Stop> {
    match items {
        [] => return Ok(None),
        [Item::Stub(s, ..)] if s.layer == layer => return Ok(Some(s.cid)),
        _ => {}
    }
    let mut left: Option<Cid> = None;
    // (key, value, right subtree) per entry; keys borrowed from the leaves.
    let mut entries: Vec<(&[u8], Cid, Option<Cid>)> = Vec::new();
    let mut start = 0;
    for (i, item) in items.iter().enumerate() {
        match *item {
            Item::Leaf(l) if l.layer == layer => {
                let sub = build_below(&items[start..i], layer, buf, sink)?;
                match entries.last_mut() {
                    Some(prev) => prev.2 = sub,
                    None => left = sub,
                }
                entries.push((&l.key, l.value, None));
                start = i + 1;
            }
            Item::Leaf(l) if l.layer > layer => {
                return Err(Stop::Malformed("key above the layer being built"))
            }
            Item::Stub(s, gap, index) if s.layer >= layer => return Err(Stop::Expand(gap, index)),
            _ => {}
        }
    }
    let sub = build_below(&items[start..], layer, buf, sink)?;
    match entries.last_mut() {
        Some(prev) => prev.2 = sub,
        None => left = sub,
    }
    buf.clear();
    encode_parts(
        left.as_ref(),
        entries.iter().map(|(k, v, t)| (*k, v, t.as_ref())),
        buf,
    );
    let cid = Cid::for_cbor(buf);
    sink(&cid, buf);
    Ok(Some(cid))
}

/// Builds the subtree one layer below `layer` for the items between two entries.
fn build_below(
    items: &[Item],
    layer: u8,
    buf: &mut Vec<u8>,
    sink: &mut dyn FnMut(&Cid, &[u8]),
) -> Result<Option<Cid>, Stop> {
    if items.is_empty() {
        return Ok(None);
    }
    if layer == 0 {
        return Err(Stop::Malformed("items below layer 0"));
    }
    build_group(items, layer - 1, buf, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::mst::NoBlocks;
    use std::collections::HashMap;

    fn v(n: u8) -> Cid {
        Cid::for_cbor(&[0x18, n.max(24)])
    }

    fn store(nodes: Vec<NodeBlock>) -> HashMap<Cid, Vec<u8>> {
        nodes.into_iter().collect()
    }

    #[test]
    fn empty_tree_root() {
        let mut t = Mst::new();
        let root = t.root(&NoBlocks).unwrap();
        assert_eq!(
            root.to_string(),
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
        );
    }

    #[test]
    fn load_round_trip_and_lazy_lookup() {
        let keys: Vec<String> = (0..300)
            .map(|i| format!("com.example.record/{i:05}"))
            .collect();
        let mut full = Mst::from_entries(keys.iter().map(|k| (k.as_bytes(), v(1)))).unwrap();
        let (root, nodes) = full.build(&NoBlocks).unwrap();
        let blocks = store(nodes);
        let mut lazy = Mst::load(root, &blocks).unwrap();
        assert!(!lazy.is_complete());
        assert_eq!(lazy.get(keys[137].as_bytes(), &blocks).unwrap(), Some(v(1)));
        assert_eq!(lazy.get(b"com.example.record/zzz", &blocks).unwrap(), None);
        assert_eq!(lazy.root(&blocks).unwrap(), root);
        lazy.load_all(&blocks).unwrap();
        assert!(lazy.is_complete());
        assert_eq!(lazy.loaded_len(), 300);
        assert_eq!(lazy.root(&NoBlocks).unwrap(), root);
    }

    #[test]
    fn insert_then_remove_restores_root() {
        let keys: Vec<String> = (0..100)
            .map(|i| format!("com.example.record/{i:05}"))
            .collect();
        let mut t = Mst::from_entries(keys.iter().map(|k| (k.as_bytes(), v(1)))).unwrap();
        let (root, nodes) = t.build(&NoBlocks).unwrap();
        let blocks = store(nodes);
        let mut lazy = Mst::load(root, &blocks).unwrap();
        assert_eq!(
            lazy.insert(b"com.example.record/00050x", v(2), &blocks)
                .unwrap(),
            None
        );
        let changed = lazy.root(&blocks).unwrap();
        assert_ne!(changed, root);
        assert_eq!(
            lazy.remove(b"com.example.record/00050x", &blocks).unwrap(),
            Some(v(2))
        );
        assert_eq!(lazy.root(&blocks).unwrap(), root);
    }

    #[test]
    fn missing_block_is_reported() {
        let keys: Vec<String> = (0..100)
            .map(|i| format!("com.example.record/{i:05}"))
            .collect();
        let mut t = Mst::from_entries(keys.iter().map(|k| (k.as_bytes(), v(1)))).unwrap();
        let (root, nodes) = t.build(&NoBlocks).unwrap();
        let only_root: HashMap<Cid, Vec<u8>> =
            nodes.into_iter().filter(|(c, _)| *c == root).collect();
        let mut lazy = Mst::load(root, &only_root).unwrap();
        // Unchanged tree: root reproduces from stubs alone.
        assert_eq!(lazy.root(&only_root).unwrap(), root);
        let err = lazy.get(keys[3].as_bytes(), &only_root);
        assert!(matches!(err, Err(MstError::MissingBlock(_))), "{err:?}");
    }

    #[test]
    fn bad_keys() {
        let mut t = Mst::new();
        assert_eq!(t.insert(b"", v(1), &NoBlocks), Err(MstError::BadKey));
        assert_eq!(
            t.insert(&[b'a'; MAX_KEY_LEN + 1], v(1), &NoBlocks),
            Err(MstError::BadKey)
        );
        assert!(Mst::from_entries([(b"a", v(1)), (b"a", v(2))]).is_err());
    }
}
