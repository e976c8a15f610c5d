//! Per-DID order under many DIDs and hosts: events of one DID leave the relay
//! in the order its host produced them, whatever the verifier sharding does.

use std::collections::HashMap;
use std::time::Duration;

use atrelay::log::HostStatus;
use atrelay::node::Relay;
use atrelay::wire::frame::Event;

use crate::harness::{Subscriber, TestPds};
use crate::pipeline::Net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_did_order_across_hosts_and_shards() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let net = Net::start().await;
        let second = TestPds::start().await;
        let mut cfg = net.config();
        cfg.crawl.hosts.push(second.hostname());
        cfg.verify.workers = 4;
        let relay = Relay::start(&cfg).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;

        let mut accounts = Vec::new();
        for i in 0..12 {
            let a = crate::harness::TestAccount::new();
            let pds = if i % 2 == 0 { &net.pds } else { &second };
            net.plc.register(&a.did, &a.key, &pds.endpoint());
            accounts.push((a, pds.clone()));
        }
        let mut expected: HashMap<String, Vec<String>> = HashMap::new();
        for round in 0..8 {
            for (a, pds) in accounts.iter_mut() {
                let c = a.post(&format!("round {round}"));
                pds.emit_commit(&c);
                expected
                    .entry(a.did.clone())
                    .or_default()
                    .push(c.rev.to_string());
            }
        }
        let total: usize = expected.values().map(Vec::len).sum();
        let mut frames = Vec::with_capacity(total);
        while frames.len() < total {
            match sub.next(Duration::from_secs(10)).await {
                Some(f) => frames.push(f),
                // Say where an event went missing before failing: each
                // host's drop and chain-break counters and its cursor.
                None => panic!(
                    "got {} of {total} frames; hosts: {:?}",
                    frames.len(),
                    relay
                        .hosts
                        .all()
                        .iter()
                        .map(|h| (
                            h.hostname.to_string(),
                            h.dropped.load(std::sync::atomic::Ordering::Relaxed),
                            h.chain_breaks.load(std::sync::atomic::Ordering::Relaxed),
                            h.snapshot().cursor,
                            h.in_flight(),
                        ))
                        .collect::<Vec<_>>()
                ),
            }
        }
        let mut got: HashMap<String, Vec<String>> = HashMap::new();
        for (i, f) in frames.iter().enumerate() {
            let Event::Commit(c) = Event::decode(f).unwrap() else {
                panic!()
            };
            assert_eq!(c.seq, i as i64 + 1);
            got.entry(c.repo.to_owned())
                .or_default()
                .push(c.rev.to_owned());
        }
        assert_eq!(
            got, expected,
            "each DID's commits, all of them, in upstream order"
        );
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

/// An upstream that answers `FutureCursor` has lost events the relay holds:
/// the crawler stops and marks the host offline instead of reconnecting in a
/// loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_future_cursor_stops_the_crawler() {
    use atrelay::wire::frame::ErrorFrame;
    tokio::time::timeout(Duration::from_secs(30), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        net.pds.emit_commit(&alice.post("before"));
        sub.take(1).await;
        let mut frame = Vec::new();
        Event::Error(ErrorFrame {
            error: "FutureCursor",
            message: Some("cursor in the future"),
        })
        .encode(&mut frame);
        net.pds.emit_raw(2, frame.into());
        let host = relay.hosts.get(&net.pds.hostname()).unwrap();
        for _ in 0..50 {
            if host.status() == HostStatus::Offline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(host.status(), HostStatus::Offline);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(net.pds.connections(), 1, "no reconnect loop");
        assert!(relay.crawlers.running().is_empty());
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

/// A connected host that goes quiet is reported `idle`, and `active` again
/// when its events resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hosts_become_idle_and_recover() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let net = Net::start().await;
        let mut cfg = net.config();
        cfg.crawl.idle_after_secs = 1;
        let relay = Relay::start(&cfg).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        net.pds.emit_commit(&alice.post("one"));
        sub.take(1).await;
        let host = relay.hosts.get(&net.pds.hostname()).unwrap();
        assert_eq!(host.status(), HostStatus::Active);
        let wait_for = |want: HostStatus| {
            let host = host.clone();
            async move {
                for _ in 0..60 {
                    if host.status() == want {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            }
        };
        assert!(wait_for(HostStatus::Idle).await, "quiet host becomes idle");
        net.pds.emit_commit(&alice.post("two"));
        sub.take(1).await;
        assert!(
            wait_for(HostStatus::Active).await,
            "events make it active again"
        );
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}
