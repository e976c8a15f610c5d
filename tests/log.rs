//! The RocksDB event log against a real database in temp dirs: byte-exact
//! round trips, pagination, the gap-free sequence (invariant 2), batches that
//! write events and state atomically, recovery after close and after
//! `kill -9` of a writing process (invariant 7), retention by age and size,
//! and a property test over random batch shapes.
//!
//! `cargo test --test log`

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use atrelay::log::{
    AccountState, AppendBatch, Durability, EventLog, HostState, HostStatus, LogError, LogEvent,
    LogOptions, SeqRule,
};
use atrelay::wire::cid::Cid;
use bytes::Bytes;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000_000;
const HOUR: u64 = 3_600_000_000;

/// A deterministic frame for `seq`: `len` bytes that differ per seq, so a
/// frame returned under the wrong seq is caught.
fn frame(seq: u64, len: usize) -> Bytes {
    let seed = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|i| (seed >> ((i % 8) * 8)) as u8 ^ i as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn events(first: u64, lens: &[usize], received: u64) -> Vec<LogEvent> {
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let seq = first + i as u64;
            LogEvent {
                seq,
                received_micros: received + i as u64,
                frame: frame(seq, len),
            }
        })
        .collect()
}

fn buffered() -> LogOptions {
    LogOptions {
        durability: Durability::Buffered,
        ..LogOptions::default()
    }
}

fn open(dir: &Path, opts: LogOptions) -> EventLog {
    EventLog::open(dir, opts).expect("open log")
}

/// Appends `n` events of `len` bytes after the current end.
fn append_n(log: &EventLog, n: usize, len: usize, received: u64) {
    let first = log.last_seq() + 1;
    let batch = AppendBatch {
        events: events(first, &vec![len; n], received),
        ..AppendBatch::default()
    };
    log.append(&batch).expect("append");
}

/// Asserts the log holds exactly `oldest..=last` with the frames `frame(seq, _)`.
fn assert_contiguous(log: &EventLog) -> Vec<(u64, Bytes)> {
    let all = log.read_from(0, usize::MAX, usize::MAX).unwrap();
    let last = log.last_seq();
    match log.oldest_seq() {
        None => assert!(all.is_empty()),
        Some(oldest) => {
            assert_eq!(all.first().map(|e| e.0), Some(oldest));
            assert_eq!(all.last().map(|e| e.0), Some(last));
            for (i, (seq, f)) in all.iter().enumerate() {
                assert_eq!(*seq, oldest + i as u64, "gap in the log");
                assert_eq!(*f, frame(*seq, f.len()), "frame {seq} altered");
            }
        }
    }
    all
}

