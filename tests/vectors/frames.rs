//! `indigo-firehose-commits/`: real `#commit` bodies (atproto JSON, from indigo's
//! test data) wrapped in a `#commit` header and run through the frame codec,
//! plus property tests that no input makes the frame decoder panic.
//!
//! The bodies are pre-v1.1 events: they carry the removed `prev: null` key, have
//! `blobs: null`, and their ops lack `prev`. Decoding must accept all of that;
//! re-encoding drops `prev` and writes `blobs` as `[]`, and is otherwise
//! byte-identical to the canonical CBOR of the JSON.

use std::path::PathBuf;
use std::sync::OnceLock;

use atrelay::wire::cbor::Value;
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{
    decode_header, peek_seq, Account, Action, Commit, ErrorFrame, Event, Identity, Info, RepoOp,
    Sync,
};
use atrelay::wire::json::value_from_json;
use proptest::prelude::*;
use serde_json::Value as Json;

use crate::common::{read_json, vectors_dir};

/// `{t:"#commit", op:1}`, the digest's canonical header bytes.
const COMMIT_HEADER: &[u8] = b"\xa2\x61t\x67#commit\x62op\x01";

/// One vector: its file name, JSON, the frame built from the JSON as is, and
/// the frame we expect re-encoding to produce.
struct Vector {
    name: String,
    json: Json,
    frame: Vec<u8>,
    expected: Vec<u8>,
}

fn vector_files() -> Vec<PathBuf> {
    let dir = vectors_dir().join("indigo-firehose-commits");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Header + canonical CBOR of a JSON body.
fn commit_frame(json: &Json) -> Vec<u8> {
    let body = value_from_json(json)
        .unwrap_or_else(|e| panic!("data-model JSON: {e}"))
        .to_cbor();
    let mut frame = COMMIT_HEADER.to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn vectors() -> &'static [Vector] {
    static VECTORS: OnceLock<Vec<Vector>> = OnceLock::new();
    VECTORS.get_or_init(|| {
        vector_files()
            .into_iter()
            .map(|path| {
                let json = read_json(path.clone());
                // What we write back: no legacy `prev`, `blobs: []`.
                let mut edited = json.clone();
                let obj = edited.as_object_mut().expect("body is an object");
                assert!(obj.remove("prev").is_some(), "vector has legacy prev");
                assert_eq!(obj["blobs"], Json::Null, "vector has blobs: null");
                obj.insert("blobs".into(), Json::Array(vec![]));
                Vector {
                    name: path.file_name().unwrap().to_string_lossy().into_owned(),
                    frame: commit_frame(&json),
                    expected: commit_frame(&edited),
                    json,
                }
            })
            .collect()
    })
}

fn link(json: &Json) -> Option<Cid> {
    match json {
        Json::Null => None,
        j => Some(
            j["$link"]
                .as_str()
                .expect("$link")
                .parse()
                .expect("CID string"),
        ),
    }
}

#[test]
fn indigo_firehose_commits() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 4, "expected the 4 indigo firehose commits");
    for v in vectors {
        let name = &v.name;
        let j = &v.json;
        let (header, body) = decode_header(&v.frame).unwrap();
        assert_eq!(header.t, Some("#commit"));
        assert_eq!(peek_seq(body).unwrap(), j["seq"].as_i64(), "{name}");

        let event = Event::decode(&v.frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.seq(), j["seq"].as_i64(), "{name}");
        assert_eq!(event.repo(), j["repo"].as_str(), "{name}");
        let Event::Commit(c) = &event else {
            panic!("{name}: not a #commit: {event:?}");
        };
        assert_eq!(Some(c.repo), j["repo"].as_str(), "{name}");
        assert_eq!(Some(c.rev), j["rev"].as_str(), "{name}");
        assert_eq!(c.since, j["since"].as_str(), "{name}");
        assert_eq!(Some(c.time), j["time"].as_str(), "{name}");
        assert_eq!(Some(c.commit), link(&j["commit"]), "{name}");
        assert_eq!(Some(c.rebase), j["rebase"].as_bool(), "{name}");
        assert_eq!(Some(c.too_big), j["tooBig"].as_bool(), "{name}");
        assert!(c.blobs.is_empty(), "{name}");
        assert_eq!(c.prev_data, None, "{name}");
        let Value::Bytes(blocks) = value_from_json(&j["blocks"]).unwrap() else {
            panic!("{name}: blocks is not $bytes");
        };
        assert_eq!(c.blocks, &blocks[..], "{name}");
        assert!(
            v.frame.as_ptr_range().contains(&c.blocks.as_ptr()),
            "{name}: blocks not borrowed"
        );

        let ops = j["ops"].as_array().expect("ops array");
        assert_eq!(c.ops.len(), ops.len(), "{name}");
        for (op, jop) in c.ops.iter().zip(ops) {
            assert_eq!(Some(op.path), jop["path"].as_str(), "{name}");
            assert_eq!(Some(op.action.as_str()), jop["action"].as_str(), "{name}");
            assert_eq!(op.cid, link(&jop["cid"]), "{name}: {}", op.path);
            assert_eq!(op.prev, None, "{name}: pre-v1.1 ops have no prev");
        }

        let mut out = Vec::new();
        event.encode(&mut out);
        assert_eq!(out, v.expected, "{name}: re-encoding");
        assert_eq!(Event::decode(&out).unwrap(), event, "{name}");
    }
}

