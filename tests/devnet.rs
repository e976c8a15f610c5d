//! `atrelay devnet`: the in-process network delivers every event each PDS
//! emitted through the relay's firehose, nothing missing or extra and in
//! each repo's order; and the binary runs, generates traffic and exits 0.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atrelay::devnet::{Devnet, DevnetConfig};
use atrelay::wire::frame::Event;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// What identifies an event across the PDS and the relay (the seqs differ).
fn key(frame: &[u8]) -> Option<(String, String)> {
    let ev = Event::decode(frame).ok()?;
    let did = ev.did()?.to_owned();
    let what = match &ev {
        Event::Commit(c) => format!("commit rev={} cid={}", c.rev, c.commit),
        Event::Identity(_) => "identity".to_owned(),
        Event::Account(a) => format!("account active={} status={:?}", a.active, a.status),
        _ => return None,
    };
    Some((did, what))
}

fn seq(frame: &[u8]) -> i64 {
    match Event::decode(frame).unwrap() {
        Event::Commit(c) => c.seq,
        Event::Identity(i) => i.seq,
        Event::Account(a) => a.seq,
        other => panic!("unexpected relay event {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_delivers_every_pds_event_in_repo_order() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = DevnetConfig::new(dir.path());
        cfg.pds_count = 2;
        cfg.accounts_per_pds = 2;
        let net = Devnet::start(cfg).await.unwrap();
        assert_eq!(net.accounts.len(), 4);

        // From cursor 0: the accounts' creation events are in the relay's
        // log already; the rest arrive live.
        let url = format!("{}?cursor=0", net.firehose_url());
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
        let reader = tokio::spawn(async move {
            let (_, mut read) = ws.split();
            while let Some(Ok(msg)) = read.next().await {
                if let Message::Binary(b) = msg {
                    if tx.send(b).is_err() {
                        return;
                    }
                }
            }
        });

        let mut traffic = net.traffic(20_261_125);
        for i in 0..150 {
            traffic
                .step()
                .await
                .unwrap_or_else(|e| panic!("step {i}: {e}"));
        }
        assert_eq!(traffic.total(), 150);
        assert!(
            traffic.counts().len() >= 6,
            "a varied mix: {:?}",
            traffic.counts()
        );

        // What each PDS emitted, per repo, in order.
        let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut total = 0;
        for server in &net.pds {
            for (_, frame) in server.pds.log().read_from(1, 100_000, 256 << 20).unwrap() {
                let (did, what) = key(&frame).expect("a PDS emits only repo events");
                expected.entry(did).or_default().push(what);
                total += 1;
            }
        }
        assert!(
            total > 150,
            "{total} events for 150 operations plus 4 accounts"
        );

        // What the relay delivered, until it has as many (or time is up).
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seqs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seqs.len() < total {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(frame)) = tokio::time::timeout(left, rx.recv()).await else {
                break;
            };
            let (did, what) = key(&frame).expect("a repo event");
            seqs.push(seq(&frame));
            got.entry(did).or_default().push(what);
        }
        // Nothing extra trickles in afterwards.
        let extra = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(extra.is_err(), "an event beyond the PDSes' ones arrived");

        for (did, want) in &expected {
            let have = got.get(did).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(have, want.as_slice(), "{did}: relay order and content");
        }
        assert_eq!(got.len(), expected.len(), "no repo the PDSes did not emit");
        let want_seqs: Vec<i64> = (1..=total as i64).collect();
        assert_eq!(seqs, want_seqs, "relay seqs are gap-free from 1");
        assert_eq!(net.relay.ring.head(), total as u64);

        reader.abort();
        drop(traffic);
        net.stop().await;
    })
    .await
    .expect("within the deadline");
}

#[test]
fn binary_runs_traffic_and_exits_cleanly() {
    // A private temp dir: the devnet's throwaway data must be gone after.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_atrelay"))
        .args([
            "devnet",
            "--pds",
            "2",
            "--accounts",
            "2",
            "--rate",
            "20",
            "--duration",
            "4",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("atrelay devnet did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("atrelay devnet relay listening on http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/xrpc/com.atproto.sync.subscribeRepos"),
        "{stdout}"
    );
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("atrelay devnet summary: "))
        .unwrap_or_else(|| panic!("no summary in\n{stdout}"));
    let events: u64 = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary {summary:?}"));
    assert!(events > 0, "{summary}");
    assert!(summary.contains(" 0 errors"), "{summary}");
    let head: u64 = summary
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary {summary:?}"));
    assert!(head > events, "the relay sequenced the traffic: {summary}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the temporary data directory is deleted on exit"
    );
}