#[test]
fn round_trip_is_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogOptions::default());
    assert_eq!(log.last_seq(), 0);
    assert_eq!(log.oldest_seq(), None);
    assert!(log.read_from(0, 10, 1000).unwrap().is_empty());

    let lens = [0usize, 1, 3000, 1 << 20, 17];
    let evs = events(1, &lens, T0);
    log.append(&AppendBatch {
        events: evs.clone(),
        ..AppendBatch::default()
    })
    .unwrap();
    let got = log.read_from(1, usize::MAX, usize::MAX).unwrap();
    let want: Vec<(u64, Bytes)> = evs.iter().map(|e| (e.seq, e.frame.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(log.last_seq(), 5);
    assert_eq!(log.oldest_seq(), Some(1));
    assert_eq!(log.event_time(3).unwrap(), Some(T0 + 2));
    assert_eq!(log.event_time(6).unwrap(), None);
    let logical: u64 = lens.iter().map(|&l| 16 + l as u64).sum();
    assert_eq!(log.approximate_events_bytes(), logical);

    // The same bytes after a reopen (from the WAL) and after a flush (from SSTs).
    drop(log);
    let log = open(dir.path(), LogOptions::default());
    assert_eq!(log.read_from(1, usize::MAX, usize::MAX).unwrap(), want);
    log.flush().unwrap();
    assert_eq!(log.read_from(1, usize::MAX, usize::MAX).unwrap(), want);
    assert_eq!(log.approximate_events_bytes(), logical);
}

#[test]
fn read_from_paginates_by_count_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), buffered());
    append_n(&log, 10, 100, T0);

    let seqs = |v: Vec<(u64, Bytes)>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
    assert_eq!(seqs(log.read_from(1, 3, usize::MAX).unwrap()), [1, 2, 3]);
    assert_eq!(seqs(log.read_from(4, 3, usize::MAX).unwrap()), [4, 5, 6]);
    assert_eq!(seqs(log.read_from(9, 3, usize::MAX).unwrap()), [9, 10]);
    assert!(log.read_from(11, 3, usize::MAX).unwrap().is_empty());
    assert!(log.read_from(1, 0, usize::MAX).unwrap().is_empty());
    // from 0 means from the start.
    assert_eq!(seqs(log.read_from(0, 2, usize::MAX).unwrap()), [1, 2]);
    // By bytes: 250 bytes fit two 100-byte frames, exactly 300 fit three.
    assert_eq!(seqs(log.read_from(1, 100, 250).unwrap()), [1, 2]);
    assert_eq!(seqs(log.read_from(1, 100, 300).unwrap()), [1, 2, 3]);
    // At least one event, even when it alone exceeds the byte budget.
    assert_eq!(seqs(log.read_from(5, 100, 1).unwrap()), [5]);
    assert_eq!(seqs(log.read_from(5, 100, 0).unwrap()), [5]);

    // Paging through reconstructs the whole log.
    let mut next = 1;
    let mut all = Vec::new();
    loop {
        let page = log.read_from(next, 4, 350).unwrap();
        let Some(&(last, _)) = page.last() else { break };
        next = last + 1;
        all.extend(page);
    }
    assert_eq!(all, log.read_from(1, usize::MAX, usize::MAX).unwrap());
}

#[test]
fn gaps_and_reused_seqs_are_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), buffered());
    append_n(&log, 3, 10, T0);
    let bytes_before = log.approximate_events_bytes();

    let account = ("did:plc:a".to_owned(), Some(AccountState::new("h")));
    let host = ("h".to_owned(), HostState::new(T0));
    let cases = [
        (
            events(5, &[10], T0),
            LogError::Gap {
                expected: 4,
                got: 5,
            },
        ), // gap
        (
            events(3, &[10], T0),
            LogError::Gap {
                expected: 4,
                got: 3,
            },
        ), // reuse
        (
            events(1, &[10], T0),
            LogError::Gap {
                expected: 4,
                got: 1,
            },
        ), // reuse
        (
            // second event out of sequence: the valid first one is not written either
            vec![
                events(4, &[10], T0)[0].clone(),
                events(6, &[10], T0)[0].clone(),
            ],
            LogError::Gap {
                expected: 5,
                got: 6,
            },
        ),
        (
            vec![
                events(4, &[10], T0)[0].clone(),
                events(4, &[10], T0)[0].clone(),
            ],
            LogError::Gap {
                expected: 5,
                got: 4,
            },
        ),
    ];
    for (evs, want) in cases {
        let batch = AppendBatch {
            events: evs,
            accounts: vec![account.clone()],
            hosts: vec![host.clone()],
        };
        assert_eq!(log.append(&batch), Err(want));
        assert_eq!(log.last_seq(), 3);
        assert_eq!(log.get_account("did:plc:a").unwrap(), None);
        assert_eq!(log.get_host("h").unwrap(), None);
        assert_eq!(log.event_time(4).unwrap(), None);
        assert_eq!(log.approximate_events_bytes(), bytes_before);
    }
    // Invalid keys are rejected too, before anything is written.
    let bad = AppendBatch {
        events: events(4, &[10], T0),
        accounts: vec![(String::new(), None)],
        ..AppendBatch::default()
    };
    assert!(matches!(
        log.append(&bad),
        Err(LogError::InvalidArgument(_))
    ));
    assert_eq!(log.last_seq(), 3);

    // The right seq still works afterwards, and across a reopen.
    append_n(&log, 2, 10, T0);
    assert_eq!(log.last_seq(), 5);
    drop(log);
    let log = open(dir.path(), buffered());
    assert_eq!(log.last_seq(), 5);
    assert_eq!(
        log.append(&AppendBatch {
            events: events(5, &[1], T0),
            ..AppendBatch::default()
        }),
        Err(LogError::Gap {
            expected: 6,
            got: 5
        })
    );
    assert_contiguous(&log);
}

