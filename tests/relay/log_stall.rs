//! The real `atrelay serve` binary running out of file descriptors while it
//! writes: its open-file limit is lowered from outside (`prlimit`) to the
//! descriptors it already holds, so the RocksDB memtable switch that the
//! traffic forces cannot create its new WAL file. The relay must not exit:
//! its log writer stalls, says so (ERROR line, metrics), and once the limit
//! is raised again it reopens the database and carries on, with every
//! upstream commit delivered exactly once and seqs gap-free.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use atrelay::wire::frame::Event;

use crate::binary::RelayProcess;
use crate::harness::Subscriber;
use crate::pipeline::Net;

/// `(soft, hard)` open-file limits of process `pid`, setting the soft one to
/// `soft` when given.
fn prlimit_nofile(pid: u32, soft: Option<u64>) -> (u64, u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = pid as libc::pid_t;
    assert_eq!(
        unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) },
        0
    );
    if let Some(soft) = soft {
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) },
            0
        );
    }
    (old.rlim_cur, old.rlim_max)
}

/// The lowest descriptor number process `pid` does not use: with its soft
/// limit there, it can open nothing more.
fn lowest_free_fd(pid: u32) -> u64 {
    let used: HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_stalls_the_writer_and_loses_nothing() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let net = Net::start().await;
        let mut accounts: Vec<_> = (0..4).map(|_| net.account()).collect();
        // 4 MiB memtables (the smallest the config allows), so a few MiB of
        // commits force a memtable switch, which needs a new WAL file.
        let relay = RelayProcess::spawn(&net, true, &[("ATRELAY_LOG_MEMTABLE_MIB", "4")]).await;
        let pid = relay.child.0.id();
        let mut sub = Subscriber::connect(relay.addr, None).await;

        // One commit per account first: their identities are resolved (over
        // new connections) and cached before descriptors run out.
        let mut commits = Vec::new();
        for a in accounts.iter_mut() {
            let c = a.post("hello");
            net.pds.emit_commit(&c);
            commits.push(c.commit);
        }
        let mut frames = sub.take(commits.len()).await;

        let (soft, _) = prlimit_nofile(pid, None);
        prlimit_nofile(pid, Some(lowest_free_fd(pid)));
        // 160 commits of ~48 KiB: 7.5 MiB, well past one memtable.
        let text = "x".repeat(48 << 10);
        for round in 0..40 {
            for a in accounts.iter_mut() {
                let c = a.post(&format!("{round} {text}"));
                net.pds.emit_commit(&c);
                commits.push(c.commit);
            }
        }
        let stalled_line = "event log append failed; retrying";
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut relay = relay;
        while !relay.stderr.tail().contains(stalled_line) {
            assert!(
                relay.child.0.try_wait().unwrap().is_none(),
                "the relay exited: {}",
                relay.stderr.tail()
            );
            assert!(
                Instant::now() < deadline,
                "the writer never failed: {}",
                relay.stderr.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Stalled: retries and reopen attempts fail for a while, and nothing
        // the writer could not make durable reaches the subscriber.
        let until = Instant::now() + Duration::from_millis(1500);
        while let Some(f) = sub
            .next(until.saturating_duration_since(Instant::now()))
            .await
        {
            frames.push(f);
        }
        let during = frames.len();
        assert!(
            during < commits.len(),
            "all {during} frames went out during the stall"
        );
        prlimit_nofile(pid, Some(soft));

        frames.extend(sub.take(commits.len() - frames.len()).await);
        assert!(
            relay.child.0.try_wait().unwrap().is_none(),
            "the relay exited: {}",
            relay.stderr.tail()
        );
        let log = relay.stderr.tail();
        assert!(log.contains("Too many open files"), "{log}");
        assert!(log.contains("event log writer recovered"), "{log}");
        assert!(!log.contains("stopping the relay"), "{log}");

        // Every commit exactly once, gap-free; a replay from the log is
        // byte for byte what the live subscriber got.
        let mut seen = HashSet::new();
        for (i, f) in frames.iter().enumerate() {
            let Event::Commit(c) = Event::decode(f).unwrap() else {
                panic!("frame {i} is not a commit")
            };
            assert_eq!(c.seq, i as i64 + 1, "gap-free seqs");
            assert!(seen.insert(c.commit), "commit {} twice", c.commit);
        }
        assert_eq!(seen, commits.iter().copied().collect(), "every commit");
        assert!(sub.next(Duration::from_millis(300)).await.is_none());
        let mut replay = Subscriber::connect(relay.addr, Some(0)).await;
        assert_eq!(replay.take(frames.len()).await, frames);

        let scrape = relay
            .scrape_until(|s| s.get("atrelay_log_writer_stalled", &[]) == Some(0.0))
            .await;
        assert!(
            scrape.value(
                "atrelay_log_append_retries_total",
                &[("cause", "descriptors")]
            ) >= 1.0
        );
        assert!(scrape.value("atrelay_log_reopens_total", &[]) >= 1.0);
        assert_eq!(scrape.value("atrelay_log_writer_stalled", &[]), 0.0);
        eprintln!(
            "{during} of {} frames out before the limit was raised; relay log:\n{log}",
            commits.len()
        );
    })
    .await
    .expect("test timed out");
}
