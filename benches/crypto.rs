//! Signature and key benchmarks, per backend and per curve.
//!
//! Verification is the relay's throughput ceiling (one per `#commit`), so each
//! curve's verify is measured on every available library against prepared keys
//! (parsing excluded), next to the public `PublicKey::verify` that the relay calls.
//! Also: did:key parsing (which includes point decompression) and signing.
//!
//! The message is ~300 bytes, about the size of a commit's unsigned CBOR.
//!
//! Run: `cargo bench --bench crypto -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use atrelay::crypto::{backend, Curve, PrivateKey, PublicKey};
use criterion::{criterion_group, criterion_main, Criterion};

/// A deterministic 300-byte message.
fn message() -> Vec<u8> {
    (0..300u32).map(|i| (i * 31 + 7) as u8).collect()
}

/// A fixed key per curve, so runs are comparable.
fn key(curve: Curve) -> PrivateKey {
    let seed = match curve {
        Curve::K256 => [0x5a; 32],
        Curve::P256 => [0x3c; 32],
    };
    PrivateKey::from_bytes(curve, &seed).expect("fixed scalar is valid")
}

fn verify(c: &mut Criterion) {
    let msg = message();

    let k = key(Curve::K256);
    let sig = k.sign(&msg);
    let public = k.public_key();
    let compressed = public.compressed();
    let lib = backend::prepare_k256_libsecp256k1(&compressed).expect("key");
    let rc = backend::prepare_k256_rustcrypto(&compressed).expect("key");
    let mut g = c.benchmark_group("verify/k256");
    g.bench_function("libsecp256k1", |b| {
        b.iter(|| {
            backend::verify_k256_libsecp256k1(black_box(&lib), black_box(&msg), black_box(&sig))
        })
    });
    g.bench_function("rustcrypto", |b| {
        b.iter(|| backend::verify_k256_rustcrypto(black_box(&rc), black_box(&msg), black_box(&sig)))
    });
    g.bench_function("PublicKey::verify", |b| {
        b.iter(|| black_box(&public).verify(black_box(&msg), black_box(&sig)))
    });
    g.finish();

    let k = key(Curve::P256);
    let sig = k.sign(&msg);
    let public = k.public_key();
    let compressed = public.compressed();
    let ring_key = backend::prepare_p256_ring(&compressed).expect("key");
    let rc = backend::prepare_p256_rustcrypto(&compressed).expect("key");
    let mut g = c.benchmark_group("verify/p256");
    g.bench_function("ring", |b| {
        b.iter(|| backend::verify_p256_ring(black_box(&ring_key), black_box(&msg), black_box(&sig)))
    });
    g.bench_function("rustcrypto", |b| {
        b.iter(|| backend::verify_p256_rustcrypto(black_box(&rc), black_box(&msg), black_box(&sig)))
    });
    g.bench_function("PublicKey::verify", |b| {
        b.iter(|| black_box(&public).verify(black_box(&msg), black_box(&sig)))
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_did_key");
    for (name, curve) in [("k256", Curve::K256), ("p256", Curve::P256)] {
        let did = key(curve).public_key().to_did_key();
        g.bench_function(name, |b| {
            b.iter(|| PublicKey::from_did_key(black_box(&did)))
        });
    }
    g.finish();
}

fn sign(c: &mut Criterion) {
    let msg = message();
    let mut g = c.benchmark_group("sign");
    for (name, curve) in [("k256", Curve::K256), ("p256", Curve::P256)] {
        let k = key(curve);
        g.bench_function(format!("{name}/PrivateKey::sign"), |b| {
            b.iter(|| black_box(&k).sign(black_box(&msg)))
        });
    }
    let bytes = key(Curve::K256).to_bytes();
    let rc = k256::ecdsa::SigningKey::from_slice(&bytes).expect("key");
    let lib = secp256k1::SecretKey::from_slice(&bytes).expect("key");
    g.bench_function("k256/rustcrypto", |b| {
        b.iter(|| backend::sign_k256_rustcrypto(black_box(&rc), black_box(&msg)))
    });
    g.bench_function("k256/libsecp256k1", |b| {
        b.iter(|| backend::sign_k256_libsecp256k1(black_box(&lib), black_box(&msg)))
    });
    g.finish();
}

criterion_group!(benches, verify, parse, sign);
criterion_main!(benches);