/// A mirror's log keeps its upstream's seqs: gaps are accepted, reads and
/// reopens go across them, and a seq at or below the last is still refused.
#[test]
fn a_mirror_log_accepts_increasing_seqs_with_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        seqs: SeqRule::Increasing,
        ..buffered()
    };
    let log = open(dir.path(), opts.clone());
    let at = |seqs: &[u64]| AppendBatch {
        events: seqs
            .iter()
            .map(|&seq| LogEvent {
                seq,
                received_micros: T0,
                frame: frame(seq, 20),
            })
            .collect(),
        ..AppendBatch::default()
    };
    log.append(&at(&[5, 9, 10])).unwrap();
    log.append(&at(&[1000])).unwrap();
    for refused in [&[1000][..], &[1001, 1001], &[7]] {
        assert!(
            matches!(log.append(&at(refused)), Err(LogError::Gap { .. })),
            "{refused:?}"
        );
    }
    let seqs = |from| -> Vec<u64> {
        log.read_from(from, 100, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(s, f)| {
                assert_eq!(f, frame(s, 20));
                s
            })
            .collect()
    };
    assert_eq!(seqs(0), [5, 9, 10, 1000]);
    assert_eq!(seqs(6), [9, 10, 1000]);
    assert_eq!(seqs(11), [1000]);
    drop(log);
    let log = open(dir.path(), opts);
    assert_eq!((log.oldest_seq(), log.last_seq()), (Some(5), 1000));
    // The relay's own log still refuses the same gap.
    let dir = tempfile::tempdir().unwrap();
    let relay_log = open(dir.path(), buffered());
    assert_eq!(
        relay_log.append(&at(&[5])),
        Err(LogError::Gap {
            expected: 1,
            got: 5
        })
    );
}

#[test]
fn last_and_oldest_seq_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), LogOptions::default());
        for _ in 0..5 {
            append_n(&log, 7, 200, T0);
        }
        assert_eq!(log.last_seq(), 35);
    }
    let log = open(dir.path(), LogOptions::default());
    assert_eq!(log.last_seq(), 35);
    assert_eq!(log.oldest_seq(), Some(1));
    assert_eq!(log.approximate_events_bytes(), 35 * 216);
    append_n(&log, 1, 200, T0);
    assert_eq!(log.last_seq(), 36);
    drop(log);
    let log = open(dir.path(), LogOptions::default());
    assert_eq!(log.last_seq(), 36);
    assert_contiguous(&log);
}

