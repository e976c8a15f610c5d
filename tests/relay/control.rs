//! The control plane end to end: budgets (with an advanced clock instead of
//! waiting an hour), the account limit, allowlist mode and pending requests,
//! bans, takedowns, the global pause, offline hosts coming back, and every
//! admin change surviving a restart.

use std::time::Duration;

use atrelay::config::{CrawlMode, RelayConfig, Secret};
use atrelay::control::Clock;
use atrelay::log::HostStatus;
use atrelay::node::{Relay, StartOptions};
use atrelay::wire::frame::Event;
use serde_json::{json, Value};

use crate::harness::{Subscriber, TestPds};
use crate::pipeline::Net;

const PASSWORD: &str = "correct horse battery staple";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A relay config with the admin API on and no budgets unless a test sets
/// them.
fn config(net: &Net) -> RelayConfig {
    let mut cfg = net.config();
    cfg.admin_password = Some(Secret(PASSWORD.into()));
    cfg.crawl.idle_after_secs = 1;
    cfg.budget = atrelay::config::BudgetConfig::unlimited();
    cfg
}

async fn admin_get(relay: &Relay, path: &str) -> Value {
    let r = client()
        .get(format!("http://{}{path}", relay.addr))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn admin_post(relay: &Relay, path: &str, body: Value) -> Value {
    let r = client()
        .post(format!("http://{}{path}", relay.addr))
        .basic_auth("admin", Some(PASSWORD))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let j: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "POST {path} {body}: {j}");
    j
}

