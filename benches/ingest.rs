//! End-to-end verified ingest: how many real k256 `#commit` events per second
//! the relay accepts — read from upstream PDS websockets, identity-checked,
//! fully verified (CAR, commit, MST inversion against `prevData`, signature),
//! sequenced, durably written to the RocksDB log and published to the ring —
//! against the verify-only ceilings measured in the same run on the same
//! frames.
//!
//! `cargo bench --bench ingest`
//!
//! Workload, generated before anything is timed: `INGEST_ACCOUNTS` accounts
//! (default 200), each with a deterministic k256 key, a `did:plc`, and a repo
//! of `INGEST_RECORDS` posts (default 100) built with `repo::builder`; then one
//! warm-up post per account and `INGEST_COMMITS` timed one-post commits in all
//! (default 60,000), round-robin over the accounts so each account's commits
//! chain (`since`/`prevData`). Every commit is a signed, encoded `#commit`
//! frame carrying its upstream seq. The accounts are split over
//! `INGEST_HOSTS` in-process PDS websocket servers (default 4, own tokio
//! runtime `pds-rt`) that write frames as fast as the socket takes them
//! (`feed` in a batch, then `flush`); an in-process PLC directory serves each
//! DID document (Multikey of the key, the account's PDS endpoint).
//!
//! Relay phase, once per durability mode (`INGEST_MODES`, default
//! `fsync,buffered`), each with a fresh data directory, PLC, PDS servers and
//! relay: the relay is started in process with `Relay::start` on its own
//! 2-worker runtime (`relay-rt`), `verify.workers = 2`, ring 65,536, metrics
//! off. The servers first release only the warm-up commits (one per account,
//! so every DID is resolved and cached and every account's state is in its
//! verifier's memory); once the log holds all of them, the clock starts and
//! the servers release the timed commits. The clock stops when both
//! `relay.log.last_seq()` and the ring's head reach warm-up + timed (polled
//! every 2 ms). Reported: accepted events/s over that window, the steady rate
//! between 10% and 90% of the events, process CPU time over the window
//! (`/proc/self/stat`, all threads including the bench's PDS servers) and per
//! thread group (`/proc/self/task/*/schedstat`), and so events per CPU-second
//! for the whole process and for the relay's threads alone.
//!
//! Ceilings, same process, same timed frames, one thread per core, no network
//! and no log: decode + `verify_commit` (strict, with inversion), and the
//! signature check alone (`PublicKey::verify` on each commit's unsigned bytes).
//! Each is measured before and after the relay runs; the better is reported.
//!
//! Bounded: a relay run that has not accepted everything within
//! `INGEST_TIMEOUT_SECS` (default 120) reports what it got, and the bench
//! exits non-zero. Without `--bench` (as under `cargo test --all-targets`) it
//! runs a tiny version — 2 accounts × 50 commits, fsync — and asserts that
//! every event is accepted.

mod common;

/// The relay tests' PLC directory (benches cannot depend on test crates, so
/// the file is included by path, as `tests/cli.rs` does with the vectors
/// locator).
#[path = "../tests/relay/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atrelay::config::RelayConfig;
use atrelay::crypto::{Curve, PrivateKey, PublicKey};
use atrelay::relay::Relay;
use atrelay::repo::builder::{RecordWrite, RepoHead};
use atrelay::repo::commit::Commit;
use atrelay::repo::verify::{verify_commit, VerifyOptions};
use atrelay::wire::car::{Car, CarLimits};
use atrelay::wire::frame::Event;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Workload and run parameters.
#[derive(Debug)]
struct Params {
    accounts: usize,
    /// Timed commits per account.
    per_account: usize,
    records: usize,
    hosts: usize,
    modes: Vec<String>,
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
        let accounts = num("INGEST_ACCOUNTS", 200, 2).max(1);
        let commits = num("INGEST_COMMITS", 60_000, 100);
        let modes = std::env::var("INGEST_MODES")
            .unwrap_or_else(|_| if full { "fsync,buffered" } else { "fsync" }.into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        Params {
            accounts,
            per_account: (commits / accounts).max(1),
            records: num("INGEST_RECORDS", 100, 10),
            hosts: num("INGEST_HOSTS", 4, 2).clamp(1, accounts),
            modes,
            timeout: Duration::from_secs(num("INGEST_TIMEOUT_SECS", 120, 60) as u64),
        }
    }

    fn timed(&self) -> usize {
        self.accounts * self.per_account
    }

    /// Accounts on host `h` (account `i` lives on host `i % hosts`).
    fn on_host(&self, h: usize) -> usize {
        (self.accounts - h).div_ceil(self.hosts)
    }
}

