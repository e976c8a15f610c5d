//! Events flow from a PDS through verification to subscribers; invalid ones
//! are dropped while the stream continues.

use std::time::Duration;

use atrelay::config::RelayConfig;
use atrelay::node::Relay;
use atrelay::wire::frame::Event;

use crate::harness::{Subscriber, TestAccount, TestPds, TestPlc};

pub struct Net {
    pub plc: TestPlc,
    pub pds: TestPds,
    pub dir: tempfile::TempDir,
}

impl Net {
    pub async fn start() -> Net {
        Net {
            plc: TestPlc::start().await,
            pds: TestPds::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config(&self) -> RelayConfig {
        let mut cfg = RelayConfig::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.metrics_listen = String::new();
        cfg.server.data_dir = self.dir.path().to_owned();
        cfg.identity.plc_url = self.plc.url.clone();
        cfg.crawl.allow_private_hosts = true;
        cfg.crawl.hosts = vec![self.pds.hostname()];
        cfg.verify.workers = 2;
        cfg
    }

    /// An account hosted on this PDS, registered with the PLC.
    pub fn account(&self) -> TestAccount {
        let a = TestAccount::new();
        self.plc.register(&a.did, &a.key, &self.pds.endpoint());
        a
    }
}

fn decode(frame: &[u8]) -> Event<'_> {
    Event::decode(frame).expect("relay frames decode strictly")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_events_reach_subscribers_in_order() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;

        let mut alice = net.account();
        let mut bob = net.account();
        let mut upstream = Vec::new();
        for i in 0..5 {
            upstream.push(alice.post(&format!("alice {i}")));
            net.pds.emit_commit(upstream.last().unwrap());
            let b = bob.post(&format!("bob {i}"));
            net.pds.emit_commit(&b);
        }
        net.pds.emit_identity(&alice.did);
        net.pds.emit_account(&bob.did, true, None);

        let frames = sub.take(12).await;
        let mut alice_revs = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let ev = decode(frame);
            assert_eq!(
                ev.seq(),
                Some(i as i64 + 1),
                "relay seqs are gap-free from 1"
            );
            if let Event::Commit(c) = &ev {
                if c.repo == alice.did {
                    alice_revs.push(c.rev.to_owned());
                }
            }
        }
        let expected: Vec<String> = upstream.iter().map(|c| c.rev.to_string()).collect();
        assert_eq!(alice_revs, expected, "one DID's commits keep their order");
        // blocks pass through byte-for-byte
        let Event::Commit(first) = decode(&frames[0]) else {
            panic!()
        };
        assert!(first.blocks == &upstream[0].car[..] || first.repo == bob.did);
        assert_eq!(relay.log.last_seq(), 12);
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

/// Each kind of bad event is dropped (and counted against its host) while the
/// valid events around it still arrive, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_dropped_and_the_stream_continues() {
    use atrelay::wire::car::{Car, CarLimits, CarWriter};