async fn request_crawl(relay: &Relay, hostname: &str) -> (u16, Value) {
    let r = client()
        .post(format!(
            "http://{}/xrpc/com.atproto.sync.requestCrawl",
            relay.addr
        ))
        .json(&json!({ "hostname": hostname }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn repo_status(relay: &Relay, did: &str) -> Value {
    let r = client()
        .get(format!(
            "http://{}/xrpc/com.atproto.sync.getRepoStatus?did={did}",
            relay.addr
        ))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// Polls `check` until it holds, for up to 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn host_status(relay: &Relay, hostname: &str) -> Option<HostStatus> {
    relay.hosts.get(hostname).map(|h| h.status())
}

/// The commit CIDs in `frames`, in order.
fn commits(frames: &[bytes::Bytes]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match Event::decode(f).unwrap() {
            Event::Commit(c) => Some(c.commit.to_string()),
            _ => None,
        })
        .collect()
}

/// A clock just past the top of an hour (so real time cannot roll a budget
/// window during a test), and start options using it.
fn just_past_the_hour() -> (Clock, StartOptions) {
    let clock = Clock::system();
    let hour = 3_600_000_000u64;
    clock.advance(Duration::from_micros(
        hour - clock.now_micros() % hour + 1_000_000,
    ));
    let opts = StartOptions {
        clock: clock.clone(),
        ..StartOptions::default()
    };
    (clock, opts)
}

/// Asserts nothing arrives for a while.
async fn quiet(sub: &mut Subscriber, why: &str) {
    if let Some(f) = sub.next(Duration::from_millis(1200)).await {
        panic!("{why}: got {:?}", Event::decode(&f));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_budget_pauses_the_host_and_resumes_at_the_window_reset() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let mut cfg = config(&net);
        cfg.budget.per_hour = 5;
        let (clock, opts) = just_past_the_hour();
        let relay = Relay::start_with(&cfg, opts).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        let mut upstream = Vec::new();
        for i in 0..12 {
            let c = alice.post(&format!("flood {i}"));
            net.pds.emit_commit(&c);
            upstream.push(c.commit.to_string());
        }
        let host = net.pds.hostname();

        let mut got = sub.take(5).await;
        quiet(&mut sub, "the hourly budget of 5 is spent").await;
        assert_eq!(host_status(&relay, &host), Some(HostStatus::Throttled));
        let hosts = admin_get(&relay, "/admin/hosts").await;
        assert_eq!(hosts["hosts"][0]["budget"]["hour_count"], 5);
        assert!(hosts["hosts"][0]["budget"]["throttled_until_micros"].is_u64());

        // The next hour: five more, then throttled again.
        clock.advance(Duration::from_secs(3600));
        got.extend(sub.take(5).await);
        quiet(&mut sub, "the second hour's budget is spent").await;
        clock.advance(Duration::from_secs(3600));
        got.extend(sub.take(2).await);
        eventually("the host is active again", || {
            matches!(
                host_status(&relay, &host),
                Some(HostStatus::Active | HostStatus::Idle)
            )
        })
        .await;

        assert_eq!(commits(&got), upstream, "every event, once, in order");
        for (i, f) in got.iter().enumerate() {
            assert_eq!(Event::decode(f).unwrap().seq(), Some(i as i64 + 1));
        }
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_limit_throttles_new_accounts_until_a_slot_opens() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let mut cfg = config(&net);
        cfg.budget.accounts = 2;
        let relay = Relay::start(&cfg).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let host = net.pds.hostname();
        let mut a = net.account();
        let mut b = net.account();
        let mut c = net.account();
        let mut d = net.account();

        // Verifier threads decide different DIDs in parallel, so which of
        // several new accounts gets the last slot is a race: fill the slots
        // first.
        net.pds.emit_commit(&a.post("a1"));
        net.pds.emit_commit(&b.post("b1"));
        let first = sub.take(2).await;
        assert_eq!(commits(&first).len(), 2);
        net.pds.emit_commit(&c.post("c1"));
        net.pds.emit_commit(&c.post("c2"));
        quiet(&mut sub, "c is beyond the account limit").await;
        assert_eq!(repo_status(&relay, &c.did).await["error"], "RepoNotFound");
        assert_eq!(relay.hosts.get(&host).unwrap().account_count(), 2);

        // Raising the limit lets c's later events flow.
        admin_post(
            &relay,
            "/admin/hosts/limits",
            json!({ "hostname": host, "accounts": 3 }),
        )
        .await;
        let c3 = c.post("c3");
        net.pds.emit_commit(&c3);
        assert_eq!(commits(&sub.take(1).await), [c3.commit.to_string()]);

        // Full again: d waits until a's deletion frees a slot.
        net.pds.emit_commit(&d.post("d1"));
        quiet(&mut sub, "d is beyond the raised limit").await;
        net.pds.emit_account(&a.did, false, Some("deleted"));
        let deleted = sub.take(1).await;
        assert!(matches!(
            Event::decode(&deleted[0]).unwrap(),
            Event::Account(acc) if !acc.active && acc.status == Some("deleted")
        ));
        let d2 = d.post("d2");
        net.pds.emit_commit(&d2);
        assert_eq!(commits(&sub.take(1).await), [d2.commit.to_string()]);
        assert_eq!(relay.hosts.get(&host).unwrap().account_count(), 3);
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_mode_records_requests_until_the_operator_approves() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let mut cfg = config(&net);
        cfg.crawl.hosts.clear();
        cfg.crawl.mode = CrawlMode::Allowlist;
        let relay = Relay::start(&cfg).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let host = net.pds.hostname();

        for _ in 0..2 {
            let (status, body) = request_crawl(&relay, &host).await;
            assert_eq!(status, 400, "{body}");
            assert!(
                body["message"].as_str().unwrap().contains("allowlist"),
                "{body}"
            );
        }
        assert!(relay.crawlers.running().is_empty());
        let pending = admin_get(&relay, "/admin/pending").await;
        assert_eq!(pending["pending"][0]["hostname"], host.as_str());
        assert_eq!(pending["pending"][0]["count"], 2);

        let mut alice = net.account();
        let c1 = alice.post("before approval");
        net.pds.emit_commit(&c1);
        admin_post(
            &relay,
            "/admin/pending/approve",
            json!({ "hostname": host }),
        )
        .await;
        let c2 = alice.post("after approval");
        net.pds.emit_commit(&c2);
        // A new host is read from the oldest event it retains: both arrive.
        let got = commits(&sub.take(2).await);
        assert_eq!(got, [c1.commit.to_string(), c2.commit.to_string()]);
        let pending = admin_get(&relay, "/admin/pending").await;
        assert_eq!(
            pending["pending"],
            json!([]),
            "approval settles the request"
        );
        // Now listed, the host may ask again (it is known: re-activated).
        assert_eq!(request_crawl(&relay, &host).await.0, 200);
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_bans_and_blocks_stop_crawling_and_lifting_them_resumes_from_the_cursor() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&config(&net)).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let host = net.pds.hostname();
        let mut alice = net.account();
        let c1 = alice.post("1");
        net.pds.emit_commit(&c1);
        sub.take(1).await;

        // A banned suffix is refused with HostBanned, on a label boundary.
        admin_post(
            &relay,
            "/admin/bans/add",
            json!({ "domain": "Evil.Example" }),
        )
        .await;
        let (status, body) = request_crawl(&relay, "pds.evil.example").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("HostBanned")));
        let (_, body) = request_crawl(&relay, "notevil.example").await;
        assert_ne!(body["error"], "HostBanned");

        // Banning the PDS's own address stops it; events wait upstream.
        let banned = admin_post(&relay, "/admin/bans/add", json!({ "domain": "127.0.0.1" })).await;
        assert_eq!(banned["hosts"], json!([host]));
        assert_eq!(host_status(&relay, &host), Some(HostStatus::Banned));
        let (status, body) = request_crawl(&relay, &host).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("HostBanned")));
        let c2 = alice.post("2");
        net.pds.emit_commit(&c2);
        quiet(&mut sub, "the host is banned").await;
        admin_post(
            &relay,
            "/admin/bans/remove",
            json!({ "domain": "127.0.0.1" }),
        )
        .await;
        assert_eq!(commits(&sub.take(1).await), [c2.commit.to_string()]);

        // Blocking one host works the same way.
        admin_post(&relay, "/admin/hosts/block", json!({ "hostname": host })).await;
        assert_eq!(host_status(&relay, &host), Some(HostStatus::Banned));
        let c3 = alice.post("3");
        net.pds.emit_commit(&c3);
        quiet(&mut sub, "the host is blocked").await;
        admin_post(&relay, "/admin/hosts/unblock", json!({ "hostname": host })).await;
        assert_eq!(commits(&sub.take(1).await), [c3.commit.to_string()]);
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takedown_announces_drops_and_reverses() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&config(&net)).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        net.pds.emit_commit(&alice.post("1"));
        sub.take(1).await;

        admin_post(
            &relay,
            "/admin/accounts/takedown",
            json!({ "did": alice.did }),
        )
        .await;
        let ev = sub.take(1).await;
        match Event::decode(&ev[0]).unwrap() {
            Event::Account(a) => {
                assert_eq!(a.did, alice.did);
                assert!(!a.active);
                assert_eq!(a.status, Some("takendown"));
            }
            other => panic!("expected #account, got {other:?}"),
        }
        let status = repo_status(&relay, &alice.did).await;
        assert_eq!(
            (status["active"].as_bool(), status["status"].as_str()),
            (Some(false), Some("takendown"))
        );
        net.pds.emit_commit(&alice.post("2"));
        quiet(&mut sub, "the account is taken down").await;
        // The upstream saying "active" does not override the takedown.
        net.pds.emit_account(&alice.did, true, None);
        match Event::decode(&sub.take(1).await[0]).unwrap() {
            Event::Account(a) => assert_eq!((a.active, a.status), (false, Some("takendown"))),
            other => panic!("{other:?}"),
        }

        admin_post(
            &relay,
            "/admin/accounts/reverse-takedown",
            json!({ "did": alice.did }),
        )
        .await;
        match Event::decode(&sub.take(1).await[0]).unwrap() {
            Event::Account(a) => assert_eq!((a.active, a.status), (true, None)),
            other => panic!("{other:?}"),
        }
        let c3 = alice.post("3");
        net.pds.emit_commit(&c3);
        assert_eq!(commits(&sub.take(1).await), [c3.commit.to_string()]);
        assert_eq!(repo_status(&relay, &alice.did).await["active"], true);
        // Bad input is refused.
        let r = client()
            .post(format!("http://{}/admin/accounts/takedown", relay.addr))
            .basic_auth("admin", Some(PASSWORD))
            .json(&json!({ "did": "not a did" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_survive_a_restart() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let net = Net::start().await;
        let cfg = config(&net);
        let host = net.pds.hostname();
        let mut alice = net.account();
        let mut bob = net.account();
        {
            let relay = Relay::start(&cfg).await.unwrap();
            let mut sub = Subscriber::connect(relay.addr, None).await;
            net.pds.emit_commit(&alice.post("a1"));
            net.pds.emit_commit(&bob.post("b1"));
            sub.take(2).await;
            admin_post(&relay, "/admin/crawl/mode", json!({ "mode": "allowlist" })).await;
            admin_post(
                &relay,
                "/admin/allowlist/add",
                json!({ "entry": "good.example" }),
            )
            .await;
            admin_post(
                &relay,
                "/admin/bans/add",
                json!({ "domain": "evil.example" }),
            )
            .await;
            admin_post(
                &relay,
                "/admin/hosts/limits",
                json!({ "hostname": host, "accounts": 7, "per_hour": 99 }),
            )
            .await;
            admin_post(
                &relay,
                "/admin/hosts/block",
                json!({ "hostname": "blocked.example" }),
            )
            .await;
            admin_post(
                &relay,
                "/admin/accounts/takedown",
                json!({ "did": alice.did }),
            )
            .await;
            sub.take(1).await;
            admin_post(&relay, "/admin/crawl/pause", json!({})).await;
            // Replay the upstream from seq 1: a1 and b1 come again and are
            // dropped as duplicates by the rev check.
            let reset = admin_post(
                &relay,
                "/admin/hosts/reset-cursor",
                json!({ "hostname": host, "cursor": 1 }),
            )
            .await;
            assert_eq!(reset["cursor"], 1);
            relay.stop().await;
        }

        let relay = Relay::start(&cfg).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let policy = admin_get(&relay, "/admin/crawl").await;
        assert_eq!(policy["mode"], "allowlist");
        assert_eq!(policy["paused"], true);
        assert_eq!(policy["allowlist"], json!(["good.example"]));
        assert_eq!(policy["bans"], json!(["evil.example"]));
        assert_eq!(policy["limitOverrides"][&host]["accounts"], 7);
        let hosts = admin_get(&relay, "/admin/hosts").await;
        let find = |name: &str| {
            hosts["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["hostname"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} listed"))
        };
        assert_eq!(find("blocked.example")["status"], "banned");
        let pds = find(&host);
        assert_eq!(pds["budget"]["limits"]["accounts"], 7);
        assert_eq!(pds["budget"]["limits"]["per_hour"], 99);
        assert_eq!(pds["accountCount"], 2);
        assert_eq!(pds["cursor"], 1, "the reset cursor was persisted");
        assert_eq!(repo_status(&relay, &alice.did).await["status"], "takendown");

        // Paused across the restart: nothing is read until resumed, then
        // bob's commit flows and alice's (taken down) is dropped.
        net.pds.emit_commit(&alice.post("a2"));
        let b2 = bob.post("b2");
        net.pds.emit_commit(&b2);
        quiet(&mut sub, "crawling is paused").await;
        admin_post(&relay, "/admin/crawl/resume", json!({})).await;
        assert_eq!(commits(&sub.take(1).await), [b2.commit.to_string()]);
        quiet(&mut sub, "alice is taken down").await;
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_host_is_picked_up_again_when_it_returns() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        // A port with nothing behind it yet.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut cfg = config(&net);
        cfg.crawl.hosts = vec![addr.to_string()];
        cfg.crawl.max_backoff_secs = 1;
        cfg.crawl.offline_backoff_secs = 1;
        let relay = Relay::start(&cfg).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        eventually("the host is marked offline", || {
            host_status(&relay, &addr.to_string()) == Some(HostStatus::Offline)
        })
        .await;

        let pds = TestPds::start_on(addr).await;
        let mut alice = crate::harness::TestAccount::new();
        net.plc.register(&alice.did, &alice.key, &pds.endpoint());
        eventually("the crawler reconnects by itself", || pds.connections() > 0).await;
        let c1 = alice.post("back");
        pds.emit_commit(&c1);
        assert_eq!(commits(&sub.take(1).await), [c1.commit.to_string()]);
        assert_eq!(
            host_status(&relay, &addr.to_string()),
            Some(HostStatus::Active)
        );
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_stays_spent_across_a_restart() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let mut cfg = config(&net);
        cfg.budget.per_hour = 3;
        let (clock, opts) = just_past_the_hour();
        let mut alice = net.account();
        let mut upstream = Vec::new();
        let mut got = {
            let relay = Relay::start_with(&cfg, opts.clone()).await.unwrap();
            let mut sub = Subscriber::connect(relay.addr, None).await;
            for i in 0..5 {
                let c = alice.post(&format!("{i}"));
                net.pds.emit_commit(&c);
                upstream.push(c.commit.to_string());
            }
            let got = sub.take(3).await;
            quiet(&mut sub, "budget of 3 spent").await;
            relay.stop().await;
            got
        };
        let relay = Relay::start_with(&cfg, opts).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, Some(3)).await;
        quiet(&mut sub, "still spent after the restart").await;
        assert_eq!(
            host_status(&relay, &net.pds.hostname()),
            Some(HostStatus::Throttled)
        );
        clock.advance(Duration::from_secs(3600));
        got.extend(sub.take(2).await);
        assert_eq!(commits(&got), upstream);
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_hosts_per_day_are_capped_but_known_hosts_may_ask_again() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let second = TestPds::start().await;
        let mut cfg = config(&net);
        cfg.crawl.hosts.clear();
        cfg.crawl.new_hosts_per_day = 1;
        let relay = Relay::start(&cfg).await.unwrap();
        assert_eq!(request_crawl(&relay, &net.pds.hostname()).await.0, 200);
        let (status, body) = request_crawl(&relay, &second.hostname()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("RateLimitExceeded"))
        );
        assert_eq!(relay.crawlers.running(), [net.pds.hostname()]);
        // The admitted host asking again is not a new host.
        assert_eq!(request_crawl(&relay, &net.pds.hostname()).await.0, 200);
        relay.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_request_crawls_in_bulk() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let mut cfg = config(&net);
        cfg.crawl.hosts.clear();
        let relay = Relay::start(&cfg).await.unwrap();
        let mut statuses = Vec::new();
        for i in 0..25 {
            // Refused by syntax, cheaply: what counts is the limiter.
            statuses.push(request_crawl(&relay, &format!("not a host {i}")).await.0);
        }
        let limited = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(statuses[..20], [400; 20], "the burst is served");
        assert!(limited >= 4, "then the client is limited: {statuses:?}");
        let (status, body) = request_crawl(&relay, "pds.example.com").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("RateLimitExceeded"))
        );
        relay.stop().await;
    })
    .await
    .unwrap();
}
