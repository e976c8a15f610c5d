//! Fan-out at live rates: what one delivery costs when events arrive one by
//! one at the network's pace, next to what it costs when a session writes
//! big batches (the ceiling, measured on the same sockets in the same run).
//!
//! `cargo bench --bench fanout_live`
//!
//! For each subscriber count N and event rate R: N loopback sockets are
//! served by real `serve_subscriber` sessions (live, no cursor) on a runtime
//! of their own (threads `fanout-srv`), while readers on another runtime
//! (`reader`) drain them and a publisher thread publishes ~1 KB frames into
//! the ring at R per second, one at a time, each carrying its publish time.
//! Before the live phase, the same sockets take a raw phase: the same bytes
//! written by a plain task in batches of 256 frames with the same vectored
//! writes (no ring, no session), which is the ceiling per delivery.
//!
//! Reported per delivery: CPU of the server threads (the sessions' work plus
//! the kernel's loopback work done in their syscalls), for the live phase and
//! the raw phase, and their ratio; the readers' CPU; publish → receive
//! latency p50 / p99 / max as seen by a tenth of the readers (which parse
//! every frame; the others count bytes). "Per delivery" divides by N × frames.
//!
//! Knobs (environment): `LIVE_SUBSCRIBERS` (default `100,1000`),
//! `LIVE_RATES` (default `200,1000,2000`), `LIVE_SECONDS` per phase (default
//! 8), `LIVE_FRAME_BYTES` (default 1000), `LIVE_COALESCE_MS` (the sessions'
//! coalescing bound, default the config default), `LIVE_WRITES_PER_SEC`
//! (the write budget the coalescing aims for, default the config default).
//! Without `--bench` (as under `cargo test --all-targets`), a small bounded
//! run proves the bench still works.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atrelay::fanout::{
    serve_subscriber, Coalescing, MemoryBackfill, Ring, SessionConfig, SessionEnd,
};
use bytes::Bytes;
use common::raw_write::{raw_writer, Phase};
use common::sys::{cpu_by_group, loadavg, percentile, thread_cpu};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn list(name: &str, default: &str) -> Vec<usize> {
    env_or(name, default)
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Thread groups CPU is split by.
const SERVER: usize = 0;
const READER: usize = 1;
const OTHER: usize = 2;

fn group_of(name: &str) -> usize {
    if name.starts_with("fanout-srv") {
        SERVER
    } else if name.starts_with("reader") {
        READER
    } else {
        OTHER
    }
}

/// Microseconds since `base`, as the publisher stamps frames.
fn micros_since(base: Instant) -> u64 {
    base.elapsed().as_micros() as u64
}

/// What one reader is told: how many raw bytes, then how many live frames,
/// and whether to parse frames and record latency.
struct ReaderPlan {
    raw_bytes: u64,
    live_frames: u64,
    checker: bool,
    base: Instant,
    raw: Arc<Phase>,
    live: Arc<Phase>,
    latencies: Arc<Mutex<Vec<u32>>>,
}

/// Drains the raw phase by byte count, then parses server frames (2-, 4- or
/// 10-byte headers, unmasked) of the live phase until all arrived.
async fn reader(mut sock: TcpStream, plan: ReaderPlan) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    let mut start = 0usize;
    let mut end = 0usize;
    while got < plan.raw_bytes {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let need = (plan.raw_bytes - got) as usize;
        got += n.min(need) as u64;
        if n > need {
            // The live phase's first bytes came in the same read.
            buf.copy_within(need..n, 0);
            end = n - need;
        }
    }
    plan.raw.finish_one();
    let mut frames = 0u64;
    let mut lat = Vec::new();
    while frames < plan.live_frames {
        // Parse every complete frame in the buffer.
        loop {
            let avail = &buf[start..end];
            if avail.len() < 2 {
                break;
            }
            let (hlen, len) = match avail[1] & 0x7f {
                126 if avail.len() >= 4 => (4, u16::from_be_bytes([avail[2], avail[3]]) as usize),
                127 if avail.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[2..10]);
                    (10, u64::from_be_bytes(b) as usize)
                }
                126 | 127 => break,
                n => (2, n as usize),
            };
            if avail.len() < hlen + len {
                break;
            }
            if avail[0] & 0x0f == 2 {
                frames += 1;
                if plan.checker && len >= 8 {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[hlen..hlen + 8]);
                    let sent = u64::from_be_bytes(b);
                    let now = micros_since(plan.base);
                    lat.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                }
            }
            start += hlen + len;
        }
        if frames >= plan.live_frames {
            break;
        }
        if start == end {
            start = 0;
            end = 0;
        } else if start > buf.len() / 2 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match sock.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
    }
    plan.latencies.lock().unwrap().extend(lat);
    plan.live.finish_one();
}

