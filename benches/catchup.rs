//! Restart-to-serving and catch-up on a large log: how long a relay takes
//! from start on a filled data directory until it answers `/xrpc/_health` and
//! a `cursor=0` subscriber has its first frame, and how fast websocket
//! subscribers replaying from cursor 0 read the whole log, against the raw
//! RocksDB iteration ceiling (`EventLog::read_from`) measured in the same run.
//!
//! `cargo bench --bench catchup`
//! (`CATCHUP_EVENTS=10000000 cargo bench --bench catchup` for the 10M figure:
//! about 24 GB of log, see `CATCHUP_DIR`)
//!
//! **The fill measures nothing; it is set-up.** It generates
//! `CATCHUP_TEMPLATES` (default 4,000) real signed one-post k256 `#commit`
//! frames with `repo::builder` (40 accounts with repos of 150+ posts and
//! their own TIDs and texts, ~2.4 KB a frame; see `templates`), then appends `CATCHUP_EVENTS` (default 1,000,000)
//! events through the log's own append API (`EventLog::append`, 1,024 events a
//! batch, buffered durability, received now): event `seq` is template
//! `seq % templates` with its `seq` field re-spliced to `seq`, so every frame is valid and carries its log seq, but the
//! commits repeat: the relay's verification is never involved. What is
//! measured is reading. The log is closed without a flush, as a crash
//! leaves it, so the first start replays the WAL (`Relay::stop` flushes).
//!
//! Then, on the filled directory:
//!
//! 1. **Restart to serving, in process:** `Relay::start` (the call
//!    `atrelay serve` makes, default config, metrics off) on a 2-worker
//!    runtime; then `GET /xrpc/_health` over a fresh connection until it
//!    answers 200; then a `cursor=0` subscriber until its first frame.
//!    Reported split into the three steps.
//! 2. **Raw iteration ceiling:** `EventLog::read_from` over the whole log in
//!    pages of 256 events / 1 MiB (a session's catch-up read), one thread;
//!    and `CATCHUP_SUBSCRIBERS` threads at once, each over the first
//!    `CATCHUP_CEILING_EVENTS` events (default: all, at most 2M). Before and
//!    after the catch-up; the better is the ceiling.
//! 3. **Catch-up:** `CATCHUP_SUBSCRIBERS` (default 10) websocket subscribers
//!    (`common::subscriber`: every frame's seq read and checked) connect with
//!    `cursor=0` at once and read every event. Frames/s in total and per
//!    subscriber; CPU per frame.
//! 4. **Restart to serving, real process** (`CATCHUP_PROCESS=0` skips): the
//!    relay is stopped, then the `atrelay` binary of this build is started
//!    with `serve` on the same directory; the same three steps are timed from
//!    the spawn. The WAL was replayed by step 1, so this is a restart after a
//!    clean stop.
//!
//! Also printed: the SST and WAL files the start found, since opening every
//! SST file is the part of `EventLog::open` that grows with the log.
//!
//! Bounded: `CATCHUP_TIMEOUT_SECS` (default 1,800) caps the catch-up. The data
//! directory is a temporary directory under `CATCHUP_DIR` (default the system
//! temp dir), deleted at the end; the bench refuses to start if the disk has
//! less free space than the log needs. Without `--bench` (as under
//! `cargo test --all-targets`) it runs a tiny version (3,000 events, 40
//! templates, 3 subscribers) and asserts every subscriber got every event in
//! order and the process restart served.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atrelay::config::RelayConfig;
use atrelay::log::{AppendBatch, Durability, EventLog, LogEvent, LogOptions};
use atrelay::node::Relay;
use atrelay::repo::builder::{RecordWrite, RepoHead};
use atrelay::wire::cbor::{Encoder, Value};
use atrelay::wire::frame::Event;
use atrelay::wire::tid::TidClock;
use bytes::Bytes;
use common::subscriber::{frame_seq, read_all, Expect, WsConn};
use common::sys::{cores, cpu_by_group, loadavg, process_cpu, thread_cpu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A session's catch-up read: `SessionConfig`'s batch.
const PAGE_EVENTS: usize = 256;
const PAGE_BYTES: usize = 1 << 20;
const FILL_BATCH: u64 = 1024;

#[derive(Debug)]
struct Params {
    events: u64,
    subscribers: usize,
    templates: usize,
    ceiling_events: u64,
    parent: PathBuf,
    process: bool,
    timeout: Duration,
}

impl Params {
    fn from_env(full: bool) -> Params {
        let num = |name: &str, full_default: u64, test_default: u64| -> u64 {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if full { full_default } else { test_default })
        };
        let events = num("CATCHUP_EVENTS", 1_000_000, 3_000).max(1);
        Params {
            events,
            subscribers: num("CATCHUP_SUBSCRIBERS", 10, 3).max(1) as usize,
            templates: num("CATCHUP_TEMPLATES", 4_000, 40).max(1) as usize,
            ceiling_events: num("CATCHUP_CEILING_EVENTS", events.min(2_000_000), events)
                .clamp(1, events),
            parent: std::env::var_os("CATCHUP_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            process: num("CATCHUP_PROCESS", 1, 1) != 0,
            timeout: Duration::from_secs(num("CATCHUP_TIMEOUT_SECS", 1800, 60)),
        }
    }
}

// ---------------------------------------------------------------------------
// Fill

/// The template frames, split around their seq, and their average size.
///
/// Not `common::workload`'s accounts: those share one TID clock and identical
/// post texts, so their record and MST blocks are byte-identical across
/// accounts and LZ4 shrinks a log of them about tenfold, which would make
/// reading it unrealistically cheap. Here every account has its own TID
/// clock offset and clock id and its own pseudo-random post texts, so blocks
/// differ (as on the network) and only ordinary redundancy (keys, NSIDs,
/// words) is left to compress.
fn templates(p: &Params) -> (Vec<Template>, usize) {
    let accounts = p.templates.clamp(1, 40);
    let per_account = p.templates.div_ceil(accounts);
    // Repos of 150–250 posts: MST proofs of the depth that gives ~2.4 KB
    // frames, as `ingest`'s repos of 100–400 posts do.
    let records = if p.templates >= 1000 { 150 } else { 10 };
    let threads = cores().min(accounts);
    let mut frames: Vec<(usize, Vec<Template>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..accounts)
                        .step_by(threads)
                        .map(|i| (i, template_account(i, records, per_account)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    frames.sort_by_key(|(i, _)| *i);
    // Interleave accounts, as a firehose does.
    let mut out = Vec::with_capacity(accounts * per_account);
    for j in 0..per_account {
        for (_, f) in &frames {
            out.push(f[j].clone());
        }
    }
    out.truncate(p.templates);
    let avg = out.iter().map(|f| f.len()).sum::<usize>() / out.len();
    (out, avg)
}

/// Account `i`'s one-post commits on a repo of `records` posts, as frames
/// waiting for a seq.
fn template_account(i: usize, records: usize, commits: usize) -> Vec<Template> {
    let (did, key) = common::workload::identity_for(1_000_000 + i);
    let clock = TidClock::with_clock_id((i % 1024) as u16);
    let micros = std::cell::Cell::new(1_764_000_000_000_000 + i as u64 * 7_919_000_000);
    let next_tid = || {
        micros.set(micros.get() + 1_000 + (micros.get() % 7) * 997);
        clock.next_at(micros.get())
    };
    let mut rng = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut post = |len: usize| RecordWrite::Create {
        path: format!("app.bsky.feed.post/{}", next_tid()),
        record: random_post(&mut rng, len),
    };
    let mut store = HashMap::new();
    let mut head = RepoHead::empty(&did, &mut store);
    let writes = (0..records).map(|_| post(200)).collect();
    let built = head.commit(&store, writes, &key, next_tid()).unwrap();
    built.store_into(&mut store);
    head = built.head;
    (0..commits)
        .map(|_| {
            let built = head
                .commit(&store, vec![post(300)], &key, next_tid())
                .unwrap();
            built.store_into(&mut store);
            head = built.head.clone();
            let strings = built.frame_strings();
            Template::new(&Event::Commit(built.to_frame(&strings, 1, common::TIME)))
        })
        .collect()
}

/// A post record of about `len` bytes of text: words drawn at random from a
/// small vocabulary, so it compresses about as much as real text does.
fn random_post(rng: &mut u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 32] = [
        "the", "relay", "firehose", "post", "today", "about", "with", "and", "new", "feed",
        "bluesky", "network", "why", "is", "this", "so", "fast", "i", "think", "we", "should",
        "read", "more", "on", "a", "sunny", "morning", "coffee", "cat", "photo", "of", "you",
    ];
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        text.push_str(WORDS[(*rng % 32) as usize]);
        text.push(if *rng % 11 == 0 { '.' } else { ' ' });
    }
    Value::Map(vec![
        ("text".into(), Value::Text(text.into())),
        ("$type".into(), Value::Text("app.bsky.feed.post".into())),
        ("createdAt".into(), Value::Text(common::TIME.into())),
    ])
    .to_cbor()
}

/// A frame split around its `seq` value, to be re-spliced with any seq (as
/// the relay's sequencer does with its own `PendingFrame`).
#[derive(Clone)]
struct Template {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Template {
    fn new(event: &Event) -> Template {
        // A seq no frame carries otherwise, in its 9-byte encoding.
        const MARK: u64 = 0x7fa5_5a0f_f03c_c399;
        let mut ev = event.clone();
        assert!(ev.set_seq(MARK as i64), "an event with a seq");
        let mut bytes = Vec::new();
        ev.encode(&mut bytes);
        let mut needle = b"\x63seq\x1b".to_vec();
        needle.extend_from_slice(&MARK.to_be_bytes());
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the seq is in the frame");
        let tail = bytes.split_off(at + needle.len());
        bytes.truncate(at + 4); // keep the `seq` key
        Template { head: bytes, tail }
    }

    fn len(&self) -> usize {
        self.head.len() + self.tail.len() + 5
    }

    fn with_seq(&self, seq: u64) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + 9 + self.tail.len());
        out.extend_from_slice(&self.head);
        Encoder::new(&mut out).u64(seq);
        out.extend_from_slice(&self.tail);
        Bytes::from(out)
    }
}