// ---------------------------------------------------------------------------
// Workload generation

struct Workload {
    dids: Vec<String>,
    keys: Vec<PublicKey>,
    /// Per host: every frame in upstream order (upstream seq = index + 1).
    streams: Vec<Arc<Vec<Bytes>>>,
    /// Per host: how many leading frames are warm-up commits.
    warm: Vec<usize>,
    /// The timed frames with their account index, for the ceilings.
    timed: Vec<(usize, Bytes)>,
}

/// A `did:plc` and a k256 key derived from the account index, so every run
/// builds the same repos (see `DeterministicClock`).
fn identity_for(i: usize) -> (String, PrivateKey) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let h = Sha256::digest(format!("atrelay ingest bench did {i}"));
    let did = format!(
        "did:plc:{}",
        h.iter()
            .take(24)
            .map(|b| ALPHABET[(b % 32) as usize] as char)
            .collect::<String>()
    );
    let seed = Sha256::digest(format!("atrelay ingest bench key {i}"));
    let key = PrivateKey::from_bytes(Curve::K256, &seed).expect("a valid scalar");
    (did, key)
}

/// Account `i`'s frames: one warm-up commit, then `per_account` timed ones,
/// each with its upstream seq on its host.
fn build_account(p: &Params, i: usize) -> (String, PublicKey, Vec<Bytes>) {
    let (did, key) = identity_for(i);
    let clock = common::DeterministicClock::new();
    let mut store = HashMap::new();
    let mut head = RepoHead::empty(&did, &mut store);
    let mut n = 0u64;
    let mut post = |len: usize| {
        n += 1;
        RecordWrite::Create {
            path: format!("app.bsky.feed.post/{}", clock.next()),
            record: common::post_record(len, n),
        }
    };
    // The existing repo, which the relay never sees built.
    if p.records > 0 {
        let writes = (0..p.records).map(|_| post(200)).collect();
        let built = head.commit(&store, writes, &key, clock.next()).unwrap();
        built.store_into(&mut store);
        head = built.head;
    }
    let m = p.on_host(i % p.hosts);
    let l = i / p.hosts;
    let mut frames = Vec::with_capacity(1 + p.per_account);
    for j in 0..=p.per_account {
        let built = head
            .commit(&store, vec![post(300)], &key, clock.next())
            .unwrap();
        built.store_into(&mut store);
        head = built.head.clone();
        let seq = if j == 0 { l + 1 } else { m * j + l + 1 };
        let strings = built.frame_strings();
        let mut frame = Vec::with_capacity(built.car.len() + 512);
        Event::Commit(built.to_frame(&strings, seq as i64, common::TIME)).encode(&mut frame);
        frames.push(Bytes::from(frame));
    }
    (did, key.public_key(), frames)
}

fn generate(p: &Params) -> Workload {
    let threads = cores().min(p.accounts);
    let mut built: Vec<Option<(String, PublicKey, Vec<Bytes>)>> =
        (0..p.accounts).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..p.accounts)
                        .step_by(threads)
                        .map(|i| (i, build_account(p, i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, a) in h.join().unwrap() {
                built[i] = Some(a);
            }
        }
    });
    let mut streams: Vec<Vec<Bytes>> = (0..p.hosts)
        .map(|h| vec![Bytes::new(); p.on_host(h) * (1 + p.per_account)])
        .collect();
    let mut dids = Vec::with_capacity(p.accounts);
    let mut keys = Vec::with_capacity(p.accounts);
    let mut per_account_frames = Vec::with_capacity(p.accounts);
    for (i, a) in built.into_iter().enumerate() {
        let (did, key, frames) = a.unwrap();
        let (m, l) = (p.on_host(i % p.hosts), i / p.hosts);
        for (j, f) in frames.iter().enumerate() {
            streams[i % p.hosts][m * j + l] = f.clone();
        }
        dids.push(did);
        keys.push(key);
        per_account_frames.push(frames);
    }
    // Timed frames in the order the hosts interleave them (round-robin).
    let mut timed = Vec::with_capacity(p.timed());
    for j in 1..=p.per_account {
        for (i, frames) in per_account_frames.iter().enumerate() {
            timed.push((i, frames[j].clone()));
        }
    }
    Workload {
        dids,
        keys,
        warm: (0..p.hosts).map(|h| p.on_host(h)).collect(),
        streams: streams.into_iter().map(Arc::new).collect(),
        timed,
    }
}