#[test]
fn state_is_written_with_events_and_listed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogOptions::default());
    let mut acct = AccountState::new("pds.example.com");
    acct.rev = Some("3l3qo2vuowo2b".into());
    acct.commit = Some(Cid::for_cbor(b"\xa0"));
    acct.data = Some(Cid::for_cbor(b"\x80"));
    let mut host = HostState::new(T0);
    host.cursor = 41;
    host.account_count = 3;

    let dids = [
        "did:plc:ccc",
        "did:plc:aaa",
        "did:web:example.com",
        "did:plc:bbb",
    ];
    log.append(&AppendBatch {
        events: events(1, &[50, 60], T0),
        accounts: dids
            .iter()
            .map(|d| (d.to_string(), Some(acct.clone())))
            .collect(),
        hosts: vec![
            ("pds.example.com".into(), host.clone()),
            ("b.example".into(), HostState::new(T0 + 1)),
        ],
    })
    .unwrap();
    assert_eq!(log.get_account("did:plc:aaa").unwrap(), Some(acct.clone()));
    assert_eq!(log.get_account("did:plc:zzz").unwrap(), None);
    assert_eq!(log.get_host("pds.example.com").unwrap(), Some(host.clone()));

    // Delete one account and advance the host cursor with the next event.
    let mut host2 = host.clone();
    host2.cursor = 42;
    host2.status = HostStatus::Throttled;
    log.append(&AppendBatch {
        events: events(3, &[70], T0),
        accounts: vec![("did:plc:bbb".into(), None)],
        hosts: vec![("pds.example.com".into(), host2.clone())],
    })
    .unwrap();
    assert_eq!(log.get_account("did:plc:bbb").unwrap(), None);

    // A state-only batch (no events) is allowed.
    log.append(&AppendBatch {
        accounts: vec![("did:plc:ddd".into(), Some(AccountState::new("b.example")))],
        ..AppendBatch::default()
    })
    .unwrap();
    assert_eq!(log.last_seq(), 3);

    drop(log);
    let log = open(dir.path(), LogOptions::default());
    let names = |v: Vec<(String, AccountState)>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
    let all = names(log.list_accounts(None, 100).unwrap());
    assert_eq!(
        all,
        [
            "did:plc:aaa",
            "did:plc:ccc",
            "did:plc:ddd",
            "did:web:example.com"
        ]
    );
    assert_eq!(names(log.list_accounts(None, 2).unwrap()), all[..2]);
    assert_eq!(
        names(log.list_accounts(Some("did:plc:ccc"), 2).unwrap()),
        all[2..]
    );
    // A cursor that is not itself a key (e.g. deleted since) still pages correctly.
    assert_eq!(
        names(log.list_accounts(Some("did:plc:bbb"), 1).unwrap()),
        ["did:plc:ccc"]
    );
    assert!(log
        .list_accounts(Some("did:web:example.com"), 5)
        .unwrap()
        .is_empty());
    assert!(log.list_accounts(None, 0).unwrap().is_empty());

    let hosts = log.list_hosts().unwrap();
    assert_eq!(
        hosts,
        vec![
            ("b.example".to_owned(), HostState::new(T0 + 1)),
            ("pds.example.com".to_owned(), host2)
        ]
    );
}

#[test]
fn meta_entries_persist_and_the_log_namespace_is_reserved() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), LogOptions::default());
        assert_eq!(log.get_meta("admin/banned").unwrap(), None);
        log.put_meta("admin/banned", b"evil.example").unwrap();
        assert!(matches!(
            log.put_meta("log/schema_version", b"\0\0\0\x09"),
            Err(LogError::InvalidArgument(_))
        ));
        assert!(matches!(
            log.put_meta("", b"x"),
            Err(LogError::InvalidArgument(_))
        ));
    }
    let log = open(dir.path(), LogOptions::default());
    assert_eq!(
        log.get_meta("admin/banned").unwrap().as_deref(),
        Some(&b"evil.example"[..])
    );
    assert_eq!(
        log.get_meta("log/schema_version").unwrap().as_deref(),
        Some(&[0, 0, 0, 1][..])
    );
}

/// Opens the database directly (same column families), bypassing the log.
fn raw_db(dir: &Path) -> rocksdb::DB {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    rocksdb::DB::open_cf(&o, dir, ["events", "accounts", "hosts", "meta"]).unwrap()
}

#[test]
fn schema_version_and_corruption_are_detected() {
    // Another schema version.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), LogOptions::default()));
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"log/schema_version", 2u32.to_be_bytes())
            .unwrap();
    }
    assert_eq!(
        EventLog::open(dir.path(), LogOptions::default()).unwrap_err(),
        LogError::SchemaVersion {
            found: 2,
            expected: 1
        }
    );

    // Corrupt event value, account value and a gap in the events CF.
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), LogOptions::default());
        append_n(&log, 3, 20, T0);
    }
    {
        let db = raw_db(dir.path());
        let (events, accounts) = (
            db.cf_handle("events").unwrap(),
            db.cf_handle("accounts").unwrap(),
        );
        db.put_cf(events, 2u64.to_be_bytes(), b"abc").unwrap();
        db.put_cf(accounts, b"did:plc:x", b"\xa1\x63bad").unwrap();
    }
    let log = open(dir.path(), LogOptions::default());
    assert!(matches!(
        log.read_from(1, 10, 1 << 20),
        Err(LogError::Corrupt(_))
    ));
    assert_eq!(log.read_from(1, 1, 1 << 20).unwrap().len(), 1);
    assert!(matches!(log.event_time(2), Err(LogError::Corrupt(_))));
    assert!(matches!(
        log.get_account("did:plc:x"),
        Err(LogError::Corrupt(_))
    ));
    assert!(matches!(
        log.list_accounts(None, 10),
        Err(LogError::Corrupt(_))
    ));
    drop(log);
    {
        let db = raw_db(dir.path());
        db.delete_cf(db.cf_handle("events").unwrap(), 2u64.to_be_bytes())
            .unwrap();
    }
    let log = open(dir.path(), LogOptions::default());
    assert!(matches!(
        log.read_from(1, 10, 1 << 20),
        Err(LogError::Corrupt(_))
    ));
    drop(log);
    // Events whose segment index was removed: refused at open.
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").unwrap();
        db.delete_range_cf(meta, b"log/seg/".as_slice(), b"log/seg0".as_slice())
            .unwrap();
    }
    assert!(matches!(
        EventLog::open(dir.path(), LogOptions::default()),
        Err(LogError::Corrupt(_))
    ));
}

