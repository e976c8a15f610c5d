//! Inputs shared by the benches: the real network `#commit` bodies from the
//! vectors, and synthetic repos built with our own commit builder.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use atrelay::crypto::{Curve, PrivateKey};
use atrelay::repo::builder::{BuiltCommit, RecordWrite, RepoHead};
use atrelay::wire::cbor::{Encoder, Value};
use atrelay::wire::cid::Cid;
use atrelay::wire::json::value_from_json;
use atrelay::wire::tid::TidClock;

pub const TIME: &str = "2026-11-24T12:00:00.000Z";

/// `../shared/vectors`, or `$ATRELAY_VECTORS`.
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("ATRELAY_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"))
}

/// The real `#commit` bodies as (name, full frame bytes), in CBOR. The
/// deprecated `prev` key is dropped and `blobs: null` becomes `[]`, as a
/// current producer would send them.
pub fn real_commit_frames() -> Vec<(String, Vec<u8>)> {
    let dir = vectors_dir().join("indigo-firehose-commits");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let obj = json.as_object_mut().unwrap();
        obj.remove("prev");
        obj.insert("blobs".into(), serde_json::json!([]));
        let body = value_from_json(&json).unwrap().to_cbor();
        let mut frame = Vec::new();
        let mut e = Encoder::new(&mut frame);
        e.map(2);
        e.text("t");
        e.text("#commit");
        e.text("op");
        e.u64(1);
        frame.extend_from_slice(&body);
        let name = p
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace("firehose_commit_", "");
        out.push((name, frame));
    }
    assert_eq!(out.len(), 4, "vectors missing at {}", dir.display());
    out
}

/// A post record of about `len` bytes of text.
pub fn post_record(len: usize, n: u64) -> Vec<u8> {
    let text: String = format!("post {n} ").chars().cycle().take(len).collect();
    Value::Map(vec![
        ("text".into(), Value::Text(text.into())),
        ("$type".into(), Value::Text("app.bsky.feed.post".into())),
        ("createdAt".into(), Value::Text(TIME.into())),
    ])
    .to_cbor()
}

/// A repo of `records` posts (built in batches of 200), its signing key and
/// block store, ready for one more commit.
pub struct SyntheticRepo {
    pub key: PrivateKey,
    pub head: RepoHead,
    pub store: HashMap<Cid, Vec<u8>>,
    pub clock: DeterministicClock,
    pub paths: Vec<String>,
}

/// TIDs from a fixed starting time, one millisecond apart, so every run builds
/// the same tree and picks the same keys (TIDs from the wall clock would give
/// each run a different tree shape, and figures that cannot be compared).
pub struct DeterministicClock {
    clock: TidClock,
    tick: std::sync::atomic::AtomicU64,
}

impl DeterministicClock {
    const START_MICROS: u64 = 1_764_000_000_000_000;

    pub fn new() -> DeterministicClock {
        DeterministicClock {
            clock: TidClock::with_clock_id(7),
            tick: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> atrelay::wire::tid::Tid {
        let n = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.clock.next_at(Self::START_MICROS + n * 1000)
    }
}

impl SyntheticRepo {
    pub fn new(curve: Curve, records: usize) -> SyntheticRepo {
        let key = PrivateKey::generate(curve);
        let clock = DeterministicClock::new();
        let mut store = HashMap::new();
        let mut head = RepoHead::empty("did:plc:abcdefghijklmnopqrstuvwx", &mut store);
        let mut paths = Vec::new();
        let mut n = 0u64;
        while (n as usize) < records {
            let batch = (records - n as usize).min(200);
            let writes: Vec<RecordWrite> = (0..batch)
                .map(|_| {
                    n += 1;
                    let path = format!("app.bsky.feed.post/{}", clock.next());
                    paths.push(path.clone());
                    RecordWrite::Create {
                        path,
                        record: post_record(200, n),
                    }
                })
                .collect();
            let built = head.commit(&store, writes, &key, clock.next()).unwrap();
            built.store_into(&mut store);
            head = built.head;
        }
        SyntheticRepo {
            key,
            head,
            store,
            clock,
            paths,
        }
    }

    /// One new commit creating one post (the firehose's most common event).
    pub fn one_post(&self) -> BuiltCommit {
        let path = format!("app.bsky.feed.post/{}", self.clock.next());
        self.head
            .commit(
                &self.store,
                vec![RecordWrite::Create {
                    path,
                    record: post_record(300, 1),
                }],
                &self.key,
                self.clock.next(),
            )
            .unwrap()
    }
}

// The end-to-end benches' building blocks (`ingest`, `pipeline`, `catchup`).
pub mod raw_write;
pub mod subscriber;
pub mod sys;
pub mod upstream;
pub mod workload;
