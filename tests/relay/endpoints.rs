//! The relay's HTTP surface: requestCrawl, the sync queries, errors.

use std::time::Duration;

use atrelay::node::Relay;
use serde_json::Value;

use crate::harness::Subscriber;
use crate::pipeline::Net;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = client().get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_crawl_and_sync_queries() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let mut cfg = net.config();
        cfg.crawl.hosts.clear();
        let relay = Relay::start(&cfg).await.unwrap();
        let base = format!("http://{}", relay.addr);
        let mut sub = Subscriber::connect(relay.addr, None).await;

        // Bad requests are refused with lexicon-style errors.
        for body in [
            serde_json::json!({ "hostname": "https://pds.example.com" }),
            serde_json::json!({ "hostname": "not a host" }),
            serde_json::json!({ "hostname": "127.0.0.1:1" }),
            serde_json::json!({ "nope": 1 }),
        ] {
            let r = client()
                .post(format!("{base}/xrpc/com.atproto.sync.requestCrawl"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 400, "{body}");
            let j: Value = r.json().await.unwrap();
            assert_eq!(j["error"], "InvalidRequest", "{body}");
        }

        // A real PDS asks to be crawled: the relay probes it and subscribes.
        let r = client()
            .post(format!("{base}/xrpc/com.atproto.sync.requestCrawl"))
            .json(&serde_json::json!({ "hostname": net.pds.hostname() }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let mut alice = net.account();
        let mut bob = net.account();
        let a1 = alice.post("hello");
        net.pds.emit_commit(&a1);
        let b1 = bob.post("hi");
        net.pds.emit_commit(&b1);
        sub.take(2).await;

        let (s, j) = get(
            &base,
            &format!("/xrpc/com.atproto.sync.getLatestCommit?did={}", alice.did),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(j["cid"], a1.commit.to_string());
        assert_eq!(j["rev"], a1.rev.to_string());

        let (s, j) = get(
            &base,
            &format!("/xrpc/com.atproto.sync.getRepoStatus?did={}", alice.did),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(j["active"], true);
        assert_eq!(j["rev"], a1.rev.to_string());

        let (s, j) = get(
            &base,
            "/xrpc/com.atproto.sync.getLatestCommit?did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
        )
        .await;
        assert_eq!((s, j["error"].as_str()), (400, Some("RepoNotFound")));
        let (s, j) = get(&base, "/xrpc/com.atproto.sync.getRepoStatus?did=nope").await;
        assert_eq!((s, j["error"].as_str()), (400, Some("InvalidRequest")));

        // listRepos pages in DID order.
        let (s, j) = get(&base, "/xrpc/com.atproto.sync.listRepos?limit=1").await;
        assert_eq!(s, 200);
        assert_eq!(j["repos"].as_array().unwrap().len(), 1);
        let cursor = j["cursor"].as_str().unwrap().to_owned();
        let (_, j2) = get(
            &base,
            &format!("/xrpc/com.atproto.sync.listRepos?limit=1&cursor={cursor}"),
        )
        .await;
        let mut dids = vec![j["repos"][0]["did"].clone(), j2["repos"][0]["did"].clone()];
        dids.sort_by_key(|d| d.as_str().unwrap().to_owned());
        let mut want = vec![Value::from(alice.did.clone()), Value::from(bob.did.clone())];
        want.sort_by_key(|d| d.as_str().unwrap().to_owned());
        assert_eq!(dids, want);
        let (s, _) = get(&base, "/xrpc/com.atproto.sync.listRepos?limit=0").await;
        assert_eq!(s, 400);

        // getRepo redirects to the account's PDS.
        let r = client()
            .get(format!(
                "{base}/xrpc/com.atproto.sync.getRepo?did={}",
                alice.did
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 302);
        let loc = r.headers()["location"].to_str().unwrap();
        assert_eq!(
            loc,
            format!(
                "http://{}/xrpc/com.atproto.sync.getRepo?did={}",
                net.pds.hostname(),
                alice.did
            )
        );

        // A deactivated account is reported so and no longer served.
        net.pds.emit_account(&alice.did, false, Some("deactivated"));
        sub.take(1).await;
        let (_, j) = get(
            &base,
            &format!("/xrpc/com.atproto.sync.getRepoStatus?did={}", alice.did),
        )
        .await;
        assert_eq!(
            (j["active"].as_bool(), j["status"].as_str()),
            (Some(false), Some("deactivated"))
        );
        let (s, j) = get(
            &base,
            &format!("/xrpc/com.atproto.sync.getLatestCommit?did={}", alice.did),
        )
        .await;
        assert_eq!((s, j["error"].as_str()), (400, Some("RepoDeactivated")));

        let (s, j) = get(&base, "/xrpc/_health").await;
        assert_eq!(s, 200);
        assert!(j["version"].is_string());
        let (s, j) = get(&base, "/xrpc/com.atproto.sync.subscribeRepos").await;
        assert_eq!(s, 426, "{j}");
        let (s, j) = get(&base, "/xrpc/com.example.nothing").await;
        assert_eq!(
            (s, j["error"].as_str()),
            (404, Some("MethodNotImplemented"))
        );
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

/// `listHosts` / `getHostStatus`, the SSRF guard and the relay loop guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_listing_ssrf_and_loop_guards() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let base = format!("http://{}", relay.addr);
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        net.pds.emit_commit(&alice.post("hi"));
        sub.take(1).await;

        let (s, j) = get(&base, "/xrpc/com.atproto.sync.listHosts").await;
        assert_eq!(s, 200);
        let hosts = j["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0]["hostname"], net.pds.hostname());
        assert_eq!(hosts[0]["status"], "active");
        assert_eq!(hosts[0]["accountCount"], 1);
        assert_eq!(hosts[0]["seq"], 1);
        let (s, j) = get(
            &base,
            &format!(
                "/xrpc/com.atproto.sync.getHostStatus?hostname={}",
                net.pds.hostname()
            ),
        )
        .await;
        assert_eq!((s, j["status"].as_str()), (200, Some("active")));
        let (s, j) = get(
            &base,
            "/xrpc/com.atproto.sync.getHostStatus?hostname=nope.example.com",
        )
        .await;
        assert_eq!((s, j["error"].as_str()), (400, Some("HostNotFound")));

        // Every response says it comes from a relay.
        let r = client()
            .get(format!("{base}/xrpc/_health"))
            .send()
            .await
            .unwrap();
        let server = r.headers()["server"].to_str().unwrap().to_owned();
        assert!(server.contains("atproto-relay"), "{server}");

        // Loop guard: a relay asked to crawl another relay refuses.
        let mut other_cfg = Net::start().await.config();
        other_cfg.crawl.hosts.clear();
        let other = Relay::start(&other_cfg).await.unwrap();
        let r = client()
            .post(format!("{base}/xrpc/com.atproto.sync.requestCrawl"))
            .json(&serde_json::json!({ "hostname": other.addr.to_string() }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let j: Value = r.json().await.unwrap();
        assert!(j["message"].as_str().unwrap().contains("relay"), "{j}");
        other.stop().await;
        relay.stop().await;

        // SSRF guard: without --allow-private-hosts, local and private
        // addresses are refused, before any request is made to them.
        let strict_dir = tempfile::tempdir().unwrap();
        let mut strict = net.config();
        strict.server.data_dir = strict_dir.path().to_owned();
        strict.crawl.allow_private_hosts = false;
        strict.crawl.hosts.clear();
        // A public-looking name that resolves to loopback (pinned: no test
        // machine's DNS can be made to answer that).
        let dns = atrelay::net::Dns::with_overrides(std::collections::HashMap::from([(
            "pds.sneaky.example.com".to_owned(),
            vec!["127.0.0.1".parse().unwrap()],
        )]));
        let opts = atrelay::node::StartOptions {
            dns,
            ..Default::default()
        };
        let strict_relay = Relay::start_with(&strict, opts).await.unwrap();
        let base = format!("http://{}", strict_relay.addr);
        for host in [
            net.pds.hostname(),
            "localhost:2583".to_owned(),
            "10.1.2.3".to_owned(),
            "169.254.169.254".to_owned(),
            "192.168.1.1:8080".to_owned(),
            "::1".to_owned(),
            "[::1]:2583".to_owned(),
            "pds.sneaky.example.com".to_owned(),
        ] {
            let r = client()
                .post(format!("{base}/xrpc/com.atproto.sync.requestCrawl"))
                .json(&serde_json::json!({ "hostname": host }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 400, "{host}");
            let j: Value = r.json().await.unwrap();
            assert!(
                j["message"].as_str().unwrap().contains("private"),
                "{host}: {j}"
            );
        }
        assert_eq!(net.pds.connections(), 1);
        strict_relay.stop().await;
    })
    .await
    .expect("test timed out");
}