/// Free bytes on the file system holding `dir` (`df`), if it can be read.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

fn log_options() -> LogOptions {
    // What the relay opens with by default (72 h window, no size bound), so
    // the segment index matches; buffered, since the fill is set-up.
    LogOptions {
        durability: Durability::Buffered,
        retention_max_age: Some(Duration::from_secs(72 * 3600)),
        retention_max_bytes: None,
        ..LogOptions::default()
    }
}

fn fill(dir: &Path, p: &Params, templates: &[Template]) -> f64 {
    let log = EventLog::open(dir, log_options()).expect("open the log");
    let started = Instant::now();
    let mut next = 1u64;
    let mut report = p.events / 10;
    while next <= p.events {
        let k = FILL_BATCH.min(p.events - next + 1);
        let received_micros = atrelay::clock::now_micros();
        let events = (next..next + k)
            .map(|seq| LogEvent {
                seq,
                received_micros,
                frame: templates[(seq % templates.len() as u64) as usize].with_seq(seq),
            })
            .collect();
        log.append(&AppendBatch {
            events,
            ..AppendBatch::default()
        })
        .expect("append");
        next += k;
        if p.events >= 1_000_000 && next > report {
            println!(
                "  filled {} events, {:.0} events/s",
                next - 1,
                (next - 1) as f64 / started.elapsed().as_secs_f64()
            );
            report += p.events / 10;
        }
    }
    assert_eq!(log.last_seq(), p.events);
    let secs = started.elapsed().as_secs_f64();
    drop(log); // no flush: as a crash leaves it
    secs
}

