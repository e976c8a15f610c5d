//! The whole pipeline, end to end: synthetic PDS hosts → relay (crawl,
//! verify, sequence, durable log, ring) → N real websocket subscribers on
//! loopback, against two ceilings measured in the same run: decode + verify
//! of the same commits, and raw fan-out of the relay's own output frames to
//! the same number of subscribers.
//!
//! `cargo bench --bench pipeline`
//!
//! Workload: `benches/ingest.rs`'s (`common::workload`, the same accounts,
//! keys, repos and commits): `PIPELINE_ACCOUNTS` (default 200) accounts with
//! repos of `PIPELINE_RECORDS` (100) posts, one warm-up commit each, then
//! `PIPELINE_COMMITS` (60,000) timed one-post k256 `#commit` frames (~2.4 KB)
//! served by `PIPELINE_HOSTS` (4) in-process PDS websocket hosts (`pds-rt`).
//! The frames' `time` has microseconds, and each host overwrites it with the
//! wall clock as it hands the frame to its socket (`Upstream::start_stamped`;
//! `time` is not signed and the relay forwards it unchanged), so a subscriber
//! gets end-to-end latency from it: host write → crawl → verify → log → ring
//! → session → loopback → subscriber parse.
//!
//! Relay: in process, `Relay::start` on its own 2-worker runtime
//! (`relay-rt`), `verify.workers = 2`, ring 65,536, metrics off, durability
//! `PIPELINE_DURABILITY` (default fsync, the relay's default), budgets
//! unlimited. `PIPELINE_SUBSCRIBERS` (default 100) subscribers connect with
//! `cursor=0` before anything is released (so none can miss a frame), on a
//! 2-worker runtime of their own (`sub-rt`). They are lean clients
//! (`common::subscriber`): hand-written upgrade, frames parsed in place,
//! every frame's `seq` read and checked to follow the previous one. Of them,
//! `PIPELINE_PROBES` (default 4, spread over the set) also parse `time` for
//! latency.
//!
//! Each run: release the warm-up commits (DIDs resolved and cached); once
//! every subscriber has them, the clock starts and the timed commits are
//! released. "Accepted" stops when the log and the ring hold every event;
//! "delivered" when every subscriber has every frame. Two runs, each with a
//! fresh relay and data dir:
//!
//! - **saturated**: everything released at once; throughput. Its latency is
//!   mostly queueing (the hosts write as fast as the relay reads).
//! - **paced**: released at `PIPELINE_PACED_RATE` events/s (default: half the
//!   saturated run's accepted rate; `0` skips the run); latency at a load
//!   the relay sustains.
//!
//! Ceilings, same process, same run: decode + `verify_commit` (strict, with
//! inversion) on one thread per core, as `ingest` measures it, before and
//! after the relay runs (the better is reported); and raw fan-out as
//! `fanout` measures it: the relay's own timed output frames, read back from
//! its log, written to N upgraded loopback sockets with the same batched
//! vectored writes (`FrameQueue`, 256 frames a batch) and no ring or session,
//! read by the same subscriber clients. "Combined" is what 2 cores could do
//! if verification and fan-out shared them with no other cost:
//! `1 / (1/verify + N/fanout)` events/s.
//!
//! CPU: process CPU over the window (`/proc/self/stat`, bench hosts and
//! subscribers included) and per thread group (`/proc/self/task/*/schedstat`).
//!
//! Bounded: a run that is not complete within `PIPELINE_TIMEOUT_SECS`
//! (default 180) reports what it got and the bench exits non-zero. Without
//! `--bench` (as under `cargo test --all-targets`) it runs a tiny version —
//! 2 accounts × 50 commits, 4 subscribers (all probes), a 1,000/s paced run
//! — and asserts every subscriber got every event in order.

mod common;

