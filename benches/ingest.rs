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
//! Per thread group, context switches (voluntary + involuntary, from
//! `/proc/self/task/*/status`) per event are reported too: each is a wake-up or
//! a preemption, which batching between the stages is meant to save.
//! Diagnostics: `INGEST_CEILINGS=0` skips the ceilings (for profiling runs,
//! e.g. under callgrind, whose per-thread outputs would otherwise mix the
//! ceiling threads with the relay's), and `INGEST_METRICS=1` installs a
//! metrics recorder and prints the group-commit sizes (off by default: the
//! relay's metrics cost CPU per event).
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
use std::time::{Duration, Instant};

use atrelay::config::RelayConfig;
use atrelay::node::Relay;
use common::sys::{cores, loadavg, process_cpu};
use common::upstream::Upstream;
use common::workload::{generate, measure_ceilings, unsigned_commits, Ceilings, Shape, Workload};

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

    /// The workload's shape (`common::workload`, shared with `pipeline`).
    fn shape(&self) -> Shape {
        Shape {
            accounts: self.accounts,
            per_account: self.per_account,
            records: self.records,
            hosts: self.hosts,
            time: common::TIME,
        }
    }
}

// ---------------------------------------------------------------------------
// CPU accounting

/// What one thread has used so far.
#[derive(Clone, Default)]
struct ThreadUse {
    name: String,
    /// Nanoseconds on CPU (`schedstat`).
    cpu_ns: u64,
    /// Voluntary plus involuntary context switches (`status`): each is a
    /// wake-up or preemption, the cost batching saves.
    switches: u64,
}

/// Per live thread, from `/proc/self/task`.
fn thread_cpu() -> HashMap<u32, ThreadUse> {
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
        let cpu_ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let switches = std::fs::read_to_string(path.join("status"))
            .map(|s| {
                s.lines()
                    .filter(|l| l.contains("ctxt_switches"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        out.insert(
            tid,
            ThreadUse {
                name: name.trim().to_owned(),
                cpu_ns,
                switches,
            },
        );
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

/// CPU seconds and context switches per group between two snapshots.
fn group_cpu(
    before: &HashMap<u32, ThreadUse>,
    after: &HashMap<u32, ThreadUse>,
) -> ([f64; 6], [u64; 6]) {
    let mut cpu = [0.0; 6];
    let mut switches = [0; 6];
    for (tid, now) in after {
        let start = before.get(tid).cloned().unwrap_or_default();
        let g = group_of(&now.name);
        cpu[g] += now.cpu_ns.saturating_sub(start.cpu_ns) as f64 / 1e9;
        switches[g] += now.switches.saturating_sub(start.switches);
    }
    (cpu, switches)
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
    /// Context switches per thread group over the window.
    switches: [u64; 6],
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
        cfg.log.durability =
            atrelay::log::Durability::parse(mode).expect("INGEST_MODES are fsync or buffered");
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
        let (groups, switches) = group_cpu(&threads0, &thread_cpu());
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
            switches,
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
    let w = generate(&p.shape());
    let bytes: usize = w.timed.iter().map(|(_, f)| f.len()).sum();
    println!(
        "generated in {:.1} s: timed frames {:.1} MB, {:.0} B average",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / w.timed.len() as f64
    );
    let signed = unsigned_commits(&w);
    // Diagnostics only: the relay's own metrics cost CPU per event, so they
    // stay off unless asked for (then the group-commit sizes are printed).
    let metrics = (std::env::var("INGEST_METRICS").as_deref() == Ok("1")).then(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("a metrics recorder")
    });

    // `INGEST_CEILINGS=0` skips the ceilings (profiling runs: under callgrind
    // their threads would share per-thread outputs with the relay's).
    let ceilings = std::env::var("INGEST_CEILINGS").as_deref() != Ok("0");
    let skipped = || Ceilings {
        verify: f64::NAN,
        signature: f64::NAN,
    };
    let before = if ceilings {
        measure_ceilings(&w, &signed)
    } else {
        skipped()
    };
    let runs: Vec<RelayRun> = p.modes.iter().map(|m| run_relay(&p, &w, m)).collect();
    let after = if ceilings {
        measure_ceilings(&w, &signed)
    } else {
        skipped()
    };
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
        for ((name, cpu), switches) in GROUPS.iter().zip(r.groups).zip(r.switches) {
            println!(
                "  {:<52} {:>6.2} cpu-s {:>5.2} cores {:>6.1} µs/event {:>6.3} switches/event",
                name,
                cpu,
                cpu / r.wall,
                cpu * 1e6 / r.accepted.max(1) as f64,
                switches as f64 / r.accepted.max(1) as f64
            );
        }
        println!(
            "  relay threads alone: {:.2} cpu-s → {:.0} events per relay cpu-s (process: {:.2} cpu-s)",
            r.relay_cpu(),
            r.accepted as f64 / r.relay_cpu(),
            r.process_cpu
        );
    }
    if let Some(handle) = metrics {
        println!();
        println!("metrics (all runs together):");
        for line in handle.render().lines() {
            let wanted = [
                atrelay::relay::metrics::GROUP_COMMIT_EVENTS,
                atrelay::log::metrics::APPEND_BATCHES,
                atrelay::relay::metrics::EVENTS_SEQUENCED,
            ];
            if !line.starts_with('#') && wanted.iter().any(|w| line.starts_with(w)) {
                println!("  {line}");
            }
        }
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
            "INGEST_TIMEOUT_SECS",
            "INGEST_CEILINGS",
            "INGEST_METRICS"
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
