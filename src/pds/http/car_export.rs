//! CAR files out of a hosted repo (digest §3.4): the whole current tree
//! (`getRepo`), one record with its inclusion proof (`sync.getRecord`), and
//! chosen blocks (`getBlocks`).
//!
//! The block store keeps every block any commit wrote (old commits, replaced
//! MST nodes, deleted records), so an export is never "all stored blocks":
//! [`repo_car`] walks the tree from the head commit and sends exactly the
//! commit, the current MST nodes and the current records.
//!
//! A full export can be large, so it is streamed: a blocking task walks the
//! tree and hands the response ~64 KiB chunks through a small bounded
//! channel. Memory stays at a few chunks and the walk's stack whatever the
//! repo's size, and the walk pauses while the client is slow and stops when
//! it goes away. Blocks are immutable once written (no garbage collection),
//! so walking from a fixed head gives a consistent snapshot while new
//! commits land. An error in mid-walk (a missing block: corruption, or the
//! account deleted meanwhile) can no longer become an XRPC error; it is
//! logged and the body is cut short, which CAR readers detect.

use std::collections::HashSet;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::pds::store::{PdsStore, RepoHeadRecord, StoreError};
use crate::repo::mst::{Mst, MstError, Node};
use crate::wire::car::CarWriter;
use crate::wire::cid::Cid;

/// The CAR media type.
pub const CAR_MIME: &str = "application/vnd.ipld.car";

/// Bytes gathered before a chunk is handed to the response.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks in flight between the walk and the socket.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Why an export could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("block {0} is missing from the repo")]
    MissingBlock(Cid),
    #[error("MST: {0}")]
    Mst(#[from] MstError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The client went away; not worth a log line.
    #[error("the response was dropped")]
    Gone,
}

/// A response carrying CAR bytes.
pub fn car_response(body: impl Into<Body>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CAR_MIME))],
        body.into(),
    )
        .into_response()
}

/// Streams `did`'s repo at `head` as a CAR rooted at the head commit, in the
/// streaming order of digest §3.4: the commit, then the tree depth-first
/// with each node before its contents and each record right after its
/// entry's key (so a reader can check the stream as it arrives). A record
/// held under several keys is sent once per key (readers accept
/// duplicates; remembering every record sent would cost memory per record).
///
/// `guard` is held until the walk ends: the server's stop waits for every
/// such guard, so no export still holds the store when it returns.
pub fn repo_car(
    store: PdsStore,
    did: String,
    head: RepoHeadRecord,
    guard: crate::lifecycle::TaskGuard,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let mut out = ChunkedCar::new(tx.clone(), head.commit);
        match walk(&store, &did, &head, &mut out).and_then(|()| out.flush()) {
            Ok(()) | Err(ExportError::Gone) => {}
            Err(e) => {
                tracing::error!(%did, error = %e, "repo export failed; response cut short");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Body::from_stream(chunks)
}

/// What the walk visits next.
enum Visit {
    Node(Cid),
    Record(Cid),
}

fn walk(
    store: &PdsStore,
    did: &str,
    head: &RepoHeadRecord,
    out: &mut ChunkedCar,
) -> Result<(), ExportError> {
    let block = |cid: &Cid| {
        store
            .get_block(did, cid)?
            .ok_or(ExportError::MissingBlock(*cid))
    };
    out.block(&head.commit, &block(&head.commit)?)?;
    // The stack holds what is still to be sent, next on top: its size is
    // bounded by the tree's depth times a node's width.
    let mut stack = vec![Visit::Node(head.data)];
    while let Some(next) = stack.pop() {
        match next {
            Visit::Record(cid) => out.block(&cid, &block(&cid)?)?,
            Visit::Node(cid) => {
                let bytes = block(&cid)?;
                let node = Node::decode(&bytes)?;
                out.block(&cid, &bytes)?;
                let mut children = Vec::with_capacity(1 + 2 * node.entries.len());
                children.extend(node.left.map(Visit::Node));
                for e in &node.entries {
                    children.push(Visit::Record(e.value));
                    children.extend(e.right.map(Visit::Node));
                }
                stack.extend(children.into_iter().rev());
            }
        }
    }
    Ok(())
}

/// CAR sections gathered into chunks and sent down the response channel.
struct ChunkedCar {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChunkedCar {
    /// Starts with the header naming `root`.
    fn new(tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, root: Cid) -> ChunkedCar {
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
        buf.extend_from_slice(&CarWriter::new(&[root]).finish());
        ChunkedCar { tx, buf }
    }

    /// Appends one section: `varint(len) | CID | data`.
    fn block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), ExportError> {
        let c = cid.as_bytes();
        let mut len = (c.len() + data.len()) as u64;
        while len >= 0x80 {
            self.buf.push((len as u8) | 0x80);
            len >>= 7;
        }
        self.buf.push(len as u8);
        self.buf.extend_from_slice(c);
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is gathered; waits while the channel is full.
    fn flush(&mut self) -> Result<(), ExportError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| ExportError::Gone)
    }
}

/// The inclusion (or exclusion) proof of `collection/rkey` at `head`: the
/// commit, the MST nodes on the path from the root to where the key is or
/// would be, and the record if it exists. Whether it exists is also
/// returned. Checking the commit's signature and walking the path proves
/// the answer against the account's key alone.
pub fn record_proof_car(
    store: &PdsStore,
    did: &str,
    head: &RepoHeadRecord,
    collection: &str,
    rkey: &str,
) -> Result<(Vec<u8>, bool), ExportError> {
    let blocks = store.repo_blocks(did);
    let block = |cid: &Cid| {
        store
            .get_block(did, cid)?
            .ok_or(ExportError::MissingBlock(*cid))
    };
    let mut tree = Mst::load(head.data, &blocks)?;
    let key = format!("{collection}/{rkey}");
    let record = tree.get(key.as_bytes(), &blocks)?;
    let mut car = CarWriter::new(&[head.commit]);
    car.push(&head.commit, &block(&head.commit)?);
    for cid in tree.loaded_nodes() {
        car.push(cid, &block(cid)?);
    }
    if let Some(cid) = &record {
        car.push(cid, &block(cid)?);
    }
    Ok((car.finish(), record.is_some()))
}

/// A CAR of the named blocks of `did`'s repo (no roots: the blocks are not
/// one structure), each once, in the order asked.
/// [`ExportError::MissingBlock`] names the first one not stored.
pub fn blocks_car(store: &PdsStore, did: &str, cids: &[Cid]) -> Result<Vec<u8>, ExportError> {
    let mut car = CarWriter::new(&[]);
    let mut seen = HashSet::with_capacity(cids.len());
    for cid in cids {
        if seen.insert(*cid) {
            let bytes = store
                .get_block(did, cid)?
                .ok_or(ExportError::MissingBlock(*cid))?;
            car.push(cid, &bytes);
        }
    }
    Ok(car.finish())
}