// ---------------------------------------------------------------------------
// Upstreams: PLC directory and PDS websocket servers

/// A PDS serving a fixed stream over `subscribeRepos`; frames up to
/// `released` are written as fast as the socket takes them.
struct Upstream {
    addr: SocketAddr,
    released: tokio::sync::watch::Sender<usize>,
}

impl Upstream {
    async fn start(frames: Arc<Vec<Bytes>>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (released, _) = tokio::sync::watch::channel(0usize);
        let gate = released.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_stream(sock, frames.clone(), gate.subscribe()));
            }
        });
        Upstream { addr, released }
    }

    fn release(&self, upto: usize) {
        self.released.send_replace(upto);
    }
}

async fn serve_stream(
    sock: TcpStream,
    frames: Arc<Vec<Bytes>>,
    mut released: tokio::sync::watch::Receiver<usize>,
) {
    let _ = sock.set_nodelay(true);
    let mut cursor = 0usize;
    // tungstenite's callback signature returns its (large) error type.
    #[allow(clippy::result_large_err)]
    let ws = tokio_tungstenite::accept_hdr_async(sock, |req: &Request, res: Response| {
        cursor = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("cursor=")))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(res)
    })
    .await;
    let Ok(ws) = ws else { return };
    let (mut tx, mut rx) = ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    // Upstream seq = index + 1, so the cursor is the index to resume at.
    let mut next = cursor.min(frames.len());
    loop {
        let upto = (*released.borrow_and_update()).min(frames.len());
        while next < upto {
            if tx
                .feed(Message::Binary(frames[next].clone()))
                .await
                .is_err()
            {
                return;
            }
            next += 1;
        }
        if tx.flush().await.is_err() || released.changed().await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// CPU accounting

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// CPU seconds (user + system, all threads, living or exited) used by this
/// process so far; `/proc/self/stat` counts in clock ticks, 100 per second.
fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// Per live thread: (name, nanoseconds on CPU), from `/proc/self/task`.
fn thread_cpu() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let path = entry.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        out.insert(tid, (name.trim().to_owned(), ns));
    }
    out
}

const GROUPS: [&str; 6] = [
    "verifier threads",
    "sequencer",
    "relay runtime (crawlers: ws read, decode, dispatch)",
    "rocksdb background",
    "bench PDS servers (ws write)",
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
    } else {
        5
    }
}

/// CPU seconds per group between two snapshots.
fn group_cpu(
    before: &HashMap<u32, (String, u64)>,
    after: &HashMap<u32, (String, u64)>,
) -> [f64; 6] {
    let mut out = [0.0; 6];
    for (tid, (name, ns)) in after {
        let start = before.get(tid).map_or(0, |(_, n)| *n);
        out[group_of(name)] += ns.saturating_sub(start) as f64 / 1e9;
    }
    out
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Ceilings

/// Runs `work` over `items` on one thread per core (strided split) and
/// returns items per second.
fn on_all_cores<T: Sync>(items: &[T], work: impl Fn(&T) + Sync) -> f64 {
    let threads = cores().min(items.len().max(1));
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            s.spawn(move || items.iter().skip(t).step_by(threads).for_each(work));
        }
    });
    items.len() as f64 / started.elapsed().as_secs_f64()
}

struct Ceilings {
    verify: f64,
    signature: f64,
}

fn measure_ceilings(w: &Workload, signed: &[(usize, Vec<u8>, [u8; 64])]) -> Ceilings {
    let opts = VerifyOptions::strict_now();
    let verify = on_all_cores(&w.timed, |(account, frame)| {
        let Ok(Event::Commit(ev)) = Event::decode(frame) else {
            panic!("a #commit frame")
        };
        let v = verify_commit(&ev, &w.keys[*account], &opts).expect("valid commit");
        assert!(v.inverted, "inversion ran");
        std::hint::black_box(v);
    });
    let signature = on_all_cores(signed, |(account, unsigned, sig)| {
        w.keys[*account]
            .verify(std::hint::black_box(unsigned), sig)
            .expect("valid signature");
    });
    Ceilings { verify, signature }
}