/// The relay tests' PLC directory (benches cannot depend on test crates).
#[path = "../tests/relay/harness.rs"]
mod harness;

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atrelay::config::{BudgetConfig, RelayConfig};
use atrelay::fanout::FrameQueue;
use atrelay::log::Durability;
use atrelay::node::Relay;
use bytes::Bytes;
use common::subscriber::{read_all, Expect, Seen, WsConn};
use common::sys::{cores, cpu_by_group, loadavg, percentile, process_cpu, thread_cpu};
use common::upstream::{Upstream, STAMPED_TIME};
use common::workload::{generate, measure_ceilings, unsigned_commits, Shape, Workload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug)]
struct Params {
    shape: Shape,
    subscribers: usize,
    probes: usize,
    durability: String,
    /// `None`: half the saturated rate; `Some(0.0)`: no paced run.
    paced_rate: Option<f64>,
    timeout: Duration,
}

impl Params {
    fn from_env(full: bool) -> Params {
        let num = |name: &str, full_default: usize, test_default: usize| -> usize {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if full { full_default } else { test_default })
        };
        let accounts = num("PIPELINE_ACCOUNTS", 200, 2).max(1);
        let commits = num("PIPELINE_COMMITS", 60_000, 100);
        let subscribers = num("PIPELINE_SUBSCRIBERS", 100, 4).max(1);
        Params {
            shape: Shape {
                accounts,
                per_account: (commits / accounts).max(1),
                records: num("PIPELINE_RECORDS", 100, 10),
                hosts: num("PIPELINE_HOSTS", 4, 2).clamp(1, accounts),
                time: STAMPED_TIME,
            },
            subscribers,
            probes: num("PIPELINE_PROBES", 4, subscribers).clamp(1, subscribers),
            durability: std::env::var("PIPELINE_DURABILITY").unwrap_or_else(|_| "fsync".into()),
            paced_rate: std::env::var("PIPELINE_PACED_RATE")
                .ok()
                .and_then(|v| v.parse().ok())
                .or((!full).then_some(1000.0)),
            timeout: Duration::from_secs(num("PIPELINE_TIMEOUT_SECS", 180, 60) as u64),
        }
    }

    /// Whether subscriber `i` is a latency probe (spread over the set).
    fn is_probe(&self, i: usize) -> bool {
        (i * self.probes) % self.subscribers < self.probes
    }
}

// ---------------------------------------------------------------------------
// CPU groups

const GROUPS: [&str; 8] = [
    "verifier threads",
    "sequencer",
    "relay runtime (crawlers, sessions, HTTP, log reads)",
    "rocksdb background",
    "bench PDS hosts (pds-rt)",
    "bench subscribers (sub-rt)",
    "bench raw fan-out writers (fan-rt)",
    "other (main/poller, PLC idle)",
];