#[test]
fn concurrent_readers_see_a_gap_free_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), buffered());
    let total = 3000u64;
    let writer = {
        let log = log.clone();
        thread::spawn(move || {
            while log.last_seq() < total {
                append_n(&log, 1 + (log.last_seq() % 13) as usize, 300, T0);
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            thread::spawn(move || {
                let mut next = 1;
                while next <= total {
                    let bound = log.last_seq();
                    let page = log.read_from(next, 64, 1 << 16).unwrap();
                    for (seq, f) in &page {
                        assert_eq!(*seq, next);
                        assert_eq!(*f, frame(*seq, 300));
                        next += 1;
                    }
                    assert!(next - 1 <= log.last_seq().max(bound));
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
}

// ---------------------------------------------------------------------------
// kill -9 of a writing process

/// Set in the child process to the data directory; selects writer mode.
const CRASH_CHILD_ENV: &str = "ATRELAY_LOG_TEST_CRASH_DIR";
const CRASH_HOST: &str = "crash.example";

fn crash_frame_len(seq: u64) -> usize {
    (seq as usize * 131) % 4000
}

/// Not a test on its own: in the child process (env var set) it appends
/// batches with Fsync forever (bounded: 60 s, 200,000 batches), printing
/// `COMMITTED <seq>` after each append returns, until the parent kills it.
/// Each batch also moves the host cursor to its last seq and updates an
/// account, so the parent can check that state and events commit together.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    use std::io::Write;
    let log = EventLog::open(Path::new(&dir), LogOptions::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = std::io::stdout().lock();
    for i in 0..200_000u64 {
        if Instant::now() > deadline {
            break;
        }
        let first = log.last_seq() + 1;
        let n = 1 + i % 9;
        let evs: Vec<LogEvent> = (first..first + n)
            .map(|seq| LogEvent {
                seq,
                received_micros: T0 + seq,
                frame: frame(seq, crash_frame_len(seq)),
            })
            .collect();
        let last = first + n - 1;
        let mut host = HostState::new(T0);
        host.cursor = last;
        let mut acct = AccountState::new(CRASH_HOST);
        acct.rev = Some(format!("{last:013}"));
        log.append(&AppendBatch {
            events: evs,
            accounts: vec![(format!("did:plc:{}", last % 5), Some(acct))],
            hosts: vec![(CRASH_HOST.into(), host)],
        })
        .unwrap();
        writeln!(out, "COMMITTED {last}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    if std::env::var_os(CRASH_CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut prev_last = 0;
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(pos) = line.find("COMMITTED ") {
                    let seq: u64 = line[pos + 10..].trim().parse().unwrap();
                    if tx.send(seq).is_err() {
                        break;
                    }
                }
            }
        });

        // Let it commit a varying number of batches, then SIGKILL it mid-stream.
        let want = 15 + round * 20;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut reported = Vec::new();
        while reported.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(seq) => reported.push(seq),
                Err(_) => break,
            }
        }
        // Vary where in the append loop the kill lands.
        thread::sleep(Duration::from_millis(round as u64 * 7));
        child.kill().unwrap(); // SIGKILL on unix
        let status = child.wait().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "child was not killed: {status}");
        }
        reader.join().unwrap();
        // Lines written before the kill are acknowledged commits too.
        reported.extend(rx.try_iter());
        assert!(
            !reported.is_empty(),
            "round {round}: the child reported no commit"
        );
        let last_reported = *reported.last().unwrap();
        assert!(last_reported > prev_last);

        let log = open(dir.path(), LogOptions::default());
        assert!(
            log.last_seq() >= last_reported,
            "round {round}: last_seq {} < acknowledged {last_reported}",
            log.last_seq()
        );
        assert_eq!(log.oldest_seq(), Some(1));
        let all = assert_contiguous(&log);
        assert_eq!(all.len() as u64, log.last_seq());
        for seq in &reported {
            let (s, f) = &all[*seq as usize - 1];
            assert_eq!(*s, *seq);
            assert_eq!(f.len(), crash_frame_len(*seq));
        }
        // The host cursor was committed with the newest batch, not before or after.
        let host = log.get_host(CRASH_HOST).unwrap().unwrap();
        assert_eq!(host.cursor, log.last_seq());
        let acct = log
            .get_account(&format!("did:plc:{}", log.last_seq() % 5))
            .unwrap()
            .unwrap();
        assert_eq!(acct.rev, Some(format!("{:013}", log.last_seq())));
        prev_last = log.last_seq();
    }
}