/// Each timed commit's unsigned bytes and signature.
fn unsigned_commits(w: &Workload) -> Vec<(usize, Vec<u8>, [u8; 64])> {
    w.timed
        .iter()
        .map(|(account, frame)| {
            let Ok(Event::Commit(ev)) = Event::decode(frame) else {
                panic!("a #commit frame")
            };
            let car = Car::parse(ev.blocks, CarLimits::FIREHOSE).unwrap();
            let commit = Commit::decode(car.get(&ev.commit).unwrap()).unwrap();
            (
                *account,
                commit.unsigned_bytes(),
                commit.sig.try_into().unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Relay runs

struct RelayRun {
    mode: String,
    accepted: u64,
    target: u64,
    wall: f64,
    /// Between 10% and 90% of the timed events.
    steady: f64,
    process_cpu: f64,
    groups: [f64; 6],
    dropped: u64,
    timed_out: bool,
    load_before: String,
    load_after: String,
}

impl RelayRun {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.wall
    }

    /// CPU of the relay's own threads (not the bench's PDS servers or poller).
    fn relay_cpu(&self) -> f64 {
        self.groups[..4].iter().sum()
    }
}

fn run_relay(p: &Params, w: &Workload, mode: &str) -> RelayRun {
    let pds_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pds-rt")
        .enable_all()
        .build()
        .unwrap();
    let relay_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("relay-rt")
        .enable_all()
        .build()
        .unwrap();
    let upstreams: Vec<Upstream> = pds_rt.block_on(async {
        let mut ups = Vec::new();
        for s in &w.streams {
            ups.push(Upstream::start(s.clone()).await);
        }
        ups
    });
    let dir = tempfile::tempdir().unwrap();
    let warm_total: u64 = w.warm.iter().sum::<usize>() as u64;
    let timed_total = w.timed.len() as u64;
    let target = warm_total + timed_total;
    let load_before = loadavg();

    let run = relay_rt.block_on(async {
        let plc = harness::TestPlc::start().await;
        for i in 0..p.accounts {
            let endpoint = format!("http://{}", upstreams[i % p.hosts].addr);
            plc.register_key(&w.dids[i], &w.keys[i], &endpoint);
        }
        let plc_url = plc.url.clone();
        let mut cfg = RelayConfig::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.metrics_listen = String::new();
        cfg.server.data_dir = dir.path().to_owned();
        cfg.identity.plc_url = plc_url;
        cfg.crawl.allow_private_hosts = true;
        cfg.crawl.hosts = upstreams.iter().map(|u| u.addr.to_string()).collect();
        cfg.verify.workers = 2;
        cfg.log.durability = mode.to_owned();
        cfg.fanout.ring_capacity = 65_536;
        // The relay's own throughput is measured, not the hosts' budgets.
        cfg.budget = atrelay::config::BudgetConfig::unlimited();
        let relay = Relay::start(&cfg).await.expect("relay starts");
        let deadline = Instant::now() + p.timeout;

        // Warm-up: one commit per account resolves and caches every DID.
        for (u, &n) in upstreams.iter().zip(&w.warm) {
            u.release(n);
        }
        while relay.log.last_seq() < warm_total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }

        let dropped = |relay: &Relay| -> u64 {
            upstreams
                .iter()
                .filter_map(|u| relay.hosts.get(&u.addr.to_string()))
                .map(|h| h.dropped.load(std::sync::atomic::Ordering::Relaxed))
                .sum()
        };
        let threads0 = thread_cpu();
        let cpu0 = process_cpu();
        let t0 = Instant::now();
        for (u, s) in upstreams.iter().zip(&w.streams) {
            u.release(s.len());
        }
        let (p10, p90) = (
            warm_total + timed_total / 10,
            warm_total + timed_total * 9 / 10,
        );
        let (mut t10, mut t90) = (None, None);
        let mut timed_out = false;
        loop {
            let seq = relay.log.last_seq();
            let now = Instant::now();
            if seq >= p10 && t10.is_none() {
                t10 = Some((now, seq));
            }
            if seq >= p90 && t90.is_none() {
                t90 = Some((now, seq));
            }
            if seq >= target && relay.ring.head() >= target {
                break;
            }
            if now >= deadline {
                timed_out = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let wall = t0.elapsed().as_secs_f64();
        let process_cpu = process_cpu() - cpu0;
        let groups = group_cpu(&threads0, &thread_cpu());
        let accepted = relay.log.last_seq().saturating_sub(warm_total);
        let steady = match (t10, t90) {
            (Some((a, sa)), Some((b, sb))) if b > a => {
                (sb - sa) as f64 / b.duration_since(a).as_secs_f64()
            }
            _ => f64::NAN,
        };
        let dropped = dropped(&relay);
        relay.stop().await;
        RelayRun {
            mode: mode.to_owned(),
            accepted,
            target: timed_total,
            wall,
            steady,
            process_cpu,
            groups,
            dropped,
            timed_out,
            load_before: load_before.clone(),
            load_after: loadavg(),
        }
    });
    drop(relay_rt);
    pds_rt.shutdown_background();
    run
}

// ---------------------------------------------------------------------------

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let p = Params::from_env(full);
    let started = Instant::now();
    println!(
        "ingest bench{}: {} cores, load {} | {} accounts × {} commits = {} timed k256 #commit events \
         (+{} warm-up), repos of {}+ records, {} upstream hosts",
        if full { "" } else { " (test mode: tiny)" },
        cores(),
        loadavg(),
        p.accounts,
        p.per_account,
        p.timed(),
        p.accounts,
        p.records,
        p.hosts,
    );
    let w = generate(&p);
    let bytes: usize = w.timed.iter().map(|(_, f)| f.len()).sum();
    println!(
        "generated in {:.1} s: timed frames {:.1} MB, {:.0} B average",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / w.timed.len() as f64
    );
    let signed = unsigned_commits(&w);

    let before = measure_ceilings(&w, &signed);
    let runs: Vec<RelayRun> = p.modes.iter().map(|m| run_relay(&p, &w, m)).collect();
    let after = measure_ceilings(&w, &signed);
    let verify = before.verify.max(after.verify);
    let signature = before.signature.max(after.signature);

    let threads = cores();
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>8} {:>8} {:>12} {:>9} {:>9}",
        "phase", "events/s", "steady/s", "wall s", "cpu s", "events/cpu-s", "/verify", "/sig"
    );
    println!(
        "{:<34} {:>10.0} {:>10} {:>8} {:>8} {:>12.0} {:>9} {:>9}",
        format!("ceiling: signature only ({threads} thr)"),
        signature,
        "",
        "",
        "",
        signature / threads as f64,
        "",
        "1.00"
    );
    println!(
        "{:<34} {:>10.0} {:>10} {:>8} {:>8} {:>12.0} {:>9} {:>9.2}",
        format!("ceiling: decode+verify ({threads} thr)"),
        verify,
        "",
        "",
        "",
        verify / threads as f64,
        "1.00",
        verify / signature
    );
    for r in &runs {
        println!(
            "{:<34} {:>10.0} {:>10.0} {:>8.2} {:>8.2} {:>12.0} {:>9.2} {:>9.2}",
            format!(
                "relay {}{}",
                r.mode,
                if r.timed_out { " (TIMED OUT)" } else { "" }
            ),
            r.rate(),
            r.steady,
            r.wall,
            r.process_cpu,
            r.accepted as f64 / r.process_cpu,
            r.rate() / verify,
            r.rate() / signature,
        );
    }
    println!(
        "(ceilings per thread: events/cpu-s column; before/after the relay runs: \
         verify {:.0}/{:.0}, signature {:.0}/{:.0})",
        before.verify, after.verify, before.signature, after.signature
    );
    for r in &runs {
        println!();
        println!(
            "relay {}: {} of {} accepted, {} dropped, load {} → {}; CPU by thread group:",
            r.mode, r.accepted, r.target, r.dropped, r.load_before, r.load_after
        );
        for (name, cpu) in GROUPS.iter().zip(r.groups) {
            println!(
                "  {:<52} {:>6.2} cpu-s {:>5.2} cores {:>6.1} µs/event",
                name,
                cpu,
                cpu / r.wall,
                cpu * 1e6 / r.accepted.max(1) as f64
            );
        }
        println!(
            "  relay threads alone: {:.2} cpu-s → {:.0} events per relay cpu-s (process: {:.2} cpu-s)",
            r.relay_cpu(),
            r.accepted as f64 / r.relay_cpu(),
            r.process_cpu
        );
    }
    println!();
    println!(
        "command: {}{}   (total {:.0} s)",
        [
            "INGEST_ACCOUNTS",
            "INGEST_COMMITS",
            "INGEST_RECORDS",
            "INGEST_HOSTS",
            "INGEST_MODES",
            "INGEST_TIMEOUT_SECS"
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
        .collect::<String>(),
        if full {
            "cargo bench --bench ingest"
        } else {
            "cargo test --bench ingest"
        },
        started.elapsed().as_secs_f64()
    );

    let incomplete: Vec<&RelayRun> = runs.iter().filter(|r| r.accepted < r.target).collect();
    if !full {
        assert!(
            incomplete.is_empty(),
            "every event must be accepted: {:?}",
            runs.iter()
                .map(|r| (&r.mode, r.accepted, r.target, r.dropped))
                .collect::<Vec<_>>()
        );
    } else if !incomplete.is_empty() {
        eprintln!("not every event was accepted within the timeout");
        std::process::exit(1);
    }
}
