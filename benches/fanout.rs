//! Fan-out delivery rate: subscriber sessions streaming a pre-filled ring of
//! ~1 KB frames over loopback TCP to 100, 1,000 and 5,000 subscribers, against
//! the raw ceiling measured in the same run on the same sockets: the same
//! bytes written with the same batched vectored writes ([`FrameQueue`]), but
//! straight from a `Vec` of frames, with no ring and no session.
//!
//! Each round connects N sockets, warms them up with one unmeasured raw
//! pass, runs the raw phase, then hands the very
//! same server-side sockets to `serve_subscriber` (cursor 0: everything in
//! the ring). Readers are tasks on the same runtime that drain their socket
//! as fast as they can and count bytes. A phase ends when every reader has
//! received every byte. "Per core" divides by the CPU time the whole process
//! used in the phase (writers, readers and the kernel's loopback work done in
//! our syscalls), read from `/proc/self/stat`.
//!
//! `cargo bench --bench fanout`
//!
//! Knobs (environment): `FANOUT_SUBSCRIBERS` (default `100,1000,5000`),
//! `FANOUT_DELIVERIES` per phase (default 4,000,000), `FANOUT_FRAME_BYTES`
//! (default 1000), `FANOUT_ROUNDS` (default 2; the best round is reported).
//!
//! This is a plain `main` (`harness = false`) rather than a criterion loop:
//! one sample needs thousands of sockets and seconds of traffic, and what we
//! want is a ratio of two phases on the same sockets.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use atrelay::fanout::{serve_subscriber, MemoryBackfill, Ring, SessionConfig, SessionEnd};
use bytes::Bytes;
use common::raw_write::{raw_writer, Phase};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Longest a phase may take: a hung one fails the run rather than hanging.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Soft limit on open files, from `/proc/self/limits`.
fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPU seconds (user + system, all threads) used by this process so far.
/// `/proc/self/stat` counts in clock ticks, 100 per second on Linux.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // fields after the command name (which is in parentheses)
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 overall: 12 and 13 after ')'
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A reader: drains its socket, signalling each phase once `per_phase`
/// bytes arrived; hangs up after the last phase.
async fn reader(mut sock: TcpStream, per_phase: u64, phases: Vec<Arc<Phase>>) {
    let mut buf = vec![0u8; 64 * 1024];
    for phase in phases {
        let mut got = 0u64;
        while got < per_phase {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => panic!("reader: connection ended after {got} bytes"),
                Ok(n) => got += n as u64,
            }
        }
        assert_eq!(got, per_phase, "a phase delivered more bytes than expected");
        phase.finish_one();
    }
}

struct Round {
    raw: (Duration, f64),
    session: (Duration, f64),
}