// ---------------------------------------------------------------------------
// file descriptors exhausted mid-write

/// Set in the child process to the data directory; selects the writer that
/// runs out of descriptors. `setrlimit` is process-wide, so this runs in a
/// process of its own, never beside other tests.
const EMFILE_CHILD_ENV: &str = "ATRELAY_LOG_TEST_EMFILE_DIR";

/// The process's open-file limits `(soft, hard)`.
fn nofile_limit() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

fn set_soft_nofile(soft: u64) {
    let (_, hard) = nofile_limit();
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

/// The lowest descriptor number not in use: with the soft limit there, the
/// process can open nothing more until something is closed or the limit
/// rises.
fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64
}

/// Not a test on its own: in the child process (env var set), a writer
/// thread appends 1,200 events of 16 KiB (1 MiB memtables, so memtable
/// switches and flushes, which need new files, happen all along) through
/// [`EventLog::append_retrying`], while the main thread takes every
/// descriptor away once the writer has written a few batches, keeps them
/// away until the writer has failed and retried for a second, then gives
/// them back. Prints `EMFILE_OK` when every event is in the log exactly
/// once, in order, also after a reopen.
#[test]
fn emfile_writer_child() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let Some(dir) = std::env::var_os(EMFILE_CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let opts = LogOptions {
        memory: atrelay::log::LogMemory {
            memtable_bytes: 1 << 20,
            block_cache_bytes: 8 << 20,
        },
        ..LogOptions::default()
    };
    const BATCHES: u64 = 300;
    const PER_BATCH: u64 = 4;
    const LEN: usize = 16 << 10;
    let log = EventLog::open(&dir, opts.clone()).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stalled = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, written, failures, stalled) = (
            log.clone(),
            written.clone(),
            failures.clone(),
            stalled.clone(),
        );
        thread::spawn(move || {
            for b in 0..BATCHES {
                let first = b * PER_BATCH + 1;
                let batch = AppendBatch {
                    events: events(first, &[LEN; PER_BATCH as usize], T0 + first),
                    ..AppendBatch::default()
                };
                // `give_up` is asked after every failed attempt.
                log.append_retrying(&batch, |for_how_long| {
                    failures.fetch_add(1, Ordering::Relaxed);
                    stalled.store(true, Ordering::Release);
                    for_how_long > Duration::from_secs(60)
                })
                .expect("append_retrying gave up or hit a fatal error");
                written.store(b + 1, Ordering::Release);
            }
        })
    };
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(1));
        }
    };
    wait_for("the first batches", &|| {
        written.load(Ordering::Acquire) >= 20
    });

    let (soft, _) = nofile_limit();
    set_soft_nofile(lowest_free_fd());
    let exhausted_at = written.load(Ordering::Acquire);
    wait_for("a failed append", &|| stalled.load(Ordering::Acquire));
    // Retries (and reopen attempts) fail for a while.
    thread::sleep(Duration::from_secs(1));
    let during = written.load(Ordering::Acquire);
    set_soft_nofile(soft);

    writer.join().expect("writer thread");
    let retries = failures.load(Ordering::Relaxed);
    assert!(retries >= 2, "{retries} failed attempts");
    let total = BATCHES * PER_BATCH;
    let check = |log: &EventLog| {
        assert_eq!(log.last_seq(), total);
        let all = log.read_from(0, usize::MAX, usize::MAX).unwrap();
        assert_eq!(all.len() as u64, total, "every event once");
        for (i, (seq, f)) in all.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1, "gap-free");
            assert_eq!(f, &frame(*seq, LEN), "frame {seq} intact");
        }
    };
    check(&log);
    drop(log);
    check(&EventLog::open(&dir, opts).unwrap());
    println!(
        "EMFILE_OK failed_attempts={retries} batches_before={exhausted_at} batches_during={during}"
    );
}