struct Figures {
    raw_us: f64,
    live_us: f64,
    reader_us: f64,
    p50: f64,
    p99: f64,
    max: f64,
    complete: bool,
    /// Events per wake of the waiting sessions.
    events_per_wake: f64,
}

/// One measured case: N subscribers at R events per second.
struct Case {
    n: usize,
    rate: usize,
    seconds: u64,
    frame_bytes: usize,
    cfg: SessionConfig,
    coalescing: Coalescing,
}

fn run_one(
    case: &Case,
    server: &tokio::runtime::Runtime,
    readers: &tokio::runtime::Runtime,
) -> Figures {
    let Case {
        n,
        rate,
        seconds,
        frame_bytes,
        ref cfg,
        coalescing,
    } = *case;
    let base = Instant::now();
    let raw_frames: Arc<Vec<Bytes>> = Arc::new(
        (0..2_000u64)
            .map(|i| {
                let mut v = vec![(i % 251) as u8; frame_bytes];
                v[..8].copy_from_slice(&i.to_be_bytes());
                Bytes::from(v)
            })
            .collect(),
    );
    let raw_bytes: u64 = raw_frames
        .iter()
        .map(|f| (f.len() + atrelay::fanout::ws::header_len(f.len())) as u64)
        .sum();
    let live_frames = (rate as u64 * seconds).max(1);
    let (raw_phase, live_phase) = (Phase::new(n), Phase::new(n));
    let latencies = Arc::new(Mutex::new(Vec::new()));

    // Connect N sockets: accepted on the server runtime, read on the readers'.
    let listener = server.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = server.spawn(async move {
        let mut socks = Vec::with_capacity(n);
        while socks.len() < n {
            let (s, _) = listener.accept().await.expect("accept");
            socks.push(s);
        }
        socks
    });
    let mut reader_tasks = Vec::with_capacity(n);
    for i in 0..n {
        let sock = readers.block_on(TcpStream::connect(addr)).expect("connect");
        let plan = ReaderPlan {
            raw_bytes,
            live_frames,
            checker: i % 10 == 0,
            base,
            raw: raw_phase.clone(),
            live: live_phase.clone(),
            latencies: latencies.clone(),
        };
        reader_tasks.push(readers.spawn(reader(sock, plan)));
    }
    let socks = server.block_on(accept).unwrap();

    // Raw phase: the ceiling.
    let before = thread_cpu();
    let writers: Vec<_> = socks
        .into_iter()
        .map(|s| server.spawn(raw_writer(s, raw_frames.clone(), 256)))
        .collect();
    assert!(
        server.block_on(raw_phase.wait(Duration::from_secs(120))),
        "raw phase did not complete"
    );
    let after = thread_cpu();
    let raw_cpu = cpu_by_group::<3>(&before, &after, group_of);
    let socks: Vec<TcpStream> = writers
        .into_iter()
        .map(|w| server.block_on(w).unwrap())
        .collect();

    // Live phase: sessions from the ring, a publisher at `rate`.
    let ring = Ring::with_coalescing(1 << 16, 0, coalescing);
    let log = Arc::new(MemoryBackfill::new());
    let sessions: Vec<_> = socks
        .into_iter()
        .map(|s| {
            server.spawn(serve_subscriber(
                s,
                ring.clone(),
                log.clone(),
                None,
                cfg.clone(),
                None,
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // every session waits on the ring
    let before = thread_cpu();
    let publisher = {
        let (ring, log) = (ring.clone(), log.clone());
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let start = Instant::now();
                let interval = Duration::from_secs_f64(1.0 / rate as f64);
                for seq in 1..=live_frames {
                    let due = start + interval * (seq - 1) as u32;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let mut v = vec![(seq % 251) as u8; frame_bytes];
                    v[..8].copy_from_slice(&micros_since(base).to_be_bytes());
                    v[8..16].copy_from_slice(&seq.to_be_bytes());
                    let frame = Bytes::from(v);
                    log.push(seq, frame.clone());
                    ring.publish(seq, frame);
                }
            })
            .unwrap()
    };
    let complete = server.block_on(live_phase.wait(Duration::from_secs(seconds * 4 + 30)));
    publisher.join().unwrap();
    let after = thread_cpu();
    let (at_publish, deferred) = ring.wakes();
    let live_cpu = cpu_by_group::<3>(&before, &after, group_of);

    // Readers hang up; sessions end.
    for r in reader_tasks {
        r.abort();
    }
    for s in sessions {
        if let Ok(end) =
            server.block_on(async { tokio::time::timeout(Duration::from_secs(10), s).await })
        {
            let end = end.unwrap();
            assert!(
                matches!(end, SessionEnd::ClientClosed | SessionEnd::Io(_)),
                "{end:?}"
            );
        }
    }
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort_unstable();
    let raw_deliveries = (n * raw_frames.len()) as f64;
    let live_deliveries = n as f64 * live_frames as f64;
    Figures {
        raw_us: 1e6 * raw_cpu[SERVER] / raw_deliveries,
        live_us: 1e6 * live_cpu[SERVER] / live_deliveries,
        reader_us: 1e6 * live_cpu[READER] / live_deliveries,
        p50: percentile(&lat, 50.0) / 1000.0,
        p99: percentile(&lat, 99.0) / 1000.0,
        max: lat.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        complete,
        events_per_wake: live_frames as f64 / (at_publish + deferred).max(1) as f64,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (subs, rates, secs) = if full {
        ("100,1000", "200,1000,2000", "8")
    } else {
        ("20", "500", "1")
    };
    let subscribers = list("LIVE_SUBSCRIBERS", subs);
    let rates = list("LIVE_RATES", rates);
    let seconds: u64 = env_or("LIVE_SECONDS", secs).parse().unwrap();
    let frame_bytes: usize = env_or("LIVE_FRAME_BYTES", "1000").parse().unwrap();
    let cfg = SessionConfig::default();
    let mut coalescing = Coalescing::default();
    if let Ok(ms) = std::env::var("LIVE_COALESCE_MS") {
        coalescing.max_delay = Duration::from_millis(ms.parse().unwrap());
    }
    if let Ok(w) = std::env::var("LIVE_WRITES_PER_SEC") {
        coalescing.writes_per_sec = w.parse().unwrap();
    }
    atrelay::net::fd_limit::raise_and_log();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fanout-srv")
        .enable_all()
        .build()
        .unwrap();
    let readers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("reader")
        .enable_all()
        .build()
        .unwrap();
    println!(
        "fanout_live: {frame_bytes}-byte frames, {seconds} s per rate, coalescing {coalescing:?}, load average {}",
        loadavg()
    );
    println!(
        "{:>6} {:>6} | {:>9} {:>9} {:>6} | {:>9} | {:>7} {:>7} {:>7} | {:>6}",
        "subs",
        "ev/s",
        "live µs",
        "raw µs",
        "ratio",
        "reader µs",
        "p50 ms",
        "p99 ms",
        "max ms",
        "ev/wake"
    );
    for &n in &subscribers {
        for &rate in &rates {
            let case = Case {
                n,
                rate,
                seconds,
                frame_bytes,
                cfg: cfg.clone(),
                coalescing,
            };
            let f = run_one(&case, &server, &readers);
            println!(
                "{:>6} {:>6} | {:>9.2} {:>9.2} {:>6.1} | {:>9.2} | {:>7.2} {:>7.2} {:>7.2} | {:>6.1}{}",
                n,
                rate,
                f.live_us,
                f.raw_us,
                f.live_us / f.raw_us,
                f.reader_us,
                f.p50,
                f.p99,
                f.max,
                f.events_per_wake,
                if f.complete { "" } else { "  INCOMPLETE" }
            );
        }
    }
    println!(
        "(µs = CPU per delivery of the server threads: sessions plus the kernel's loopback work \
         in their syscalls; raw = same sockets, batches of 256, no ring or session; load average \
         now {})",
        loadavg()
    );
}