async fn round(n: usize, frames: Arc<Vec<Bytes>>, ring: &Ring) -> Round {
    let cfg = SessionConfig::default();
    let per_phase: u64 = frames
        .iter()
        .map(|f| (f.len() + atrelay::fanout::ws::header_len(f.len())) as u64)
        .sum();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (warm_phase, raw_phase, session_phase) = (Phase::new(n), Phase::new(n), Phase::new(n));

    let accept = tokio::spawn(async move {
        let mut socks = Vec::with_capacity(n);
        while socks.len() < n {
            let (s, _) = listener.accept().await.expect("accept");
            socks.push(s);
        }
        socks
    });
    let mut readers = Vec::with_capacity(n);
    for _ in 0..n {
        let sock = TcpStream::connect(addr).await.expect("connect");
        let phases = vec![warm_phase.clone(), raw_phase.clone(), session_phase.clone()];
        readers.push(tokio::spawn(reader(sock, per_phase, phases)));
    }
    let server_socks = accept.await.unwrap();

    // Warm-up (unmeasured): fresh sockets grow their buffers and windows.
    let writers: Vec<_> = server_socks
        .into_iter()
        .map(|s| tokio::spawn(raw_writer(s, frames.clone(), cfg.batch_max_frames)))
        .collect();
    assert!(
        warm_phase.wait(PHASE_LIMIT).await,
        "warm_phase did not complete"
    );
    let mut socks = Vec::with_capacity(n);
    for w in writers {
        socks.push(w.await.unwrap());
    }

    // Phase 1: the raw ceiling.
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let writers: Vec<_> = socks
        .into_iter()
        .map(|s| tokio::spawn(raw_writer(s, frames.clone(), cfg.batch_max_frames)))
        .collect();
    assert!(
        raw_phase.wait(PHASE_LIMIT).await,
        "raw_phase did not complete"
    );
    let raw = (t0.elapsed(), cpu_seconds() - c0);
    let mut socks = Vec::with_capacity(n);
    for w in writers {
        socks.push(w.await.unwrap());
    }

    // Phase 2: the same sockets, served by sessions from the ring.
    let log = Arc::new(MemoryBackfill::new());
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let sessions: Vec<_> = socks
        .into_iter()
        .map(|s| {
            tokio::spawn(serve_subscriber(
                s,
                ring.clone(),
                log.clone(),
                Some(0),
                cfg.clone(),
                None,
            ))
        })
        .collect();
    assert!(
        session_phase.wait(PHASE_LIMIT).await,
        "session_phase did not complete"
    );
    let session = (t0.elapsed(), cpu_seconds() - c0);

    for r in readers {
        r.await.unwrap();
    }
    for s in sessions {
        let end = s.await.unwrap();
        assert!(
            matches!(end, SessionEnd::ClientClosed | SessionEnd::Io(_)),
            "{end:?}"
        );
    }
    Round { raw, session }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and
    // then a small bounded run proves the bench still works without taking
    // CI's time.
    let full = std::env::args().any(|a| a == "--bench");
    let (default_subs, default_deliveries, default_rounds) = if full {
        ("100,1000,5000", "4000000", "2")
    } else {
        ("20", "20000", "1")
    };
    let subscribers: Vec<usize> = env_or("FANOUT_SUBSCRIBERS", default_subs)
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let deliveries: usize = env_or("FANOUT_DELIVERIES", default_deliveries)
        .parse()
        .unwrap();
    let frame_bytes: usize = env_or("FANOUT_FRAME_BYTES", "1000").parse().unwrap();
    let rounds: usize = env_or("FANOUT_ROUNDS", default_rounds).parse().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fds = fd_limit();
    println!(
        "fanout bench: {cores} cores, {frame_bytes}-byte frames, ~{deliveries} deliveries per phase, \
         fd soft limit {fds:?}, best of {rounds} rounds"
    );
    println!(
        "{:>6} {:>7} | {:>11} {:>11} | {:>11} {:>11} | {:>6} {:>6}",
        "subs", "frames", "raw/s", "raw/cpu-s", "session/s", "sess/cpu-s", "wall%", "cpu%"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for &wanted in &subscribers {
        // two descriptors per subscriber (both ends) plus some slack
        let n = match fds {
            Some(limit) if 2 * wanted + 64 > limit => {
                let fit = limit.saturating_sub(64) / 2;
                println!(
                    "  {wanted} subscribers need {} descriptors, over the soft limit {limit}: measuring {fit}",
                    2 * wanted + 64
                );
                fit
            }
            _ => wanted,
        };
        if n == 0 {
            continue;
        }
        let count = (deliveries / n).clamp(64, 1 << 16);
        let frames: Arc<Vec<Bytes>> = Arc::new(
            (0..count)
                .map(|i| {
                    let mut v = vec![(i % 251) as u8; frame_bytes];
                    v[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                    Bytes::from(v)
                })
                .collect(),
        );
        let ring = Ring::new(count, 0);
        for (i, f) in frames.iter().enumerate() {
            ring.publish(i as u64 + 1, f.clone());
        }
        let total = (count * n) as f64;
        let mut best: Option<Round> = None;
        for _ in 0..rounds {
            let r = rt.block_on(round(n, frames.clone(), &ring));
            best = Some(match best {
                None => r,
                Some(b) => Round {
                    raw: if r.raw.0 < b.raw.0 { r.raw } else { b.raw },
                    session: if r.session.0 < b.session.0 {
                        r.session
                    } else {
                        b.session
                    },
                },
            });
        }
        let Some(best) = best else { continue };
        let rate = |d: Duration| total / d.as_secs_f64();
        let per_cpu = |cpu: f64| total / cpu;
        println!(
            "{:>6} {:>7} | {:>11.0} {:>11.0} | {:>11.0} {:>11.0} | {:>5.0}% {:>5.0}%",
            n,
            count,
            rate(best.raw.0),
            per_cpu(best.raw.1),
            rate(best.session.0),
            per_cpu(best.session.1),
            100.0 * best.raw.0.as_secs_f64() / best.session.0.as_secs_f64(),
            100.0 * best.raw.1 / best.session.1,
        );
    }
    println!(
        "(raw = same sockets, same bytes, same vectored writes, no ring/session; \
         /cpu-s = deliveries per CPU-second of the whole process, readers included)"
    );
}
