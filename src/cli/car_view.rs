//! A CAR rendered for people: its roots, and every block with its CID, size,
//! and what it is — the signed commit, an MST node (entries decoded, keys
//! decompressed), a record (with its path when the tree names it), or some
//! other block — in that order, following the tree from the commit.
//!
//! Used for standalone CAR files and for the `blocks` of `#commit` / `#sync`
//! events. Blocks that fail to decode are shown with their error in place and
//! listed as problems, so one bad block does not hide the others.

use std::collections::{HashMap, HashSet, VecDeque};

use atrelay::repo::commit::Commit;
use atrelay::repo::mst::Node;
use atrelay::wire::car::{Car, CarError, CarLimits};
use atrelay::wire::cbor::Value;
use atrelay::wire::cid::{Cid, Codec};
use atrelay::wire::json::{encode_base64, value_to_json};
use serde::Serialize;
use serde_json::{json, Value as Json};

/// The rendering of a whole CAR.
#[derive(Serialize)]
pub struct CarJson {
    /// Bytes in the CAR.
    pub size: usize,
    pub roots: Vec<Json>,
    #[serde(rename = "blockCount")]
    pub block_count: usize,
    pub blocks: Vec<BlockJson>,
}

/// One block of the listing.
#[derive(Serialize)]
pub struct BlockJson {
    pub cid: String,
    pub size: usize,
    /// `commit`, `mst-node`, `record`, `raw` (a blob) or `block` (unplaced).
    pub kind: &'static str,
    /// The record's path, when an MST entry in the CAR points at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeJson>,
    /// The decoded value (commit object, record…), data-model JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    /// Why the block did not decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An MST node with its keys decompressed.
#[derive(Serialize)]
pub struct NodeJson {
    /// The layer of the node's keys; `null` for an empty node.
    pub layer: Option<u8>,
    /// The subtree left of the first entry.
    pub left: Json,
    pub entries: Vec<EntryJson>,
}

/// One MST entry.
#[derive(Serialize)]
pub struct EntryJson {
    /// The full key: a repo path (`collection/rkey`).
    pub key: Json,
    /// The record's CID.
    pub value: Json,
    /// The subtree between this entry and the next.
    pub right: Json,
}

/// The rendering, and what was wrong with the blocks (empty when all decoded).
pub struct CarView {
    pub json: CarJson,
    pub problems: Vec<String>,
}

/// What a block is, as far as the tree from the commit tells.
enum Role {
    Commit,
    MstNode,
    /// A record, with the path the MST files it under (if the diff shows it).
    Record(Option<String>),
    /// Not reachable from the commit through the blocks present.
    Other,
}

/// Parses and renders a CAR. `expect_commit`: the first root must be a signed
/// repo commit present in the CAR (true for `#commit` / `#sync` diffs), so
/// anything else is a problem rather than just a different kind of CAR.
pub fn render(bytes: &[u8], limits: CarLimits, expect_commit: bool) -> Result<CarView, CarError> {
    let car = Car::parse(bytes, limits)?;
    let mut problems = Vec::new();
    let roles = classify(&car, expect_commit, &mut problems);

    let mut listed: HashSet<Cid> = HashSet::new();
    let mut blocks = Vec::with_capacity(car.len());
    for (cid, role) in &roles {
        if let Some(data) = car.get(cid) {
            listed.insert(*cid);
            blocks.push(render_block(cid, data, role, &mut problems));
        }
    }
    // The rest in CID order (the order `Car::blocks` keeps).
    for block in car.blocks() {
        if !listed.contains(&block.cid) {
            blocks.push(render_block(
                &block.cid,
                block.data,
                &Role::Other,
                &mut problems,
            ));
        }
    }
    Ok(CarView {
        json: CarJson {
            size: bytes.len(),
            roots: car.roots().iter().map(link).collect(),
            block_count: car.len(),
            blocks,
        },
        problems,
    })
}

/// Walks from the first root: the commit, then the MST breadth-first through
/// the nodes present, noting the records the entries point at. Returns blocks
/// in that order (records after all nodes).
fn classify(car: &Car, expect_commit: bool, problems: &mut Vec<String>) -> Vec<(Cid, Role)> {
    let mut roles = Vec::new();
    let Some(root) = car.root().copied() else {
        if expect_commit {
            problems.push("the CAR has no root (it should name the commit)".to_owned());
        }
        return roles;
    };
    let Some(block) = car.get(&root) else {
        if expect_commit {
            problems.push(format!(
                "the root {root} (the commit) is not among the blocks"
            ));
        }
        return roles;
    };
    let data = match Commit::decode(block) {
        Ok(commit) => commit.data,
        Err(e) => {
            if expect_commit {
                problems.push(format!("commit block {root}: {e}"));
            }
            return roles;
        }
    };
    roles.push((root, Role::Commit));

    let mut seen = HashSet::from([root]);
    let mut records: Vec<Cid> = Vec::new();
    let mut paths: HashMap<Cid, String> = HashMap::new();
    let mut queue = VecDeque::from([data]);
    while let Some(cid) = queue.pop_front() {
        if !seen.insert(cid) {
            continue;
        }
        // A diff carries only the nodes the change touched; absent ones are normal.
        let Some(block) = car.get(&cid) else { continue };
        roles.push((cid, Role::MstNode));
        // A node that fails to decode is reported when it is rendered.
        let Ok(node) = Node::decode(block) else {
            continue;
        };
        queue.extend(node.left);
        for entry in &node.entries {
            queue.extend(entry.right);
            records.push(entry.value);
            paths
                .entry(entry.value)
                .or_insert_with(|| String::from_utf8_lossy(&entry.key).into_owned());
        }
    }
    for cid in records {
        if seen.insert(cid) && car.get(&cid).is_some() {
            roles.push((cid, Role::Record(paths.remove(&cid))));
        }
    }
    roles
}

/// One block's entry in the listing.
fn render_block(cid: &Cid, data: &[u8], role: &Role, problems: &mut Vec<String>) -> BlockJson {
    let kind = match role {
        Role::Commit => "commit",
        Role::MstNode => "mst-node",
        Role::Record(_) => "record",
        Role::Other if cid.codec() == Some(Codec::Raw) => "raw",
        Role::Other => "block",
    };
    let mut out = BlockJson {
        cid: cid.to_string(),
        size: data.len(),
        kind,
        path: match role {
            Role::Record(path) => path.clone(),
            _ => None,
        },
        node: None,
        value: None,
        error: None,
    };
    match kind {
        // Raw blocks (blobs) are opaque bytes: there is nothing to decode.
        "raw" => {}
        "mst-node" => match Node::decode(data) {
            Ok(node) => out.node = Some(render_node(&node, cid, problems)),
            Err(e) => {
                problems.push(format!("MST node {cid}: {e}"));
                out.error = Some(e.to_string());
            }
        },
        _ => match Value::decode(data) {
            Ok(value) => out.value = Some(value_to_json(&value)),
            Err(e) => {
                problems.push(format!("{kind} {cid}: not valid DAG-CBOR: {e}"));
                out.error = Some(e.to_string());
            }
        },
    }
    out
}

/// An MST node's layer, left subtree and entries with full keys. A node whose
/// keys disagree on their layer is malformed: that is reported as a problem.
pub fn render_node(node: &Node, cid: &Cid, problems: &mut Vec<String>) -> NodeJson {
    let layer = node.layer().unwrap_or_else(|e| {
        problems.push(format!("MST node {cid}: {e}"));
        None
    });
    let entries = node
        .entries
        .iter()
        .map(|e| EntryJson {
            // Keys are repo paths, so UTF-8 in practice; show anything else as bytes.
            key: match std::str::from_utf8(&e.key) {
                Ok(s) => Json::String(s.to_owned()),
                Err(_) => json!({ "$bytes": encode_base64(&e.key) }),
            },
            value: link(&e.value),
            right: e.right.as_ref().map_or(Json::Null, link),
        })
        .collect();
    NodeJson {
        layer,
        left: node.left.as_ref().map_or(Json::Null, link),
        entries,
    }
}

/// A CID in the data model's JSON form, `{"$link": …}`.
pub fn link(cid: &Cid) -> Json {
    json!({ "$link": cid.to_string() })
}