fn group_of(thread: &str) -> usize {
    if thread.starts_with("atrelay-verify") {
        0
    } else if thread.starts_with("atrelay-seq") {
        1
    } else if thread.starts_with("relay-rt") {
        2
    } else if thread.starts_with("rocksdb") {
        3
    } else if thread.starts_with("pds-rt") {
        4
    } else if thread.starts_with("sub-rt") {
        5
    } else if thread.starts_with("fan-rt") {
        6
    } else {
        7
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Relay runs

struct Run {
    label: String,
    timed: u64,
    subscribers: usize,
    accepted: u64,
    /// Release of the timed events → log and ring hold all of them.
    accept_wall: f64,
    /// Between 10% and 90% of the timed events.
    steady: f64,
    /// Release → every subscriber has every frame.
    deliver_wall: f64,
    cpu: f64,
    groups: [f64; 8],
    latencies: Vec<u32>,
    timed_out: bool,
    errors: Vec<String>,
    load: (String, String),
}

impl Run {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.accept_wall
    }

    fn deliveries(&self) -> f64 {
        (self.timed * self.subscribers as u64) as f64 / self.deliver_wall
    }

    /// The relay's own threads, without the bench's hosts and subscribers.
    fn relay_cpu(&self) -> f64 {
        self.groups[..4].iter().sum()
    }
}

/// One relay run; also returns the relay's timed output frames (for the
/// fan-out ceiling) when `keep_frames`.
fn run_relay(p: &Params, w: &Workload, rate: Option<f64>, keep_frames: bool) -> (Run, Vec<Bytes>) {
    let pds_rt = runtime("pds-rt");
    let relay_rt = runtime("relay-rt");
    let sub_rt = runtime("sub-rt");
    let upstreams: Vec<Upstream> = pds_rt.block_on(async {
        let mut ups = Vec::new();
        for s in &w.streams {
            ups.push(Upstream::start_stamped(s.clone()).await);
        }
        ups
    });
    let dir = tempfile::tempdir().unwrap();
    let warm_total = w.warm.iter().sum::<usize>() as u64;
    let timed_total = w.timed.len() as u64;
    let target = warm_total + timed_total;
    let load_before = loadavg();
    let n = p.subscribers;
    let label = match rate {
        None => "saturated".to_owned(),
        Some(r) => format!("paced {r:.0}/s"),
    };

    let (run, frames) = relay_rt.block_on(async {
        let plc = harness::TestPlc::start().await;
        for i in 0..p.shape.accounts {
            let endpoint = format!("http://{}", upstreams[i % p.shape.hosts].addr);
            plc.register_key(&w.dids[i], &w.keys[i], &endpoint);
        }
        let mut cfg = RelayConfig::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.metrics_listen = String::new();
        cfg.server.data_dir = dir.path().to_owned();
        cfg.identity.plc_url = plc.url.clone();
        cfg.crawl.allow_private_hosts = true;
        cfg.crawl.hosts = upstreams.iter().map(|u| u.addr.to_string()).collect();
        cfg.verify.workers = 2;
        cfg.log.durability = Durability::parse(&p.durability)
            .expect("PIPELINE_DURABILITY must be fsync or buffered");
        cfg.fanout.ring_capacity = 65_536;
        cfg.budget = BudgetConfig::unlimited();
        let relay = Relay::start(&cfg).await.expect("relay starts");
        let deadline = Instant::now() + p.timeout;

        // Subscribers first, from cursor 0, so none can miss a frame.
        let progress: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::default()).collect();
        let mut readers = Vec::with_capacity(n);
        for (i, prog) in progress.iter().enumerate() {
            let conn = sub_rt
                .spawn(WsConn::connect(relay.addr, Some(0)))
                .await
                .unwrap()
                .expect("subscriber connects");
            let expect = Expect {
                first: 1,
                last: target,
                latency_after: p.is_probe(i).then_some(warm_total),
            };
            readers.push(sub_rt.spawn(read_all(conn, expect, prog.clone())));
        }
        let delivered = || {
            progress
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u64>()
        };

        // Warm-up: one commit per account resolves and caches every DID.
        for (u, &k) in upstreams.iter().zip(&w.warm) {
            u.release(k);
        }
        while (relay.log.last_seq() < warm_total || delivered() < warm_total * n as u64)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }

        let threads0 = thread_cpu();
        let cpu0 = process_cpu();
        let t0 = Instant::now();
        let timed_on: Vec<usize> = w
            .streams
            .iter()
            .zip(&w.warm)
            .map(|(s, &k)| s.len() - k)
            .collect();
        let release = |fraction: f64| {
            for ((u, &k), &t) in upstreams.iter().zip(&w.warm).zip(&timed_on) {
                u.release(k + ((t as f64 * fraction).ceil() as usize).min(t));
            }
        };
        if rate.is_none() {
            release(1.0);
        }
        let (p10, p90) = (
            warm_total + timed_total / 10,
            warm_total + timed_total * 9 / 10,
        );
        let (mut t10, mut t90, mut accepted_at, mut delivered_at) = (None, None, None, None);
        let mut timed_out = false;
        loop {
            let now = Instant::now();
            if let Some(r) = rate {
                release(now.duration_since(t0).as_secs_f64() * r / timed_total as f64);
            }
            let seq = relay.log.last_seq();
            if seq >= p10 && t10.is_none() {
                t10 = Some((now, seq));
            }
            if seq >= p90 && t90.is_none() {
                t90 = Some((now, seq));
            }
            if accepted_at.is_none() && seq >= target && relay.ring.head() >= target {
                accepted_at = Some(now);
            }
            if delivered_at.is_none() && delivered() >= target * n as u64 {
                delivered_at = Some(now);
            }
            if accepted_at.is_some() && delivered_at.is_some() {
                break;
            }
            if now >= deadline {
                timed_out = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let end = Instant::now();
        let cpu = process_cpu() - cpu0;
        let groups = cpu_by_group::<8>(&threads0, &thread_cpu(), group_of);
        let accepted = relay.log.last_seq().saturating_sub(warm_total);
        let steady = match (t10, t90) {
            (Some((a, sa)), Some((b, sb))) if b > a => {
                (sb - sa) as f64 / b.duration_since(a).as_secs_f64()
            }
            _ => f64::NAN,
        };

        let mut errors = Vec::new();
        let mut latencies = Vec::new();
        for r in readers {
            if timed_out {
                r.abort();
                continue;
            }
            match r.await {
                Ok(Ok(Seen {
                    latencies_us: l, ..
                })) => latencies.extend(l),
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("subscriber task: {e}")),
            }
        }
        latencies.sort_unstable();
        let frames = if keep_frames && !timed_out {
            let log = relay.log.clone();
            tokio::task::spawn_blocking(move || {
                log.read_from(warm_total + 1, timed_total as usize, usize::MAX)
                    .expect("read back the output")
                    .into_iter()
                    .map(|(_, f)| f)
                    .collect()
            })
            .await
            .unwrap()
        } else {
            Vec::new()
        };
        relay.stop().await;
        let since = |t: Option<Instant>| t.unwrap_or(end).duration_since(t0).as_secs_f64();
        let run = Run {
            label,
            timed: timed_total,
            subscribers: n,
            accepted,
            accept_wall: since(accepted_at),
            steady,
            deliver_wall: since(delivered_at),
            cpu,
            groups,
            latencies,
            timed_out,
            errors,
            load: (load_before.clone(), loadavg()),
        };
        (run, frames)
    });
    sub_rt.shutdown_background();
    drop(relay_rt);
    pds_rt.shutdown_background();
    (run, frames)
}