#[test]
fn the_writer_survives_descriptor_exhaustion() {
    if std::env::var_os(EMFILE_CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "emfile_writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD_ENV, dir.path())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the writer child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("EMFILE_OK"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!(
        "{} in {:?}",
        stdout
            .lines()
            .find(|l| l.contains("EMFILE_OK"))
            .unwrap_or_default(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// retention

#[test]
fn retention_by_age_removes_only_the_old_range() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        durability: Durability::Buffered,
        retention_max_age: Some(Duration::from_secs(3600)),
        retention_max_bytes: None,
        ..LogOptions::default()
    };
    let log = open(dir.path(), opts.clone());
    append_n(&log, 40, 500, T0); // 1..=40: old
    append_n(&log, 30, 500, T0 + HOUR / 2); // 41..=70: old
    append_n(&log, 30, 500, T0 + 3 * HOUR); // 71..=100: inside the window
    let now = T0 + 3 * HOUR + HOUR / 2;
    let before = log.approximate_events_bytes();

    let report = log.enforce_retention(now).unwrap();
    assert_eq!(report.removed, 70);
    assert_eq!(report.oldest_seq, Some(71));
    assert_eq!(report.removed_bytes, 70 * 516);
    assert_eq!(log.oldest_seq(), Some(71));
    assert_eq!(log.last_seq(), 100);
    assert_eq!(log.approximate_events_bytes(), before - 70 * 516);
    assert_eq!(log.event_time(70).unwrap(), None);
    assert_eq!(log.event_time(71).unwrap(), Some(T0 + 3 * HOUR));
    // Reads from an older cursor start at the oldest retained event.
    assert_eq!(log.read_from(1, 5, usize::MAX).unwrap()[0].0, 71);
    assert_eq!(log.read_from(50, 1, usize::MAX).unwrap()[0].0, 71);
    assert_contiguous(&log);

    // Nothing more to do; the state survives a reopen and appends continue.
    assert_eq!(log.enforce_retention(now).unwrap().removed, 0);
    drop(log);
    let log = open(dir.path(), opts);
    assert_eq!((log.oldest_seq(), log.last_seq()), (Some(71), 100));
    assert_eq!(log.approximate_events_bytes(), before - 70 * 516);
    append_n(&log, 5, 500, now);
    assert_eq!(log.last_seq(), 105);
    assert_contiguous(&log);

    // Everything is old now, but the newest segment (with the newest event) stays.
    let report = log.enforce_retention(now + 10 * HOUR).unwrap();
    assert_eq!(report.oldest_seq, Some(101));
    assert_eq!(log.read_from(0, 100, usize::MAX).unwrap().len(), 5);
}

#[test]
fn retention_by_size_keeps_the_log_under_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let max: u64 = 256 << 10;
    let opts = LogOptions {
        durability: Durability::Buffered,
        retention_max_age: None,
        retention_max_bytes: Some(max),
        ..LogOptions::default()
    };
    let log = open(dir.path(), opts);
    for round in 0..100 {
        append_n(&log, 20, 1000 + round, T0 + round as u64);
        log.enforce_retention(T0 + HOUR).unwrap();
        let size = log.approximate_events_bytes();
        assert!(size <= max, "round {round}: {size} > {max}");
        // Segments are 1/16 of the bound, so at most one segment plus one event less.
        if round > 20 {
            assert!(
                size >= max - max / 16 - 2200,
                "round {round}: removed too much ({size})"
            );
        }
        assert_contiguous(&log);
    }
    assert_eq!(log.last_seq(), 2000);
    let oldest = log.oldest_seq().unwrap();
    assert!(oldest > 1700, "oldest {oldest}");
    assert_eq!(log.read_from(1, 1, usize::MAX).unwrap()[0].0, oldest);

    // The space is actually reclaimed on disk (range tombstone + compaction).
    log.flush().unwrap();
    log.enforce_retention(T0 + HOUR).unwrap();
    let sst: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "sst"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        sst < 4 * max,
        "{sst} bytes of SST files for a {max}-byte log"
    );
}