/// A frame of every event type, from small synthetic events.
fn synthetic_frames() -> Vec<Vec<u8>> {
    let cid = Cid::for_cbor(b"\xa0");
    let did = "did:plc:sxtoas2sxjv6gh2bibdg3g4b";
    let time = "2025-02-06T01:43:22.273Z";
    let events = [
        Event::Commit(Commit {
            seq: 1,
            rebase: false,
            too_big: false,
            repo: did,
            commit: cid,
            rev: "3lhhxizu5wr2d",
            since: None,
            blocks: b"\x01\x02\x03",
            ops: vec![RepoOp {
                action: Action::Update,
                path: "app.bsky.feed.post/3lhhxizu5wr2d",
                cid: Some(cid),
                prev: Some(cid),
            }],
            blobs: vec![cid],
            prev_data: Some(cid),
            time,
        }),
        Event::Sync(Sync {
            seq: 2,
            did,
            blocks: b"\x3a",
            rev: "3lhhxizu5wr2d",
            time,
        }),
        Event::Identity(Identity {
            seq: 3,
            did,
            time,
            handle: Some("alice.test"),
        }),
        Event::Account(Account {
            seq: 4,
            did,
            time,
            active: false,
            status: Some("deactivated"),
        }),
        Event::Info(Info {
            name: "OutdatedCursor",
            message: Some("m"),
        }),
        Event::Error(ErrorFrame {
            error: "FutureCursor",
            message: None,
        }),
        Event::Unknown {
            op: 1,
            t: "#labels",
        },
    ];
    events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            e.encode(&mut out);
            out
        })
        .collect()
}

/// Valid frames to mutate: the vectors and one of every type.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut frames: Vec<Vec<u8>> = vectors().iter().map(|v| v.frame.clone()).collect();
        frames.extend(synthetic_frames());
        frames
    })
}

/// Decodes `bytes` every way a caller can; if the frame is accepted, its
/// re-encoding must decode to the same event.
fn exercise(bytes: &[u8]) {
    if let Ok((header, body)) = decode_header(bytes) {
        let _ = peek_seq(body);
        let _ = Event::decode_body(&header, body);
    }
    if let Ok(event) = Event::decode(bytes) {
        let mut out = Vec::new();
        event.encode(&mut out);
        assert_eq!(Event::decode(&out).as_ref(), Ok(&event));
    }
}

#[test]
fn corpus_frames_are_valid() {
    for frame in corpus() {
        Event::decode(frame).unwrap();
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bodies_never_panic(
        header in 0usize..7,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        // a valid header of each type, then random bytes as the body
        let frame = &synthetic_frames()[header];
        let (_, valid_body) = decode_header(frame).unwrap();
        let mut bytes = frame[..frame.len() - valid_body.len()].to_vec();
        bytes.extend_from_slice(&body);
        exercise(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec(
            (any::<bool>(), any::<prop::sample::Index>(), any::<u8>()),
            0..6,
        ),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let corpus = corpus();
        let mut bytes = corpus[pick.index(corpus.len())].clone();
        for (near_start, at, xor) in flips {
            // Half the flips land in the first 256 bytes (header, `ops`, `rev`,
            // `seq`), where the structure is; the rest anywhere (mostly `blocks`).
            let span = if near_start { bytes.len().min(256) } else { bytes.len() };
            bytes[at.index(span)] ^= xor;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        exercise(&bytes);
    }
}
