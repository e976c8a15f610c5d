//! The RocksDB event log: durable append throughput (events/s) for group
//! commits of 1, 16, 128 and 512 events of ~3 KB frames, with the WAL fsynced
//! per append and buffered; and catch-up read throughput (frames/s) for
//! `read_from` pages of 1,000 events, from SST files and from the memtable.
//!
//! `cargo bench --bench log -- --warm-up-time 1 --measurement-time 4`
//!
//! Frames are synthetic: ~40% pseudo-random bytes (CIDs, signatures, MST
//! keys do not compress) and ~60% repeated text, so LZ4 behaves roughly as on
//! real `#commit` frames. Each benchmark runs on a fresh database in a temp
//! dir on the same disk as the working tree.

use std::time::Duration;

use atrelay::log::{AppendBatch, Durability, EventLog, LogEvent, LogOptions};
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const FRAME_LEN: usize = 3000;
const READ_PAGE: usize = 1000;
const PREFILL: u64 = 50_000;

/// A ~3 KB frame: a pseudo-random head and tail around repeated text.
fn frame(seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(FRAME_LEN);
    let text = b"app.bsky.feed.post did:plc:ewvi7nxzyoun6zhxrhs64oiz hello firehose ";
    while out.len() < FRAME_LEN {
        if (out.len() / 300) % 5 < 2 {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(text);
        }
    }
    out.truncate(FRAME_LEN);
    out.into()
}

fn options(durability: Durability) -> LogOptions {
    LogOptions {
        durability,
        retention_max_age: None,
        retention_max_bytes: None,
        ..LogOptions::default()
    }
}

fn append(c: &mut Criterion) {
    let frames: Vec<Bytes> = (0..512).map(frame).collect();
    for (name, durability) in [
        ("fsync", Durability::Fsync),
        ("buffered", Durability::Buffered),
    ] {
        let mut group = c.benchmark_group(format!("log_append_{name}"));
        for batch_len in [1usize, 16, 128, 512] {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = EventLog::open(dir.path(), options(durability)).expect("open");
            let mut batch = AppendBatch {
                events: frames[..batch_len]
                    .iter()
                    .map(|f| LogEvent {
                        seq: 0,
                        received_micros: 1_700_000_000_000_000,
                        frame: f.clone(),
                    })
                    .collect(),
                ..AppendBatch::default()
            };
            group.throughput(Throughput::Elements(batch_len as u64));
            group.bench_function(BenchmarkId::from_parameter(batch_len), |b| {
                b.iter(|| {
                    let first = log.last_seq() + 1;
                    for (i, ev) in batch.events.iter_mut().enumerate() {
                        ev.seq = first + i as u64;
                    }
                    log.append(&batch).expect("append");
                })
            });
            drop(log);
            drop(dir);
        }
        group.finish();
    }
}

fn catch_up(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EventLog::open(dir.path(), options(Durability::Buffered)).expect("open");
    let frames: Vec<Bytes> = (0..512).map(frame).collect();
    let fill = |log: &EventLog, n: u64| {
        let mut left = n;
        while left > 0 {
            let k = left.min(512);
            let first = log.last_seq() + 1;
            let events = (0..k)
                .map(|i| LogEvent {
                    seq: first + i,
                    received_micros: 1_700_000_000_000_000,
                    frame: frames[(i % 512) as usize].clone(),
                })
                .collect();
            log.append(&AppendBatch {
                events,
                ..AppendBatch::default()
            })
            .expect("prefill");
            left -= k;
        }
    };
    fill(&log, PREFILL);
    log.flush().expect("flush");
    // A recent tail that is still in the memtable.
    fill(&log, 5_000);

    let mut group = c.benchmark_group("log_read_from");
    group.throughput(Throughput::Elements(READ_PAGE as u64));
    let mut start = 1u64;
    group.bench_function("sst_1000", |b| {
        b.iter(|| {
            let page = log.read_from(start, READ_PAGE, usize::MAX).expect("read");
            start = (start + 7919) % (PREFILL - READ_PAGE as u64) + 1;
            black_box(page)
        })
    });
    let tail = PREFILL + 1;
    group.bench_function("memtable_1000", |b| {
        b.iter(|| black_box(log.read_from(tail, READ_PAGE, usize::MAX).expect("read")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = append, catch_up
}
criterion_main!(benches);