    tokio::time::timeout(Duration::from_secs(90), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        let mut valid = Vec::new();

        let c = alice.post("first");
        net.pds.emit_commit(&c);
        valid.push(c.commit);

        // 1. Forged: signed by a key that is not the DID's.
        let mut mallory = alice.impostor();
        net.pds.emit_commit(&mallory.post("forged"));

        // 2. Tampered op: a create claiming another record's CID.
        let t = alice.fork().post("tampered");
        {
            let s = t.frame_strings();
            let mut ev = t.to_frame(&s, 0, crate::harness::TIME);
            ev.ops[0].cid = Some(c.data);
            net.pds.emit(Event::Commit(ev));
        }

        // 3. Missing proof node: the diff without its new MST root.
        let m = alice.fork().post("no proof");
        let thin = {
            let car = Car::parse(&m.car, CarLimits::FIREHOSE).unwrap();
            let mut w = CarWriter::new(car.roots());
            for b in car.blocks() {
                if b.cid != m.data {
                    w.push(&b.cid, b.data);
                }
            }
            w.finish()
        };
        {
            let s = m.frame_strings();
            let mut ev = m.to_frame(&s, 0, crate::harness::TIME);
            ev.blocks = &thin;
            net.pds.emit(Event::Commit(ev));
        }

        // 4. Rev rollback / duplicate: the first commit again.
        net.pds.emit_commit(&c);

        // 5. Wrong host: an account whose document names another PDS.
        let mut elsewhere = TestAccount::new();
        net.plc
            .register(&elsewhere.did, &elsewhere.key, "https://other.example.com");
        net.pds.emit_commit(&elsewhere.post("not hosted here"));

        // 6. Garbage: a sound header and seq, a body that is not a valid
        //    #commit (invalid UTF-8, fields missing).
        {
            let seq = net.pds.next_seq();
            net.pds.emit_raw(seq, crate::harness::garbage_commit(seq));
        }

        // 7. Oversize: a #commit whose blocks exceed 2,000,000 bytes.
        {
            let big = vec![0u8; 2_000_001];
            let s = c.frame_strings();
            let mut ev = c.to_frame(&s, 0, crate::harness::TIME);
            ev.blocks = &big;
            net.pds.emit(Event::Commit(ev));
        }

        // A valid commit after all of that.
        let c2 = alice.post("second");
        net.pds.emit_commit(&c2);
        valid.push(c2.commit);

        // 8. Deactivated account: its commits are dropped until reactivation.
        net.pds.emit_account(&alice.did, false, Some("deactivated"));
        net.pds.emit_commit(&alice.post("while deactivated"));
        net.pds.emit_account(&alice.did, true, None);
        let c3 = alice.post("third");
        net.pds.emit_commit(&c3);
        valid.push(c3.commit);

        let frames = sub.take(5).await;
        let mut commits = Vec::new();
        let mut accounts = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let ev = decode(f);
            assert_eq!(ev.seq(), Some(i as i64 + 1));
            match ev {
                Event::Commit(c) => commits.push(c.commit),
                Event::Account(a) => accounts.push(a.active),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(commits, valid, "only the valid commits, in order");
        assert_eq!(accounts, [false, true]);
        assert!(
            sub.next(Duration::from_millis(500)).await.is_none(),
            "nothing else"
        );
        let host = relay.hosts.get(&net.pds.hostname()).unwrap();
        let dropped = host.dropped.load(std::sync::atomic::Ordering::Relaxed);
        // forged, tampered, thin proof, wrong host, garbage, oversize,
        // while-deactivated (the replayed duplicate is ignored, not counted)
        assert_eq!(dropped, 7, "each invalid event is counted");
        assert_eq!(
            net.pds.connections(),
            1,
            "bad events do not cost the connection"
        );
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

/// A key rotation announced by `#identity`: the commit signed with the new
/// key right behind it is accepted, although it was read while the cached
/// document still named the old key, and the `#identity` itself has used
/// up the DID's forced re-resolution for the next half minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_with_an_identity_event_is_followed_at_once() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        net.pds.emit_commit(&alice.post("old key"));
        sub.take(1).await;

        // Crawling paused, the three events queue upstream, so the crawler
        // reads them in one burst: all dispatched with the cached old key.
        relay.crawlers.set_paused(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.key = atrelay::crypto::PrivateKey::generate(atrelay::crypto::Curve::K256);
        net.plc
            .register(&alice.did, &alice.key, &net.pds.endpoint());
        net.pds.emit_identity(&alice.did);
        let rotated = alice.post("new key");
        net.pds.emit_commit(&rotated);
        net.pds.emit_commit(&alice.post("new key again"));
        relay.crawlers.set_paused(false);

        let frames = sub.take(3).await;
        assert!(matches!(decode(&frames[0]), Event::Identity(_)));
        for f in &frames[1..] {
            let Event::Commit(c) = decode(f) else {
                panic!("expected the commits")
            };
            assert_eq!(c.repo, alice.did);
        }
        let Event::Commit(c) = decode(&frames[1]) else {
            panic!()
        };
        assert_eq!(c.commit, rotated.commit);
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}