#[test]
fn retention_never_removes_the_newest_event() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        durability: Durability::Buffered,
        retention_max_age: Some(Duration::from_secs(1)),
        retention_max_bytes: Some(1),
        ..LogOptions::default()
    };
    let log = open(dir.path(), opts.clone());
    assert_eq!(log.enforce_retention(T0).unwrap().oldest_seq, None);
    for i in 0..10 {
        append_n(&log, 1, 10_000, T0 + i * HOUR);
    }
    let report = log.enforce_retention(T0 + 100 * HOUR).unwrap();
    assert_eq!(report.removed, 9);
    assert_eq!(report.oldest_seq, Some(10));
    assert_eq!(log.read_from(0, 10, usize::MAX).unwrap().len(), 1);
    drop(log);
    let log = open(dir.path(), opts);
    assert_eq!((log.oldest_seq(), log.last_seq()), (Some(10), 10));
    append_n(&log, 1, 10, T0 + 101 * HOUR);
    assert_eq!(log.last_seq(), 11);
}

#[test]
fn no_retention_bounds_means_nothing_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        durability: Durability::Buffered,
        retention_max_age: None,
        retention_max_bytes: None,
        ..LogOptions::default()
    };
    let log = open(dir.path(), opts);
    for i in 0..5 {
        append_n(&log, 10, 100_000, T0 + i * 100 * HOUR);
    }
    let report = log.enforce_retention(u64::MAX).unwrap();
    assert_eq!(report.removed, 0);
    assert_eq!(report.oldest_seq, Some(1));
}

// ---------------------------------------------------------------------------
// property

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random batch shapes: reading from 1 returns exactly the appended
    /// frames in order, in one read and page by page, before and after reopen.
    #[test]
    fn read_returns_exactly_what_was_appended(
        batches in prop::collection::vec(prop::collection::vec(0usize..3000, 1..25), 1..12),
        page in 1usize..40,
        page_bytes in 1usize..20_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), buffered());
        let mut want = Vec::new();
        for lens in &batches {
            let evs = events(log.last_seq() + 1, lens, T0);
            want.extend(evs.iter().map(|e| (e.seq, e.frame.clone())));
            log.append(&AppendBatch { events: evs, ..AppendBatch::default() }).unwrap();
        }
        prop_assert_eq!(log.last_seq(), want.len() as u64);
        prop_assert_eq!(&log.read_from(1, usize::MAX, usize::MAX).unwrap(), &want);

        let mut paged = Vec::new();
        let mut next = 1;
        loop {
            let p = log.read_from(next, page, page_bytes).unwrap();
            let Some(&(last, _)) = p.last() else { break };
            prop_assert!(p.len() <= page);
            prop_assert!(p.len() == 1 || p.iter().map(|e| e.1.len()).sum::<usize>() <= page_bytes);
            next = last + 1;
            paged.extend(p);
        }
        prop_assert_eq!(&paged, &want);

        drop(log);
        let log = open(dir.path(), buffered());
        prop_assert_eq!(&log.read_from(1, usize::MAX, usize::MAX).unwrap(), &want);
    }
}