// ---------------------------------------------------------------------------
// Raw fan-out ceiling

struct FanoutCeiling {
    deliveries: u64,
    wall: f64,
    cpu: f64,
    groups: [f64; 8],
}

/// Writes `frames` (seqs `first..`) to `n` upgraded loopback sockets with
/// `FrameQueue`'s batched vectored writes, as `benches/fanout.rs` does for
/// its raw phase, read by the same subscriber clients as the relay runs.
fn fanout_ceiling(frames: Arc<Vec<Bytes>>, first: u64, n: usize) -> FanoutCeiling {
    let fan_rt = runtime("fan-rt");
    let sub_rt = runtime("sub-rt");
    let listener = fan_rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let go = Arc::new(tokio::sync::Notify::new());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    let batch = atrelay::fanout::SessionConfig::default().batch_max_frames;
    {
        let (frames, go) = (frames.clone(), go.clone());
        fan_rt.spawn(async move {
            for _ in 0..n {
                let (mut sock, _) = listener.accept().await.expect("accept");
                let (frames, go, ready) = (frames.clone(), go.clone(), ready_tx.clone());
                tokio::spawn(async move {
                    let _ = sock.set_nodelay(true);
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.ends_with(b"\r\n\r\n") {
                        let k = sock.read(&mut buf).await.expect("request");
                        assert!(k > 0, "client left during the upgrade");
                        req.extend_from_slice(&buf[..k]);
                    }
                    sock.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                          Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
                    )
                    .await
                    .expect("101");
                    let notified = go.notified();
                    ready.send(()).await.unwrap();
                    notified.await;
                    let mut queue = FrameQueue::new();
                    for chunk in frames.chunks(batch) {
                        for f in chunk {
                            queue.push_binary(f.clone());
                        }
                        if poll_fn(|cx| queue.poll_flush(cx, &mut sock)).await.is_err() {
                            return;
                        }
                    }
                    // Keep the socket open until the reader is done.
                    let _ = sock.read(&mut buf).await;
                });
            }
        });
    }
    let progress = Arc::new(AtomicU64::new(0));
    let last = first + frames.len() as u64 - 1;
    let readers: Vec<_> = (0..n)
        .map(|_| {
            let progress = progress.clone();
            sub_rt.spawn(async move {
                let conn = WsConn::connect(addr, None).await.expect("connect");
                let expect = Expect {
                    first,
                    last,
                    latency_after: None,
                };
                read_all(conn, expect, progress).await
            })
        })
        .collect();
    fan_rt.block_on(async {
        for _ in 0..n {
            ready_rx.recv().await.unwrap();
        }
    });
    let threads0 = thread_cpu();
    let (t0, c0) = (Instant::now(), process_cpu());
    go.notify_waiters();
    for r in readers {
        sub_rt
            .block_on(r)
            .unwrap()
            .expect("raw fan-out delivers everything");
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu() - c0;
    let groups = cpu_by_group::<8>(&threads0, &thread_cpu(), group_of);
    sub_rt.shutdown_background();
    fan_rt.shutdown_background();
    FanoutCeiling {
        deliveries: frames.len() as u64 * n as u64,
        wall,
        cpu,
        groups,
    }
}

