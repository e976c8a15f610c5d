//! The fan-out tier: `atrelay serve --upstream` following a relay (or a
//! mirror, or a hostile fake upstream) and serving the same frames at the
//! same seqs, resuming after `kill -9`, carrying seq gaps through, dropping
//! what it cannot store, and passing sync queries through. Real sockets on
//! 127.0.0.1, real RocksDB in temp dirs, real signed events; bounded in time.

use std::time::Duration;

use atrelay::config::RelayConfig;
use atrelay::log::Durability;
use atrelay::node::{Mirror, Relay};
use atrelay::wire::frame::{Account, Event, Info};
use bytes::Bytes;
use serde_json::Value;

use crate::binary::RelayProcess;
use crate::harness::{Subscriber, TestPds};
use crate::pipeline::Net;

/// A mirror's config: `upstream` at `addr`, its own data dir, and the whole
/// upstream window on the first start when `backfill`.
fn mirror_config(
    upstream: std::net::SocketAddr,
    dir: &tempfile::TempDir,
    backfill: bool,
) -> RelayConfig {
    let mut cfg = RelayConfig::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.metrics_listen = String::new();
    cfg.server.data_dir = dir.path().to_owned();
    cfg.log.durability = Durability::Buffered;
    cfg.mirror.upstream = format!("ws://{upstream}");
    cfg.mirror.backfill = backfill;
    cfg.mirror.max_backoff_secs = 1;
    cfg
}

