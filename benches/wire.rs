//! Wire-format hot path: frame decode (ours vs ciborium), CAR parse with hash
//! checks, commit-object decode. Inputs: the four real network `#commit`
//! bodies from the vectors, and a synthetic one-post commit.
//!
//! `cargo bench --bench wire`

mod common;

use atrelay::crypto::Curve;
use atrelay::repo::commit::Commit;
use atrelay::wire::car::{Car, CarLimits};
use atrelay::wire::frame::{Event, Header};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde::Deserialize;

/// A `#commit` body as serde + ciborium would decode it: owned strings and
/// bytes (ciborium reads through `io::Read`, so it cannot borrow), tag-42
/// links through `Required`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct CiboriumCommit {
    seq: i64,
    rebase: bool,
    #[serde(rename = "tooBig")]
    too_big: bool,
    repo: String,
    commit: Link,
    rev: String,
    since: Option<String>,
    blocks: Bytes,
    ops: Vec<CiboriumOp>,
    blobs: Vec<Link>,
    #[serde(rename = "prevData")]
    prev_data: Option<Link>,
    time: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CiboriumOp {
    action: String,
    path: String,
    cid: Option<Link>,
    prev: Option<Link>,
}

type Link = ciborium::tag::Required<Bytes, 42>;

/// A byte string (serde's default for `Vec<u8>` is a sequence of integers).
#[allow(dead_code)]
struct Bytes(Vec<u8>);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        // ciborium's `deserialize_bytes` only handles strings that fit its 4 KiB
        // scratch buffer; `deserialize_byte_buf` reads any length into a Vec.
        d.deserialize_byte_buf(V)
    }
}

/// Decodes header and body with ciborium, as a consumer built on it would.
fn ciborium_decode(frame: &[u8]) -> CiboriumCommit {
    let mut reader = frame;
    let _header: ciborium::Value = ciborium::de::from_reader(&mut reader).unwrap();
    ciborium::de::from_reader(&mut reader).unwrap()
}

fn frames(c: &mut Criterion) {
    let mut inputs = common::real_commit_frames();
    let repo = common::SyntheticRepo::new(Curve::K256, 1000);
    let built = repo.one_post();
    let s = built.frame_strings();
    let mut synthetic = Vec::new();
    Event::Commit(built.to_frame(&s, 1, common::TIME)).encode(&mut synthetic);
    inputs.push(("synthetic_post".into(), synthetic));

    let mut g = c.benchmark_group("frame_decode");
    for (name, frame) in &inputs {
        // Sanity: both decoders agree on the content.
        let ours = match Event::decode(frame).unwrap() {
            Event::Commit(c) => c,
            _ => unreachable!(),
        };
        let theirs = ciborium_decode(frame);
        assert_eq!(ours.blocks, &theirs.blocks.0[..]);
        assert_eq!(ours.ops.len(), theirs.ops.len());

        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("ours/{name}/{}B", frame.len()), |b| {
            b.iter(|| Event::decode(black_box(frame)).unwrap())
        });
        g.bench_function(format!("ciborium_typed/{name}/{}B", frame.len()), |b| {
            b.iter(|| ciborium_decode(black_box(frame)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("header_only");
    let (_, frame) = &inputs[0];
    g.bench_function("decode_header", |b| {
        b.iter(|| {
            let (h, _body): (Header, &[u8]) =
                atrelay::wire::frame::decode_header(black_box(frame)).unwrap();
            h
        })
    });
    g.finish();

    let mut g = c.benchmark_group("car_parse_hash_checked");
    for (name, frame) in &inputs {
        let Event::Commit(ev) = Event::decode(frame).unwrap() else {
            unreachable!()
        };
        let blocks = ev.blocks;
        let count = Car::parse(blocks, CarLimits::FIREHOSE).unwrap().len();
        g.throughput(Throughput::Bytes(blocks.len() as u64));
        g.bench_function(format!("{name}/{count}blocks/{}B", blocks.len()), |b| {
            b.iter(|| Car::parse(black_box(blocks), CarLimits::FIREHOSE).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("commit_object");
    let Event::Commit(ev) = Event::decode(&inputs[0].1).unwrap() else {
        unreachable!()
    };
    let car = Car::parse(ev.blocks, CarLimits::FIREHOSE).unwrap();
    let block = car.get(&ev.commit).unwrap();
    g.bench_function("decode", |b| {
        b.iter(|| Commit::decode(black_box(block)).unwrap())
    });
    let commit = Commit::decode(block).unwrap();
    g.bench_function("unsigned_bytes", |b| {
        b.iter(|| black_box(&commit).unsigned_bytes())
    });
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