// ---------------------------------------------------------------------------

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let p = Params::from_env(full);
    let started = Instant::now();
    println!(
        "pipeline bench{}: {} cores, load {} | {} accounts × {} commits = {} timed k256 #commit events \
         (+{} warm-up), repos of {}+ records, {} upstream hosts, {} subscribers ({} latency probes), \
         durability {}",
        if full { "" } else { " (test mode: tiny)" },
        cores(),
        loadavg(),
        p.shape.accounts,
        p.shape.per_account,
        p.shape.timed(),
        p.shape.accounts,
        p.shape.records,
        p.shape.hosts,
        p.subscribers,
        p.probes,
        p.durability,
    );
    let w = generate(&p.shape);
    let bytes: usize = w.timed.iter().map(|(_, f)| f.len()).sum();
    println!(
        "generated in {:.1} s: timed frames {:.1} MB, {:.0} B average",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / w.timed.len() as f64
    );
    let signed = unsigned_commits(&w);
    let before = measure_ceilings(&w, &signed);

    let (saturated, output) = run_relay(&p, &w, None, true);
    let mut runs = vec![saturated];
    let paced_rate = p.paced_rate.unwrap_or(runs[0].rate() / 2.0);
    if paced_rate > 0.0 && !runs[0].timed_out {
        runs.push(run_relay(&p, &w, Some(paced_rate), false).0);
    }

    let warm_total = w.warm.iter().sum::<usize>() as u64;
    let fan = (!output.is_empty())
        .then(|| fanout_ceiling(Arc::new(output), warm_total + 1, p.subscribers));
    let after = measure_ceilings(&w, &signed);
    let verify = before.verify.max(after.verify);
    let n = p.subscribers as f64;
    let fan_rate = fan
        .as_ref()
        .map_or(f64::NAN, |f| f.deliveries as f64 / f.wall);
    let combined = 1.0 / (1.0 / verify + n / fan_rate);

    println!();
    println!(
        "{:<30} {:>9} {:>9} {:>11} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
        "phase",
        "events/s",
        "steady/s",
        "deliver/s",
        "p50 ms",
        "p99 ms",
        "cpu µs/ev",
        "/verify",
        "/fanout",
        "/both"
    );
    let threads = cores();
    println!(
        "{:<30} {:>9.0} {:>9} {:>11} {:>8} {:>8} {:>9.1} {:>8}",
        format!("ceiling: decode+verify ({threads} thr)"),
        verify,
        "",
        "",
        "",
        "",
        threads as f64 * 1e6 / verify,
        "1.00"
    );
    if let Some(f) = &fan {
        println!(
            "{:<30} {:>9.0} {:>9} {:>11.0} {:>8} {:>8} {:>9.1} {:>8} {:>8}",
            format!("ceiling: raw fan-out ×{}", p.subscribers),
            fan_rate / n,
            "",
            fan_rate,
            "",
            "",
            f.cpu * 1e6 * n / f.deliveries as f64,
            "",
            "1.00"
        );
    }
    println!(
        "{:<30} {:>9.0} {:>9} {:>11.0} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
        "ceiling: combined (shared)",
        combined,
        "",
        combined * n,
        "",
        "",
        "",
        "",
        "",
        "1.00"
    );
    for r in &runs {
        println!(
            "{:<30} {:>9.0} {:>9.0} {:>11.0} {:>8.2} {:>8.2} {:>9.1} {:>8.2} {:>8.2} {:>8.2}",
            format!(
                "relay {}{}",
                r.label,
                if r.timed_out { " (TIMED OUT)" } else { "" }
            ),
            r.rate(),
            r.steady,
            r.deliveries(),
            percentile(&r.latencies, 50.0) / 1e3,
            percentile(&r.latencies, 99.0) / 1e3,
            r.cpu * 1e6 / r.accepted.max(1) as f64,
            r.rate() / verify,
            r.deliveries() / fan_rate,
            r.rate() / combined,
        );
    }
    println!(
        "(events/s: accepted into the log and ring; deliver/s: timed events × subscribers over the \
         time until the last subscriber had everything; latency: host write → subscriber parse, \
         {} probe subscribers; cpu µs/ev: whole process; ceilings before/after the runs: verify \
         {:.0}/{:.0})",
        p.probes, before.verify, after.verify
    );

    for r in &runs {
        println!();
        println!(
            "relay {}: {} of {} accepted in {:.2} s, delivered to all {} subscribers in {:.2} s; \
             load {} → {}",
            r.label,
            r.accepted,
            r.timed,
            r.accept_wall,
            r.subscribers,
            r.deliver_wall,
            r.load.0,
            r.load.1
        );
        println!(
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
            percentile(&r.latencies, 50.0) / 1e3,
            percentile(&r.latencies, 90.0) / 1e3,
            percentile(&r.latencies, 99.0) / 1e3,
            percentile(&r.latencies, 99.9) / 1e3,
            r.latencies.last().map_or(f64::NAN, |&m| m as f64 / 1e3),
            r.latencies.len()
        );
        for (name, cpu) in GROUPS.iter().zip(r.groups) {
            if name.contains("fan-rt") {
                continue;
            }
            println!(
                "  {:<52} {:>6.2} cpu-s {:>5.2} cores {:>6.1} µs/event",
                name,
                cpu,
                cpu / r.deliver_wall,
                cpu * 1e6 / r.accepted.max(1) as f64
            );
        }
        println!(
            "  relay threads alone: {:.2} cpu-s → {:.1} µs/event, {:.2} µs/delivery; process {:.2} cpu-s",
            r.relay_cpu(),
            r.relay_cpu() * 1e6 / r.accepted.max(1) as f64,
            r.relay_cpu() * 1e6 / (r.accepted.max(1) * r.subscribers as u64) as f64,
            r.cpu
        );
        for e in r.errors.iter().take(5) {
            println!("  subscriber error: {e}");
        }
    }
    if let Some(f) = &fan {
        println!();
        println!(
            "raw fan-out ceiling: {} deliveries in {:.2} s, {:.2} cpu-s ({:.0} deliveries per cpu-s): \
             writers {:.2} cpu-s, subscribers {:.2} cpu-s",
            f.deliveries,
            f.wall,
            f.cpu,
            f.deliveries as f64 / f.cpu,
            f.groups[6],
            f.groups[5]
        );
    }
    println!();
    println!(
        "command: {}{}   (total {:.0} s)",
        [
            "PIPELINE_ACCOUNTS",
            "PIPELINE_COMMITS",
            "PIPELINE_RECORDS",
            "PIPELINE_HOSTS",
            "PIPELINE_SUBSCRIBERS",
            "PIPELINE_PROBES",
            "PIPELINE_DURABILITY",
            "PIPELINE_PACED_RATE",
            "PIPELINE_TIMEOUT_SECS",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
        .collect::<String>(),
        if full {
            "cargo bench --bench pipeline"
        } else {
            "cargo test --bench pipeline"
        },
        started.elapsed().as_secs_f64()
    );

    let failed: Vec<&Run> = runs
        .iter()
        .filter(|r| r.timed_out || r.accepted < r.timed || !r.errors.is_empty())
        .collect();
    if !full {
        assert!(
            failed.is_empty(),
            "every event must reach every subscriber: {:?}",
            failed
                .iter()
                .map(|r| (&r.label, r.accepted, r.timed, &r.errors))
                .collect::<Vec<_>>()
        );
        assert!(fan.is_some(), "the raw fan-out ceiling ran");
        assert!(
            runs.iter().all(|r| !r.latencies.is_empty()),
            "probes measured latency"
        );
    } else if !failed.is_empty() {
        eprintln!("a run was incomplete (timeout or subscriber error)");
        std::process::exit(1);
    }
}