/// Waits until `mirror`'s log reaches `seq`.
async fn until_head(mirror: &Mirror, seq: u64) {
    while mirror.log.last_seq() < seq {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn seq_of(frame: &[u8]) -> u64 {
    Event::decode(frame).unwrap().seq().unwrap() as u64
}

/// An `#account` frame with `seq`, as an upstream relay would send it.
fn account_frame(seq: u64) -> Bytes {
    let mut out = Vec::new();
    Event::Account(Account {
        seq: seq as i64,
        did: "did:plc:abcdefghijklmnopqrstuvwx",
        time: "2024-05-01T12:00:00.000Z",
        active: true,
        status: None,
    })
    .encode(&mut out);
    Bytes::from(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_serves_the_relays_frames_at_the_relays_seqs() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut alice = net.account();
        let mut bob = net.account();
        for i in 0..5 {
            net.pds.emit_commit(&alice.post(&format!("before {i}")));
            net.pds.emit_commit(&bob.post(&format!("before {i}")));
        }
        let mut relay_live = Subscriber::connect(relay.addr, Some(0)).await;
        relay_live.take(10).await;

        // Started after the relay had 10 events: backfill from cursor 0.
        let dir = tempfile::tempdir().unwrap();
        let mirror = Mirror::start(&mirror_config(relay.addr, &dir, true))
            .await
            .unwrap();
        until_head(&mirror, 10).await;
        let mut mirror_live = Subscriber::connect(mirror.addr, None).await;
        for i in 0..5 {
            net.pds.emit_commit(&alice.post(&format!("live {i}")));
        }
        let relay_frames = relay_live.take(5).await;
        assert_eq!(
            mirror_live.take(5).await,
            relay_frames,
            "live: the relay's frames, byte for byte"
        );
        let mut relay_all = Subscriber::connect(relay.addr, Some(0)).await;
        let mut mirror_all = Subscriber::connect(mirror.addr, Some(0)).await;
        let all = relay_all.take(15).await;
        assert_eq!(mirror_all.take(15).await, all, "cursor 0: the same 15 frames");
        let seqs: Vec<u64> = all.iter().map(|f| seq_of(f)).collect();
        assert_eq!(seqs, (1..=15).collect::<Vec<_>>(), "the relay's seqs, unchanged");

        // One cursor, either server: strictly after it.
        let mut relay_from = Subscriber::connect(relay.addr, Some(12)).await;
        let mut mirror_from = Subscriber::connect(mirror.addr, Some(12)).await;
        assert_eq!(mirror_from.take(3).await, relay_from.take(3).await);

        // FutureCursor: the same error frame from both, then close.
        let mut relay_future = Subscriber::connect(relay.addr, Some(1000)).await;
        let mut mirror_future = Subscriber::connect(mirror.addr, Some(1000)).await;
        let relay_error = relay_future.next(Duration::from_secs(5)).await.unwrap();
        let mirror_error = mirror_future.next(Duration::from_secs(5)).await.unwrap();
        assert!(matches!(Event::decode(&mirror_error).unwrap(), Event::Error(e) if e.error == "FutureCursor"));
        assert_eq!(mirror_error, relay_error, "same FutureCursor frame");
        assert!(mirror_future.next(Duration::from_secs(2)).await.is_none(), "closed after it");

        // `_health` says where the mirror stands.
        let health: Value = reqwest::get(format!("http://{}/xrpc/_health", mirror.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["seq"], 15);
        assert_eq!(health["mirror"]["upstreamSeq"], 15);
        assert_eq!(health["mirror"]["connected"], true);

        mirror.stop().await;
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_mirror_answers_outdated_cursor_like_the_relay() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut alice = net.account();
        for i in 0..4 {
            net.pds.emit_commit(&alice.post(&format!("before {i}")));
        }
        let mut relay_sub = Subscriber::connect(relay.addr, Some(0)).await;
        relay_sub.take(4).await;
        // No backfill: the mirror starts at the relay's live head, so its
        // window begins at seq 5 and cursor 1 is older than it.
        let dir = tempfile::tempdir().unwrap();
        let mirror = Mirror::start(&mirror_config(relay.addr, &dir, false))
            .await
            .unwrap();
        while !mirror.follower.connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..3 {
            net.pds.emit_commit(&alice.post(&format!("after {i}")));
        }
        let relay_frames = relay_sub.take(3).await;
        until_head(&mirror, 7).await;
        let mut outdated = Subscriber::connect(mirror.addr, Some(1)).await;
        let first = outdated.next(Duration::from_secs(5)).await.unwrap();
        match Event::decode(&first).unwrap() {
            Event::Info(i) => assert_eq!(i.name, Info::OUTDATED_CURSOR),
            other => panic!("expected #info OutdatedCursor, got {other:?}"),
        }
        assert_eq!(
            outdated.take(3).await,
            relay_frames,
            "then everything from the mirror's oldest event"
        );
        mirror.stop().await;
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_of_a_mirror_serves_the_same_stream() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = Mirror::start(&mirror_config(relay.addr, &dir1, true))
            .await
            .unwrap();
        let second = Mirror::start(&mirror_config(first.addr, &dir2, true))
            .await
            .unwrap();
        let mut alice = net.account();
        for i in 0..8 {
            net.pds.emit_commit(&alice.post(&format!("post {i}")));
        }
        let relay_frames = Subscriber::connect(relay.addr, Some(0)).await.take(8).await;
        until_head(&second, 8).await;
        assert_eq!(
            Subscriber::connect(second.addr, Some(0))
                .await
                .take(8)
                .await,
            relay_frames,
            "two hops down, the same bytes at the same seqs"
        );
        // The second mirror's queries reach the relay through the first.
        let via_two = reqwest::get(format!(
            "http://{}/xrpc/com.atproto.sync.listHosts",
            second.addr
        ))
        .await
        .unwrap();
        assert_eq!(via_two.status(), 200);
        let hosts: Value = via_two.json().await.unwrap();
        assert_eq!(hosts["hosts"][0]["hostname"], net.pds.hostname());
        second.stop().await;
        first.stop().await;
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_gaps_are_carried_and_garbage_is_dropped_and_counted() {
    tokio::time::timeout(Duration::from_secs(90), async {
        // A fake upstream relay whose seqs skip, and which sends garbage.
        let upstream = TestPds::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mirror = RelayProcess::spawn_mirror(
            &format!("ws://{}", upstream.addr),
            dir.path(),
            true,
            &[
                ("ATRELAY_MIRROR_BACKFILL", "true"),
                ("ATRELAY_FANOUT_RING_CAPACITY", "16"),
            ],
        )
        .await;
        let mut live = Subscriber::connect(mirror.addr, None).await;
        let mut info = Vec::new();
        Event::Info(Info {
            name: "Hello",
            message: Some("not stored"),
        })
        .encode(&mut info);
        // The `emit_raw` seq only orders the fake upstream's replay.
        let script: Vec<(u64, Bytes)> = vec![
            (5, account_frame(5)),
            (6, Bytes::from_static(b"\xa2garbage that is not a frame")),
            (6, account_frame(6)),
            (7, Bytes::from(info)),
            (8, Bytes::from(vec![0xa2; 5_000_001])), // over the 5 MB limit
            (100, account_frame(100)),               // a gap
            (101, account_frame(6)),                 // a seq going back
            (101, account_frame(101)),
            (5000, account_frame(5000)), // a gap wider than the ring
            (5001, account_frame(5001)),
        ];
        for (seq, frame) in script {
            upstream.emit_raw(seq, frame);
        }
        let want: Vec<Bytes> = [5, 6, 100, 101, 5000, 5001]
            .into_iter()
            .map(account_frame)
            .collect();
        assert_eq!(
            live.take(6).await,
            want,
            "live: every event, gaps carried through"
        );
        assert_eq!(
            Subscriber::connect(mirror.addr, Some(0))
                .await
                .take(6)
                .await,
            want,
            "replay: the same"
        );
        // A cursor inside a gap: strictly after it.
        assert_eq!(
            Subscriber::connect(mirror.addr, Some(50))
                .await
                .take(4)
                .await,
            want[2..].to_vec()
        );
        assert_eq!(
            Subscriber::connect(mirror.addr, Some(101))
                .await
                .take(2)
                .await,
            want[4..].to_vec()
        );
        // Still going after all that.
        upstream.emit_raw(5002, account_frame(5002));
        assert_eq!(live.take(1).await, vec![account_frame(5002)]);
        let scrape = mirror
            .scrape_until(|s| s.value("atrelay_mirror_head_seq", &[]) == 5002.0)
            .await;
        let dropped = |reason: &str| {
            scrape.value("atrelay_mirror_frames_dropped_total", &[("reason", reason)])
        };
        assert_eq!(dropped("malformed"), 1.0);
        assert_eq!(dropped("oversize"), 1.0);
        assert_eq!(dropped("non_increasing"), 1.0);
        assert_eq!(scrape.value("atrelay_mirror_upstream_seq", &[]), 5002.0);
        assert_eq!(scrape.value("atrelay_mirror_events_total", &[]), 7.0);
        assert_eq!(
            scrape.value(
                "atrelay_mirror_upstream_notices_total",
                &[("name", "other_info")]
            ),
            1.0
        );
        assert!(scrape.value("atrelay_mirror_lag_seconds", &[]) > 0.0);
        assert_eq!(scrape.value("atrelay_mirror_upstream_connected", &[]), 1.0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_mirror_resumes_without_gap_or_duplicate() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut accounts: Vec<_> = (0..4).map(|_| net.account()).collect();
        for round in 0..150 {
            for a in accounts.iter_mut() {
                net.pds.emit_commit(&a.post(&format!("round {round}")));
            }
        }
        let total = 600;
        let dir = tempfile::tempdir().unwrap();
        let upstream = format!("ws://{}", relay.addr);
        let backfill = [("ATRELAY_MIRROR_BACKFILL", "true")];
        let mut mirror = RelayProcess::spawn_mirror(&upstream, dir.path(), false, &backfill).await;
        let mut sub = Subscriber::connect(mirror.addr, Some(0)).await;
        let seen_before = sub.take(total / 10).await;
        mirror.child.0.kill().unwrap(); // SIGKILL, while the relay still ingests
        assert!(!mirror.child.0.wait().unwrap().success());
        drop(mirror);

        let mirror = RelayProcess::spawn_mirror(&upstream, dir.path(), false, &backfill).await;
        let relay_all = Subscriber::connect(relay.addr, Some(0))
            .await
            .take(total)
            .await;
        let mirror_all = Subscriber::connect(mirror.addr, Some(0))
            .await
            .take(total)
            .await;
        assert_eq!(
            seen_before[..],
            relay_all[..total / 10],
            "what was served before the crash"
        );
        assert_eq!(
            mirror_all, relay_all,
            "every frame once, in order, byte for byte"
        );
        let mut extra = Subscriber::connect(mirror.addr, Some(total as u64)).await;
        assert!(
            extra.next(Duration::from_millis(500)).await.is_none(),
            "nothing beyond"
        );
        drop(mirror);
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_pass_through_to_the_upstream() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut alice = net.account();
        net.pds.emit_commit(&alice.post("hello"));
        Subscriber::connect(relay.addr, Some(0)).await.take(1).await;
        let dir = tempfile::tempdir().unwrap();
        let mirror = Mirror::start(&mirror_config(relay.addr, &dir, true))
            .await
            .unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let both = |path: String| {
            let client = client.clone();
            let (relay, mirror) = (relay.addr, mirror.addr);
            async move {
                let mut out = Vec::new();
                for addr in [relay, mirror] {
                    let res = client
                        .get(format!("http://{addr}{path}"))
                        .send()
                        .await
                        .unwrap();
                    let status = res.status().as_u16();
                    let location = res.headers().get("location").cloned();
                    out.push((status, location, res.text().await.unwrap()));
                }
                let mirror = out.pop().unwrap();
                (out.pop().unwrap(), mirror)
            }
        };
        for path in [
            "/xrpc/com.atproto.sync.listHosts".to_owned(),
            format!("/xrpc/com.atproto.sync.getRepoStatus?did={}", alice.did),
            "/xrpc/com.atproto.sync.getRepoStatus?did=did:plc:nobodyhereatall23456".to_owned(),
            "/xrpc/com.atproto.sync.getRepoStatus".to_owned(),
            format!("/xrpc/com.atproto.sync.getLatestCommit?did={}", alice.did),
            "/xrpc/com.atproto.sync.listRepos?limit=5".to_owned(),
            format!("/xrpc/com.atproto.sync.getRepo?did={}", alice.did),
            format!(
                "/xrpc/com.atproto.sync.getHostStatus?hostname={}",
                net.pds.hostname()
            ),
        ] {
            let (from_relay, from_mirror) = both(path.clone()).await;
            assert_eq!(
                from_mirror, from_relay,
                "{path}: same status, redirect and body"
            );
        }
        // requestCrawl: status and body passed back (here the relay
        // refuses a malformed hostname).
        let crawl = |addr: std::net::SocketAddr| {
            let client = client.clone();
            async move {
                let res = client
                    .post(format!("http://{addr}/xrpc/com.atproto.sync.requestCrawl"))
                    .json(&serde_json::json!({"hostname": "not a hostname!"}))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }
        };
        let from_relay = crawl(relay.addr).await;
        assert_eq!(from_relay.0, 400);
        assert_eq!(crawl(mirror.addr).await, from_relay);
        // The admin API is the upstream's business.
        let admin = client
            .get(format!("http://{}/admin/hosts", mirror.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), 501);
        let body: Value = admin.json().await.unwrap();
        assert_eq!(body["error"], "NotAvailableOnMirror");
        // The loop guard mark, as on the relay.
        let health = client
            .get(format!("http://{}/xrpc/_health", mirror.addr))
            .send()
            .await
            .unwrap();
        let server = health.headers()["server"].to_str().unwrap().to_owned();
        assert!(server.contains("atproto-relay"), "{server}");
        mirror.stop().await;
        // The upstream gone: 502, not a hang.
        let dir = tempfile::tempdir().unwrap();
        let orphan = Mirror::start(&mirror_config("127.0.0.1:9".parse().unwrap(), &dir, false))
            .await
            .unwrap();
        let res = client
            .get(format!(
                "http://{}/xrpc/com.atproto.sync.listHosts",
                orphan.addr
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 502);
        orphan.stop().await;
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}
