//! Repository hot paths: full `#commit` verification (decode, CAR, inversion,
//! signature), inversion alone, and the producer side (diff + sign).
//!
//! `cargo bench --bench repo`
//!
//! Input: a synthetic repo of 1,000 posts and a commit creating one more (the
//! firehose's most common event), as a relay receives it.

mod common;

use atrelay::crypto::Curve;
use atrelay::repo::commit::Commit;
use atrelay::repo::diff::{apply_writes, Write};
use atrelay::repo::invert::invert;
use atrelay::repo::verify::{verify_commit, VerifyOptions};
use atrelay::wire::car::{Car, CarLimits};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{Event, RepoOp};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn verification(c: &mut Criterion) {
    for curve in [Curve::K256, Curve::P256] {
        let repo = common::SyntheticRepo::new(curve, 1000);
        let built = repo.one_post();
        let s = built.frame_strings();
        let mut frame = Vec::new();
        Event::Commit(built.to_frame(&s, 1, common::TIME)).encode(&mut frame);
        let key = repo.key.public_key();
        let opts = VerifyOptions::strict_now();
        let name = format!("{curve:?}").to_lowercase();

        let mut g = c.benchmark_group("verify_commit");
        g.throughput(Throughput::Elements(1));
        // The ceiling, measured in the same group so host noise hits both:
        // the signature check alone on this commit's unsigned bytes.
        let commit_block = {
            let Event::Commit(ev) = Event::decode(&frame).unwrap() else {
                unreachable!()
            };
            let car = Car::parse(ev.blocks, CarLimits::FIREHOSE).unwrap();
            car.get(&ev.commit).unwrap().to_vec()
        };
        let commit = Commit::decode(&commit_block).unwrap();
        let unsigned = commit.unsigned_bytes();
        g.bench_function(format!("{name}/ceiling_signature_only"), |b| {
            b.iter(|| key.verify(black_box(&unsigned), commit.sig).unwrap())
        });
        // What the relay does per event: decode the frame, then verify it.
        g.bench_function(format!("{name}/decode+verify/{}B", frame.len()), |b| {
            b.iter(|| {
                let Event::Commit(ev) = Event::decode(black_box(&frame)).unwrap() else {
                    unreachable!()
                };
                verify_commit(&ev, &key, &opts).unwrap()
            })
        });
        g.finish();

        if curve == Curve::K256 {
            let Event::Commit(ev) = Event::decode(&frame).unwrap() else {
                unreachable!()
            };
            let mut g = c.benchmark_group("invert");
            g.throughput(Throughput::Elements(1));
            g.bench_function("one_create/car_parse+invert", |b| {
                b.iter(|| {
                    let car = Car::parse(black_box(ev.blocks), CarLimits::FIREHOSE).unwrap();
                    invert(built.data, &ev.ops, &car).unwrap()
                })
            });
            let car = Car::parse(ev.blocks, CarLimits::FIREHOSE).unwrap();
            g.bench_function("one_create/invert_only", |b| {
                b.iter(|| invert(built.data, black_box(&ev.ops), &car).unwrap())
            });
            g.finish();
        }
    }

    // A 20-op commit (batch writes) for scale.
    let repo = common::SyntheticRepo::new(Curve::K256, 1000);
    let writes: Vec<Write> = (0..20)
        .map(|i| Write::Create {
            path: format!("app.bsky.feed.like/{}", repo.clock.next()),
            cid: Cid::for_cbor(&common::post_record(100, i)),
        })
        .collect();
    let diff = apply_writes(repo.head.data, &repo.store, &writes).unwrap();
    let blocks: std::collections::HashMap<Cid, Vec<u8>> =
        diff.proof_nodes.iter().cloned().collect();
    let ops: Vec<RepoOp> = diff.ops.iter().map(|o| o.as_repo_op()).collect();
    let mut g = c.benchmark_group("invert");
    g.throughput(Throughput::Elements(1));
    g.bench_function("twenty_creates/invert_only", |b| {
        b.iter(|| invert(diff.data, black_box(&ops), &blocks).unwrap())
    });
    g.finish();
}

fn production(c: &mut Criterion) {
    let repo = common::SyntheticRepo::new(Curve::K256, 1000);
    let mut g = c.benchmark_group("produce");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mst_diff/one_create_in_1000", |b| {
        b.iter_batched(
            || Write::Create {
                path: format!("app.bsky.feed.post/{}", repo.clock.next()),
                cid: Cid::for_cbor(b"\xa0"),
            },
            |w| apply_writes(repo.head.data, &repo.store, std::slice::from_ref(&w)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("signed_commit/one_post_in_1000", |b| {
        b.iter(|| repo.one_post())
    });
    g.finish();
}

criterion_group!(benches, verification, production);
criterion_main!(benches);