/// (files, bytes) of the data directory's SST and WAL files.
fn db_files(dir: &Path) -> ((usize, u64), (usize, u64)) {
    let (mut sst, mut wal) = ((0, 0), (0, 0));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let len = e.metadata().map_or(0, |m| m.len());
        if name.ends_with(".sst") {
            sst = (sst.0 + 1, sst.1 + len);
        } else if name.ends_with(".log") && name.chars().next().is_some_and(|c| c.is_ascii_digit())
        {
            wal = (wal.0 + 1, wal.1 + len);
        }
    }
    (sst, wal)
}

// ---------------------------------------------------------------------------
// Serving

/// `GET /xrpc/_health` on a new connection: the `seq` it reports, if 200.
async fn health(addr: SocketAddr) -> Option<u64> {
    let mut sock = TcpStream::connect(addr).await.ok()?;
    sock.write_all(b"GET /xrpc/_health HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.ok()?;
    let text = String::from_utf8_lossy(&resp);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let body = text.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("seq")?.as_u64()
}

/// The steps of a start, each from the same origin.
#[derive(Clone, Copy, Debug)]
struct Restart {
    /// `Relay::start` returned (in process) / not measured (process).
    started: Option<Duration>,
    health: Duration,
    first_frame: Duration,
}

/// Polls health (every ms) and then takes one frame from cursor 0; times
/// from `t0`.
async fn until_serving(addr: SocketAddr, t0: Instant, events: u64, deadline: Instant) -> Restart {
    let seq = loop {
        if let Some(seq) = health(addr).await {
            break seq;
        }
        assert!(Instant::now() < deadline, "no health answer from {addr}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let health = t0.elapsed();
    assert_eq!(seq, events, "health reports the filled log's last seq");
    let mut conn = WsConn::connect(addr, Some(0)).await.expect("subscribe");
    let first = loop {
        match conn.next_frame().await.expect("read") {
            Some((0x2, payload)) => break frame_seq(payload),
            Some(_) => continue,
            None => panic!("closed before the first frame"),
        }
    };
    let first_frame = t0.elapsed();
    assert_eq!(first, Some(1), "cursor 0 starts at the oldest event");
    Restart {
        started: None,
        health,
        first_frame,
    }
}

/// Raw iteration: `readers` threads, each reading seqs `1..=upto` in session
/// pages. Returns (frames/s in total, cpu-s).
fn iterate(log: &EventLog, readers: usize, upto: u64, check: bool) -> (f64, f64) {
    let (t0, c0) = (Instant::now(), process_cpu());
    std::thread::scope(|s| {
        for _ in 0..readers {
            s.spawn(|| {
                let mut next = 1u64;
                while next <= upto {
                    let page = log
                        .read_from(next, PAGE_EVENTS, PAGE_BYTES)
                        .expect("read_from");
                    assert!(!page.is_empty(), "the log ends at {next}");
                    for (seq, frame) in &page {
                        assert_eq!(*seq, next);
                        if check {
                            let ev = Event::decode(frame).expect("a valid frame");
                            assert_eq!(ev.seq(), Some(next as i64), "the frame carries its seq");
                        }
                        next += 1;
                    }
                    std::hint::black_box(page);
                }
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    ((readers as u64 * upto) as f64 / wall, process_cpu() - c0)
}

struct Ceiling {
    one: f64,
    one_cpu_per_frame: f64,
    many: f64,
}

fn ceiling(log: &EventLog, p: &Params, check: bool) -> Ceiling {
    let (one, cpu) = iterate(log, 1, p.events, check);
    let (many, _) = iterate(log, p.subscribers, p.ceiling_events, false);
    Ceiling {
        one,
        one_cpu_per_frame: cpu / p.events as f64,
        many,
    }
}

const GROUPS: [&str; 5] = [
    "relay runtime (sessions, log reads, HTTP)",
    "rocksdb background",
    "bench subscribers (sub-rt)",
    "relay other (sequencer, verifiers: idle)",
    "other (main/poller)",
];

fn group_of(thread: &str) -> usize {
    if thread.starts_with("relay-rt") {
        0
    } else if thread.starts_with("rocksdb") {
        1
    } else if thread.starts_with("sub-rt") {
        2
    } else if thread.starts_with("atrelay-") {
        3
    } else {
        4
    }
}

struct CatchUp {
    wall: f64,
    per_subscriber: Vec<f64>,
    cpu: f64,
    groups: [f64; 5],
    errors: Vec<String>,
    delivered: u64,
}

async fn catch_up(addr: SocketAddr, p: &Params, sub_rt: &tokio::runtime::Runtime) -> CatchUp {
    let progress = Arc::new(AtomicU64::new(0));
    let threads0 = thread_cpu();
    let (t0, c0) = (Instant::now(), process_cpu());
    let readers: Vec<_> = (0..p.subscribers)
        .map(|_| {
            let progress = progress.clone();
            let events = p.events;
            sub_rt.spawn(async move {
                let started = Instant::now();
                let conn = WsConn::connect(addr, Some(0))
                    .await
                    .map_err(|e| e.to_string())?;
                let seen = read_all(
                    conn,
                    Expect {
                        first: 1,
                        last: events,
                        latency_after: None,
                    },
                    progress,
                )
                .await?;
                let done = seen.done.unwrap_or_else(Instant::now);
                Ok::<_, String>(events as f64 / done.duration_since(started).as_secs_f64())
            })
        })
        .collect();
    let total = p.events * p.subscribers as u64;
    let deadline = t0 + p.timeout;
    let mut next_report = Instant::now() + Duration::from_secs(10);
    while progress.load(Ordering::Relaxed) < total
        && Instant::now() < deadline
        && !readers.iter().all(|r| r.is_finished())
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if Instant::now() >= next_report {
            let got = progress.load(Ordering::Relaxed);
            println!(
                "  catch-up: {got} of {total} frames, {:.0} frames/s so far",
                got as f64 / t0.elapsed().as_secs_f64()
            );
            next_report += Duration::from_secs(10);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu() - c0;
    let groups = cpu_by_group::<5>(&threads0, &thread_cpu(), group_of);
    let delivered = progress.load(Ordering::Relaxed);
    let mut per_subscriber = Vec::new();
    let mut errors = Vec::new();
    // A reader counts its last frame just before it returns: once every
    // frame is counted, wait for the readers (until the deadline, or a few
    // seconds at least) rather than call one about to finish timed out.
    let grace_until = deadline.max(Instant::now() + Duration::from_secs(5));
    for mut r in readers {
        match tokio::time::timeout_at(grace_until.into(), &mut r).await {
            Err(_) => {
                r.abort();
                errors.push("timed out".into());
            }
            Ok(Ok(Ok(rate))) => per_subscriber.push(rate),
            Ok(Ok(Err(e))) => errors.push(e),
            Ok(Err(e)) => errors.push(e.to_string()),
        }
    }
    per_subscriber.sort_by(f64::total_cmp);
    CatchUp {
        wall,
        per_subscriber,
        cpu,
        groups,
        errors,
        delivered,
    }
}

fn relay_config(data_dir: &Path) -> RelayConfig {
    let mut cfg = RelayConfig::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.metrics_listen = String::new();
    cfg.server.data_dir = data_dir.to_owned();
    cfg.identity.plc_url = "http://127.0.0.1:9".into(); // never asked: no crawling
    cfg
}

/// `atrelay serve` on `data_dir`, timed from the spawn to serving; then
/// stopped with SIGTERM.
fn process_restart(data_dir: &Path, events: u64, rt: &tokio::runtime::Runtime) -> Restart {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let t0 = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_atrelay"))
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--metrics-listen", "", "--plc-url", "http://127.0.0.1:9"])
        .env("ATRELAY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn atrelay serve");
    let restart = rt.block_on(until_serving(
        addr,
        t0,
        events,
        t0 + Duration::from_secs(120),
    ));
    // Our own child, by pid: a graceful stop, then a hard one if it hangs.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > stop_deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    restart
}

// ---------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let p = Params::from_env(full);
    let started = Instant::now();
    println!(
        "catchup bench{}: {} cores, load {} | {} events, {} template commits, {} subscribers",
        if full { "" } else { " (test mode: tiny)" },
        cores(),
        loadavg(),
        p.events,
        p.templates,
        p.subscribers,
    );
    let (templates, avg) = templates(&p);
    let need = p.events * (avg as u64 + 64) + (1 << 30);
    if let Some(free) = free_bytes(&p.parent) {
        println!(
            "data under {}: ~{:.1} GB needed, {:.1} GB free",
            p.parent.display(),
            need as f64 / 1e9,
            free as f64 / 1e9
        );
        assert!(
            free > need,
            "not enough disk under {} (set CATCHUP_DIR or fewer CATCHUP_EVENTS)",
            p.parent.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("atrelay-catchup-")
        .tempdir_in(&p.parent)
        .expect("data dir");
    let log_dir = dir.path().join("log");
    let fill_secs = fill(&log_dir, &p, &templates);
    println!(
        "filled {} events of {avg} B average ({:.1} GB of frames) in {:.1} s ({:.0} events/s), \
         generated in {:.1} s",
        p.events,
        (p.events * avg as u64) as f64 / 1e9,
        fill_secs,
        p.events as f64 / fill_secs,
        started.elapsed().as_secs_f64() - fill_secs
    );
    let ((sst_n, sst_b), (wal_n, wal_b)) = db_files(&log_dir);
    println!(
        "on disk before the restart: {sst_n} SST files ({:.2} GB), {wal_n} WAL files ({:.0} MB)",
        sst_b as f64 / 1e9,
        wal_b as f64 / 1e6
    );

    let relay_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("relay-rt")
        .enable_all()
        .build()
        .unwrap();
    let sub_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sub-rt")
        .enable_all()
        .build()
        .unwrap();
    let cfg = relay_config(dir.path());

    let (restart, before, run, after) = relay_rt.block_on(async {
        let t0 = Instant::now();
        let relay = Relay::start(&cfg).await.expect("relay starts");
        let start_done = t0.elapsed();
        let mut restart =
            until_serving(relay.addr, t0, p.events, t0 + Duration::from_secs(120)).await;
        restart.started = Some(start_done);

        // The ceilings block this (`block_on`) thread, not a runtime worker:
        // the idle relay keeps running meanwhile.
        let before = ceiling(&relay.log, &p, !full);
        let run = catch_up(relay.addr, &p, &sub_rt).await;
        let after = ceiling(&relay.log, &p, false);
        relay.stop().await;
        (restart, before, run, after)
    });
    sub_rt.shutdown_background();
    drop(relay_rt);

    let t_open = Instant::now();
    let reopened = EventLog::open(&log_dir, log_options()).expect("reopen");
    let open_again = t_open.elapsed();
    drop(reopened);

    let io_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let process = p
        .process
        .then(|| process_restart(dir.path(), p.events, &io_rt));

    // Report.
    let one = before.one.max(after.one);
    let many = before.many.max(after.many);
    let total = (p.events * p.subscribers as u64) as f64;
    let rate = run.delivered as f64 / run.wall;
    println!();
    println!("restart to serving ({} events in the log):", p.events);
    println!(
        "  {:<44} {:>10} {:>10} {:>12}",
        "", "start ms", "health ms", "1st frame ms"
    );
    println!(
        "  {:<44} {:>10.1} {:>10.1} {:>12.1}",
        "in process: Relay::start (replays the WAL)",
        restart.started.map_or(f64::NAN, ms),
        ms(restart.health),
        ms(restart.first_frame)
    );
    if let Some(r) = process {
        println!(
            "  {:<44} {:>10} {:>10.1} {:>12.1}",
            "process: spawn `atrelay serve` (clean stop)",
            "",
            ms(r.health),
            ms(r.first_frame)
        );
    }
    println!(
        "  {:<44} {:>10.1}",
        "EventLog::open alone (clean stop)",
        ms(open_again)
    );
    println!();
    println!(
        "catch-up from cursor 0, {} subscribers × {} events:",
        p.subscribers, p.events
    );
    println!(
        "  {:<44} {:>12} {:>14} {:>9}",
        "", "frames/s", "cpu µs/frame", "/ceiling"
    );
    println!(
        "  {:<44} {:>12.0} {:>14.2} {:>9}",
        "ceiling: read_from, 1 reader",
        one,
        before.one_cpu_per_frame.min(after.one_cpu_per_frame) * 1e6,
        ""
    );
    println!(
        "  {:<44} {:>12.0} {:>14} {:>9}",
        format!("ceiling: read_from, {} readers", p.subscribers),
        many,
        "",
        "1.00"
    );
    println!(
        "  {:<44} {:>12.0} {:>14.2} {:>9.2}",
        format!("websocket subscribers, total ({})", p.subscribers),
        rate,
        run.cpu * 1e6 / run.delivered.max(1) as f64,
        rate / many
    );
    if !run.per_subscriber.is_empty() {
        let ps = &run.per_subscriber;
        println!(
            "  {:<44} {:>12.0}   (min {:.0}, max {:.0})",
            "  per subscriber, median",
            ps[ps.len() / 2],
            ps[0],
            ps[ps.len() - 1]
        );
    }
    println!(
        "  (ceilings before/after the catch-up: 1 reader {:.0}/{:.0}, {} readers {:.0}/{:.0} over \
         the first {} events each)",
        before.one, after.one, p.subscribers, before.many, after.many, p.ceiling_events
    );
    println!(
        "  catch-up: {} of {} frames in {:.1} s, {:.1} cpu-s ({:.2} cores):",
        run.delivered,
        total as u64,
        run.wall,
        run.cpu,
        run.cpu / run.wall
    );
    for (name, cpu) in GROUPS.iter().zip(run.groups) {
        println!(
            "    {:<44} {:>7.2} cpu-s {:>5.2} cores {:>6.2} µs/frame",
            name,
            cpu,
            cpu / run.wall,
            cpu * 1e6 / run.delivered.max(1) as f64
        );
    }
    for e in run.errors.iter().take(5) {
        println!("  subscriber error: {e}");
    }
    println!();
    println!(
        "command: {}{}   (total {:.0} s, load {})",
        [
            "CATCHUP_EVENTS",
            "CATCHUP_SUBSCRIBERS",
            "CATCHUP_TEMPLATES",
            "CATCHUP_CEILING_EVENTS",
            "CATCHUP_DIR",
            "CATCHUP_PROCESS",
            "CATCHUP_TIMEOUT_SECS",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
        .collect::<String>(),
        if full {
            "cargo bench --bench catchup"
        } else {
            "cargo test --bench catchup"
        },
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    drop(dir);

    let complete = run.errors.is_empty() && run.delivered == total as u64;
    if !full {
        assert!(
            complete,
            "every subscriber gets every event: {} of {total}, {:?}",
            run.delivered, run.errors
        );
    } else if !complete {
        eprintln!("the catch-up was incomplete");
        std::process::exit(1);
    }
}
