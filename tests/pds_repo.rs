//! PDS mode's repo and sync endpoints over HTTP, in process, with real
//! parts: the PLC directory server on loopback, the PDS on RocksDB in a temp
//! dir, reqwest as the client, tokio-tungstenite as the firehose consumer,
//! and finally our relay crawling the PDS.
//!
//! What is checked goes past status codes: exported CARs are parsed, their
//! MST loaded and compared with what was written, commit signatures checked
//! with the account's key, and every firehose `#commit` verified strictly
//! (with inversion) as a relay verifies it.

use std::collections::BTreeMap;
use std::time::Duration;

use atrelay::clock::now_micros;
use atrelay::config::{BudgetConfig, RelayConfig};
use atrelay::crypto::PublicKey;
use atrelay::node::PdsServer;
use atrelay::node::Relay;
use atrelay::pds::config::PdsConfig;
use atrelay::pds::password::PasswordCost;
use atrelay::pds::service::{Pds, Session};
use atrelay::repo::commit::Commit;
use atrelay::repo::mst::Mst;
use atrelay::repo::verify::{verify_commit, VerifyOptions};
use atrelay::wire::car::{Car, CarLimits};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{AccountStatus, Event};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const POST: &str = "app.bsky.feed.post";
const PROFILE: &str = "app.bsky.actor.profile";

/// A PLC directory and a PDS serving HTTP, each on a loopback port.
struct Net {
    plc: atrelay::node::PlcServer,
    server: PdsServer,
    pds: Pds,
    base: String,
    http: reqwest::Client,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Blob limit for these tests: small, so the oversize case is cheap.
const BLOB_LIMIT: u64 = 64 * 1024;

async fn start() -> Net {
    let plc_dir = tempfile::tempdir().unwrap();
    let plc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plc = atrelay::node::PlcServer::start(plc_listener, plc_dir.path())
        .await
        .unwrap();
    let pds_dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = PdsConfig::default();
    // The DID documents name this address, so relays can match the host.
    cfg.server.listen = addr;
    cfg.server.data_dir = pds_dir.path().to_owned();
    cfg.identity.plc_url = plc.url();
    cfg.limits.blob_max_bytes = BLOB_LIMIT;
    let pds = Pds::open(&cfg, PasswordCost::FAST_INSECURE).unwrap();
    let server = PdsServer::start(pds.clone(), listener).await.unwrap();
    Net {
        plc,
        server,
        pds,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        _dirs: (plc_dir, pds_dir),
    }
}

impl Net {
    fn url(&self, nsid: &str) -> String {
        format!("{}/xrpc/{nsid}", self.base)
    }

    /// POSTs JSON with an optional bearer token; the status and JSON body.
    async fn post(&self, nsid: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url(nsid)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// GETs with query pairs; the status and JSON body.
    async fn get(&self, nsid: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = self.get_raw(nsid, query).await;
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn get_raw(&self, nsid: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url(nsid))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    /// A successful CAR response's bytes.
    async fn get_car(&self, nsid: &str, query: &[(&str, &str)]) -> Vec<u8> {
        let res = self.get_raw(nsid, query).await;
        assert_eq!(res.status(), StatusCode::OK, "{nsid} {query:?}");
        assert_eq!(
            res.headers()["content-type"],
            "application/vnd.ipld.car",
            "{nsid}"
        );
        res.bytes().await.unwrap().to_vec()
    }

    fn key(&self, did: &str) -> PublicKey {
        self.pds
            .account(did)
            .unwrap()
            .signing_key()
            .unwrap()
            .public_key()
    }

    async fn stop(self) {
        self.server.stop().await;
        drop(self.plc);
    }
}

/// Asserts an XRPC error: status and name.
#[track_caller]
fn assert_error((status, body): &(StatusCode, Value), want_status: u16, want_name: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"], want_name, "{body}");
}

/// Asserts success and returns the body.
#[track_caller]
fn ok((status, body): (StatusCode, Value)) -> Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn post_record(text: &str) -> Value {
    json!({"$type": POST, "text": text, "createdAt": "2026-11-25T00:00:00Z"})
}

fn cid_of(v: &Value) -> Cid {
    v.as_str().unwrap().parse().unwrap()
}

/// The rkey of an `at://did/collection/rkey` URI.
fn rkey_of(uri: &Value) -> String {
    uri.as_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

/// Runs a test body under a deadline.
async fn bounded(secs: u64, f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test timed out");
}

/// What the test believes the repo holds: path → record CID.
type Expected = BTreeMap<String, Cid>;

/// Checks a full-repo CAR against `expected`: rooted at the head commit,
/// signed by `key`, its tree holding exactly `expected`, and nothing else
/// in the CAR (no stale commits, nodes or records).
fn check_repo_car(bytes: &[u8], did: &str, head: Cid, key: &PublicKey, expected: &Expected) {
    let car = Car::parse(bytes, CarLimits::REPO).expect("getRepo CAR parses and hashes check");
    assert_eq!(car.roots(), [head], "rooted at the head commit");
    let commit = Commit::decode(car.get(&head).expect("commit block")).unwrap();
    assert_eq!(commit.did, did);
    commit
        .verify_signature(key)
        .expect("commit is signed by the account key");
    let mut tree = Mst::load(commit.data, &car).unwrap();
    tree.load_all(&car).unwrap();
    let got: Expected = tree
        .entries()
        .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), *v))
        .collect();
    assert_eq!(&got, expected, "the exported tree holds what was written");
    for cid in expected.values() {
        assert!(car.get(cid).is_some(), "record block {cid} exported");
    }
    let distinct_records: std::collections::BTreeSet<_> = expected.values().collect();
    assert_eq!(
        car.len(),
        1 + tree.loaded_nodes().len() + distinct_records.len(),
        "exactly the commit, the current nodes and the current records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_swaps_and_their_errors() {
    bounded(90, async {
        let net = start().await;
        let alice = net.pds.create_account("alice.test", None, "pw-secret").await.unwrap();
        let bob = net.pds.create_account("bob.test", None, "pw-secret").await.unwrap();
        let tok = Some(alice.access_jwt.as_str());
        let did = alice.did.as_str();

        // createRecord, by DID and by handle.
        let created = ok(net
            .post(
                "com.atproto.repo.createRecord",
                tok,
                json!({"repo": did, "collection": POST, "record": post_record("one")}),
            )
            .await);
        assert!(created["uri"].as_str().unwrap().starts_with(&format!("at://{did}/{POST}/")));
        assert_eq!(created["validationStatus"], "unknown");
        let head = ok(net
            .get("com.atproto.sync.getLatestCommit", &[("did", did)])
            .await);
        assert_eq!(head["cid"], created["commit"]["cid"]);
        assert_eq!(head["rev"], created["commit"]["rev"]);
        let by_handle = ok(net
            .post(
                "com.atproto.repo.createRecord",
                tok,
                json!({"repo": "alice.test", "collection": POST, "rkey": "3kaaaaaaaaaaa", "record": post_record("two"), "validate": false}),
            )
            .await);
        assert_eq!(
            by_handle["uri"],
            format!("at://{did}/{POST}/3kaaaaaaaaaaa")
        );
        // Creating over an existing record is refused.
        assert_error(
            &net.post(
                "com.atproto.repo.createRecord",
                tok,
                json!({"repo": did, "collection": POST, "rkey": "3kaaaaaaaaaaa", "record": post_record("again")}),
            )
            .await,
            400,
            "InvalidRequest",
        );

        // putRecord: swapRecord null means "must not exist yet".
        let profile = json!({"$type": PROFILE, "displayName": "Alice"});
        let put = ok(net
            .post(
                "com.atproto.repo.putRecord",
                tok,
                json!({"repo": did, "collection": PROFILE, "rkey": "self", "record": profile, "swapRecord": null}),
            )
            .await);
        let v1 = put["cid"].clone();
        assert_error(
            &net.post(
                "com.atproto.repo.putRecord",
                tok,
                json!({"repo": did, "collection": PROFILE, "rkey": "self", "record": profile, "swapRecord": null}),
            )
            .await,
            400,
            "InvalidSwap",
        );
        // Absent swapRecord: no check, replaces.
        let profile2 = json!({"$type": PROFILE, "displayName": "Alice 2"});
        let put2 = ok(net
            .post(
                "com.atproto.repo.putRecord",
                tok,
                json!({"repo": did, "collection": PROFILE, "rkey": "self", "record": profile2}),
            )
            .await);
        // A stale swapRecord fails; the current one succeeds.
        assert_error(
            &net.post(
                "com.atproto.repo.putRecord",
                tok,
                json!({"repo": did, "collection": PROFILE, "rkey": "self", "record": profile, "swapRecord": v1}),
            )
            .await,
            400,
            "InvalidSwap",
        );
        ok(net
            .post(
                "com.atproto.repo.putRecord",
                tok,
                json!({"repo": did, "collection": PROFILE, "rkey": "self", "record": profile, "swapRecord": put2["cid"]}),
            )
            .await);

        // swapCommit: stale fails, current succeeds.
        let stale = created["commit"]["cid"].clone();
        assert_error(
            &net.post(
                "com.atproto.repo.createRecord",
                tok,
                json!({"repo": did, "collection": POST, "record": post_record("x"), "swapCommit": stale}),
            )
            .await,
            400,
            "InvalidSwap",
        );
        let current = ok(net
            .get("com.atproto.sync.getLatestCommit", &[("did", did)])
            .await)["cid"]
            .clone();
        let swapped = ok(net
            .post(
                "com.atproto.repo.createRecord",
                tok,
                json!({"repo": did, "collection": POST, "record": post_record("three"), "swapCommit": current}),
            )
            .await);

        // deleteRecord: a wrong swapRecord fails; deleting works once, then
        // is a no-op without a commit.
        let rkey = rkey_of(&swapped["uri"]);
        assert_error(
            &net.post(
                "com.atproto.repo.deleteRecord",
                tok,
                json!({"repo": did, "collection": POST, "rkey": rkey, "swapRecord": v1}),
            )
            .await,
            400,
            "InvalidSwap",
        );
        let deleted = ok(net
            .post(
                "com.atproto.repo.deleteRecord",
                tok,
                json!({"repo": did, "collection": POST, "rkey": rkey, "swapRecord": swapped["cid"]}),
            )
            .await);
        assert!(deleted["commit"]["cid"].is_string());
        let again = ok(net
            .post(
                "com.atproto.repo.deleteRecord",
                tok,
                json!({"repo": did, "collection": POST, "rkey": rkey}),
            )
            .await);
        assert_eq!(again, json!({}), "deleting a missing record is a no-op");

        // applyWrites: one commit, one result per write.
        let applied = ok(net
            .post(
                "com.atproto.repo.applyWrites",
                tok,
                json!({"repo": did, "writes": [
                    {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "rkey": "3kbbbbbbbbbbb", "value": post_record("a")},
                    {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "value": post_record("b")},
                    {"$type": "com.atproto.repo.applyWrites#update", "collection": PROFILE, "rkey": "self", "value": profile2},
                    {"$type": "com.atproto.repo.applyWrites#delete", "collection": POST, "rkey": "3kaaaaaaaaaaa"},
                ]}),
            )
            .await);
        let results = applied["results"].as_array().unwrap();
        let types: Vec<&str> = results.iter().map(|r| r["$type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "com.atproto.repo.applyWrites#createResult",
                "com.atproto.repo.applyWrites#createResult",
                "com.atproto.repo.applyWrites#updateResult",
                "com.atproto.repo.applyWrites#deleteResult",
            ]
        );
        assert_eq!(results[0]["uri"], format!("at://{did}/{POST}/3kbbbbbbbbbbb"));
        assert_eq!(results[2]["validationStatus"], "unknown");
        assert_eq!(results[3], json!({"$type": "com.atproto.repo.applyWrites#deleteResult"}));
        let latest = ok(net.get("com.atproto.sync.getLatestCommit", &[("did", did)]).await);
        assert_eq!(latest["cid"], applied["commit"]["cid"]);

        // Bad input, each a lexicon error.
        let create = |body: Value| net.post("com.atproto.repo.createRecord", tok, body);
        for (case, body) in [
            ("bad NSID", json!({"repo": did, "collection": "not an nsid", "record": post_record("x")})),
            ("bad rkey", json!({"repo": did, "collection": POST, "rkey": "bad/rkey", "record": post_record("x")})),
            ("dot-dot rkey", json!({"repo": did, "collection": POST, "rkey": "..", "record": post_record("x")})),
            ("missing $type", json!({"repo": did, "collection": POST, "record": {"text": "x"}})),
            ("$type of another collection", json!({"repo": did, "collection": POST, "record": {"$type": PROFILE}})),
            ("float", json!({"repo": did, "collection": POST, "record": {"$type": POST, "n": 1.5}})),
            ("oversized", json!({"repo": did, "collection": POST, "record": {"$type": POST, "text": "x".repeat(1_000_001)}})),
            ("validate: true", json!({"repo": did, "collection": POST, "record": post_record("x"), "validate": true})),
            ("missing record", json!({"repo": did, "collection": POST})),
            ("bad swapCommit", json!({"repo": did, "collection": POST, "record": post_record("x"), "swapCommit": "nope"})),
            ("unknown repo", json!({"repo": "nobody.test", "collection": POST, "record": post_record("x")})),
        ] {
            let res = create(body).await;
            assert_eq!(res.0, StatusCode::BAD_REQUEST, "{case}: {}", res.1);
            assert_eq!(res.1["error"], "InvalidRequest", "{case}: {}", res.1);
        }
        assert_error(
            &net.post(
                "com.atproto.repo.applyWrites",
                tok,
                json!({"repo": did, "writes": [{"$type": "com.atproto.repo.applyWrites#upsert", "collection": POST, "value": post_record("x")}]}),
            )
            .await,
            400,
            "InvalidRequest",
        );
        let res = net
            .http
            .post(net.url("com.atproto.repo.createRecord"))
            .bearer_auth(&alice.access_jwt)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "InvalidRequest");

        // Authentication: none, garbage, a refresh token, another account's.
        let body = json!({"repo": did, "collection": POST, "record": post_record("x")});
        assert_error(
            &net.post("com.atproto.repo.createRecord", None, body.clone()).await,
            401,
            "AuthenticationRequired",
        );
        let garbage = net
            .post("com.atproto.repo.createRecord", Some("not.a.jwt"), body.clone())
            .await;
        assert_eq!(garbage.0, StatusCode::UNAUTHORIZED, "{}", garbage.1);
        let refresh = net
            .post("com.atproto.repo.createRecord", Some(&alice.refresh_jwt), body.clone())
            .await;
        assert_eq!(refresh.0, StatusCode::UNAUTHORIZED, "{}", refresh.1);
        assert_eq!(refresh.1["error"], "InvalidToken");
        assert_error(
            &net.post("com.atproto.repo.createRecord", Some(&bob.access_jwt), body.clone())
                .await,
            403,
            "Forbidden",
        );
        assert_error(
            &net.post(
                "com.atproto.repo.deleteRecord",
                Some(&bob.access_jwt),
                json!({"repo": "alice.test", "collection": POST, "rkey": "3kbbbbbbbbbbb"}),
            )
            .await,
            403,
            "Forbidden",
        );
        // Nothing above changed the repo.
        let after = ok(net.get("com.atproto.sync.getLatestCommit", &[("did", did)]).await);
        assert_eq!(after, latest);

        // An inactive account can neither write nor be read.
        net.pds.set_status(did, Some(AccountStatus::Deactivated)).await.unwrap();
        assert_error(&create(body.clone()).await, 400, "RepoDeactivated");
        assert_error(
            &net.get("com.atproto.sync.getLatestCommit", &[("did", did)]).await,
            400,
            "RepoDeactivated",
        );
        assert_error(
            &net.get("com.atproto.sync.getRepo", &[("did", did)]).await,
            400,
            "RepoDeactivated",
        );
        assert_error(
            &net.get(
                "com.atproto.repo.getRecord",
                &[("repo", did), ("collection", PROFILE), ("rkey", "self")],
            )
            .await,
            400,
            "RepoDeactivated",
        );
        let status = ok(net.get("com.atproto.sync.getRepoStatus", &[("did", did)]).await);
        assert_eq!(status, json!({"did": did, "active": false, "status": "deactivated"}));
        net.pds.set_status(did, Some(AccountStatus::Takendown)).await.unwrap();
        assert_error(
            &net.get("com.atproto.sync.getLatestCommit", &[("did", did)]).await,
            400,
            "RepoTakendown",
        );
        net.pds.set_status(did, None).await.unwrap();
        ok(create(body).await);

        net.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_blobs_and_exports() {
    bounded(90, async {
        let net = start().await;
        let alice = net.pds.create_account("alice.test", None, "pw-secret").await.unwrap();
        let bob = net.pds.create_account("bob.test", None, "pw-secret").await.unwrap();
        let tok = Some(alice.access_jwt.as_str());
        let did = alice.did.as_str();
        let mut expected = Expected::new();

        // Seven posts with known rkeys, written out of order, and a profile.
        let rkeys = ["3k2a", "3k2b", "3k2b0", "3k2c", "3k2d", "3k2e", "3k2f"];
        for rkey in rkeys.iter().rev() {
            let r = ok(net
                .post(
                    "com.atproto.repo.createRecord",
                    tok,
                    json!({"repo": did, "collection": POST, "rkey": rkey, "record": post_record(rkey)}),
                )
                .await);
            expected.insert(format!("{POST}/{rkey}"), cid_of(&r["cid"]));
        }
        let r = ok(net
            .post(
                "com.atproto.repo.putRecord",
                tok,
                json!({"repo": did, "collection": PROFILE, "rkey": "self", "record": {"$type": PROFILE, "displayName": "A"}}),
            )
            .await);
        expected.insert(format!("{PROFILE}/self"), cid_of(&r["cid"]));

        // getRecord: the current version; a wrong cid or key is RecordNotFound.
        let got = ok(net
            .get(
                "com.atproto.repo.getRecord",
                &[("repo", "alice.test"), ("collection", POST), ("rkey", "3k2c")],
            )
            .await);
        assert_eq!(got["uri"], format!("at://{did}/{POST}/3k2c"));
        assert_eq!(cid_of(&got["cid"]), expected[&format!("{POST}/3k2c")]);
        assert_eq!(got["value"], post_record("3k2c"));
        let cid = got["cid"].as_str().unwrap();
        ok(net
            .get(
                "com.atproto.repo.getRecord",
                &[("repo", did), ("collection", POST), ("rkey", "3k2c"), ("cid", cid)],
            )
            .await);
        let other = expected[&format!("{POST}/3k2d")].to_string();
        for query in [
            vec![("repo", did), ("collection", POST), ("rkey", "3k2c"), ("cid", other.as_str())],
            vec![("repo", did), ("collection", POST), ("rkey", "nope")],
            vec![("repo", "nobody.test"), ("collection", POST), ("rkey", "3k2c")],
        ] {
            assert_error(
                &net.get("com.atproto.repo.getRecord", &query).await,
                400,
                "RecordNotFound",
            );
        }
        assert_error(
            &net.get(
                "com.atproto.repo.getRecord",
                &[("repo", did), ("collection", "bad nsid"), ("rkey", "x")],
            )
            .await,
            400,
            "InvalidRequest",
        );

        // listRecords pages both ways: newest (highest rkey) first by default.
        for reverse in [false, true] {
            let mut want: Vec<&str> = rkeys.to_vec();
            if !reverse {
                want.reverse();
            }
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut q = vec![
                    ("repo", did.to_owned()),
                    ("collection", POST.to_owned()),
                    ("limit", "3".to_owned()),
                    ("reverse", reverse.to_string()),
                ];
                if let Some(c) = &cursor {
                    q.push(("cursor", c.clone()));
                }
                let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let page = ok(net.get("com.atproto.repo.listRecords", &q).await);
                pages += 1;
                for r in page["records"].as_array().unwrap() {
                    let rkey = rkey_of(&r["uri"]);
                    assert_eq!(cid_of(&r["cid"]), expected[&format!("{POST}/{rkey}")]);
                    assert_eq!(r["value"]["text"], rkey);
                    seen.push(rkey);
                }
                match page["cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            assert_eq!(seen, want, "reverse={reverse}");
            assert_eq!(pages, 3, "7 records in pages of 3");
        }
        for limit in ["0", "101", "x"] {
            assert_error(
                &net.get(
                    "com.atproto.repo.listRecords",
                    &[("repo", did), ("collection", POST), ("limit", limit)],
                )
                .await,
                400,
                "InvalidRequest",
            );
        }

        // describeRepo.
        let described = ok(net.get("com.atproto.repo.describeRepo", &[("repo", did)]).await);
        assert_eq!(described["handle"], "alice.test");
        assert_eq!(described["did"], did);
        assert_eq!(described["collections"], json!([PROFILE, POST]));
        assert_eq!(described["handleIsCorrect"], true);
        assert_eq!(described["didDoc"]["id"], did);
        assert_eq!(
            described["didDoc"]["verificationMethod"][0]["publicKeyMultibase"],
            net.key(did).to_multikey()
        );
        assert_eq!(described["didDoc"]["service"][0]["serviceEndpoint"], net.base);

        // Blobs: upload, reference from a record, fetch, list.
        let image: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let res = net
            .http
            .post(net.url("com.atproto.repo.uploadBlob"))
            .bearer_auth(&alice.access_jwt)
            .header("content-type", "image/png")
            .body(image.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let blob = res.json::<Value>().await.unwrap()["blob"].clone();
        let blob_cid = Cid::for_raw(&image);
        assert_eq!(
            blob,
            json!({"$type": "blob", "ref": {"$link": blob_cid.to_string()}, "mimeType": "image/png", "size": image.len()})
        );
        let with_image = ok(net
            .post(
                "com.atproto.repo.createRecord",
                tok,
                json!({"repo": did, "collection": POST, "rkey": "3k2g", "record": {
                    "$type": POST, "text": "look", "createdAt": "2026-11-25T00:00:00Z",
                    "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]},
                }}),
            )
            .await);
        expected.insert(format!("{POST}/3k2g"), cid_of(&with_image["cid"]));
        let res = net
            .get_raw("com.atproto.sync.getBlob", &[("did", did), ("cid", &blob_cid.to_string())])
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "image/png");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            res.headers()["content-security-policy"],
            "default-src 'none'; sandbox"
        );
        assert_eq!(res.bytes().await.unwrap().to_vec(), image);
        let other_blob = Cid::for_raw(b"never uploaded").to_string();
        assert_error(
            &net.get("com.atproto.sync.getBlob", &[("did", did), ("cid", &other_blob)]).await,
            400,
            "BlobNotFound",
        );
        assert_error(
            &net.get(
                "com.atproto.sync.getBlob",
                &[("did", &bob.did), ("cid", &blob_cid.to_string())],
            )
            .await,
            400,
            "BlobNotFound",
        );
        let listed = ok(net.get("com.atproto.sync.listBlobs", &[("did", did)]).await);
        assert_eq!(listed, json!({"cids": [blob_cid.to_string()]}));
        // Too large (declared and streamed), and without a Content-Type.
        let big = vec![0u8; BLOB_LIMIT as usize + 1];
        let res = net
            .http
            .post(net.url("com.atproto.repo.uploadBlob"))
            .bearer_auth(&alice.access_jwt)
            .header("content-type", "application/octet-stream")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_error(
            &(res.status(), res.json().await.unwrap()),
            400,
            "BlobTooLarge",
        );
        let (status, body) = upload_chunked(net.server.addr, &alice.access_jwt, &big).await;
        assert_error(&(status, body), 400, "BlobTooLarge");
        let res = net
            .http
            .post(net.url("com.atproto.repo.uploadBlob"))
            .bearer_auth(&alice.access_jwt)
            .body(b"abc".to_vec())
            .send()
            .await
            .unwrap();
        assert_error(
            &(res.status(), res.json().await.unwrap()),
            400,
            "InvalidRequest",
        );
        let res = net
            .http
            .post(net.url("com.atproto.repo.uploadBlob"))
            .header("content-type", "text/plain")
            .body(b"abc".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

        // Sync heads and statuses.
        let head = ok(net.get("com.atproto.sync.getLatestCommit", &[("did", did)]).await);
        assert_eq!(head["cid"], with_image["commit"]["cid"]);
        let status = ok(net.get("com.atproto.sync.getRepoStatus", &[("did", did)]).await);
        assert_eq!(status, json!({"did": did, "active": true, "rev": head["rev"]}));
        let unknown = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
        assert_error(
            &net.get("com.atproto.sync.getLatestCommit", &[("did", unknown)]).await,
            400,
            "RepoNotFound",
        );
        assert_error(
            &net.get("com.atproto.sync.getRepoStatus", &[("did", unknown)]).await,
            400,
            "RepoNotFound",
        );
        assert_error(
            &net.get("com.atproto.sync.getLatestCommit", &[("did", "alice.test")]).await,
            400,
            "InvalidRequest",
        );
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("limit", "1")];
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let page = ok(net.get("com.atproto.sync.listRepos", &q).await);
            listed.extend(page["repos"].as_array().unwrap().iter().cloned());
            match page["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut dids: Vec<&str> = vec![did, &bob.did];
        dids.sort();
        assert_eq!(
            listed.iter().map(|r| r["did"].as_str().unwrap()).collect::<Vec<_>>(),
            dids
        );
        let alice_entry = listed.iter().find(|r| r["did"] == did).unwrap();
        assert_eq!(
            alice_entry,
            &json!({"did": did, "head": head["cid"], "rev": head["rev"], "active": true})
        );

        // getRepo: exactly the current repo, signed.
        let head_cid = cid_of(&head["cid"]);
        let key = net.key(did);
        let car = net.get_car("com.atproto.sync.getRepo", &[("did", did)]).await;
        check_repo_car(&car, did, head_cid, &key, &expected);
        let since = net
            .get_car(
                "com.atproto.sync.getRepo",
                &[("did", did), ("since", "3k2222222222a")],
            )
            .await;
        check_repo_car(&since, did, head_cid, &key, &expected);
        assert_error(
            &net.get("com.atproto.sync.getRepo", &[("did", did), ("since", "nope")]).await,
            400,
            "InvalidRequest",
        );
        // Bob's empty repo exports as a commit and the empty root node.
        let bob_head = cid_of(&ok(net
            .get("com.atproto.sync.getLatestCommit", &[("did", &bob.did)])
            .await)["cid"]);
        let bob_car = net.get_car("com.atproto.sync.getRepo", &[("did", &bob.did)]).await;
        check_repo_car(&bob_car, &bob.did, bob_head, &net.key(&bob.did), &Expected::new());

        // sync.getRecord: the inclusion proof for one key, and the
        // exclusion proof for a missing one, each checkable on its own.
        for (rkey, present) in [("3k2c", true), ("3k2cc", false)] {
            let proof = net
                .get_car(
                    "com.atproto.sync.getRecord",
                    &[("did", did), ("collection", POST), ("rkey", rkey)],
                )
                .await;
            let car = Car::parse(&proof, CarLimits::REPO).unwrap();
            assert_eq!(car.roots(), [head_cid]);
            let commit = Commit::decode(car.get(&head_cid).unwrap()).unwrap();
            commit.verify_signature(&key).unwrap();
            let mut tree = Mst::load(commit.data, &car).unwrap();
            let path = format!("{POST}/{rkey}");
            let found = tree
                .get(path.as_bytes(), &car)
                .expect("the proof holds the whole path");
            if present {
                let cid = expected[&path];
                assert_eq!(found, Some(cid));
                assert!(car.get(&cid).is_some(), "the record is in the proof");
            } else {
                assert_eq!(found, None);
            }
            assert!(
                car.len() < 1 + expected.len(),
                "a proof, not the whole repo"
            );
        }

        // getBlocks: the named blocks; any missing one is BlockNotFound.
        let a = expected[&format!("{POST}/3k2a")].to_string();
        let b = head_cid.to_string();
        let blocks = net
            .get_car("com.atproto.sync.getBlocks", &[("did", did), ("cids", &a), ("cids", &b)])
            .await;
        let car = Car::parse(&blocks, CarLimits::REPO).unwrap();
        assert_eq!(car.len(), 2);
        assert!(car.get(&a.parse().unwrap()).is_some() && car.get(&head_cid).is_some());
        let missing = Cid::for_cbor(b"\xa0").to_string();
        assert_error(
            &net.get(
                "com.atproto.sync.getBlocks",
                &[("did", did), ("cids", &a), ("cids", &missing)],
            )
            .await,
            400,
            "BlockNotFound",
        );
        assert_error(
            &net.get("com.atproto.sync.getBlocks", &[("did", did)]).await,
            400,
            "InvalidRequest",
        );
        // Another repo's blocks are not this one's.
        assert_error(
            &net.get("com.atproto.sync.getBlocks", &[("did", &bob.did), ("cids", &a)]).await,
            400,
            "BlockNotFound",
        );

        net.stop().await;
    })
    .await;
}

/// Uploads `bytes` as a blob with chunked transfer encoding (no
/// `Content-Length`), over a raw socket: the server must enforce the limit
/// while reading. The server may answer before reading everything, so write
/// errors are ignored and the response read regardless.
async fn upload_chunked(
    addr: std::net::SocketAddr,
    token: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /xrpc/com.atproto.repo.uploadBlob HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut body = head.into_bytes();
    for chunk in bytes.chunks(4096) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let _ = sock.write_all(&body).await;
    let mut response = Vec::new();
    let _ = sock.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (StatusCode::from_u16(status).unwrap(), json)
}

/// A websocket subscriber's binary frames.
struct Subscriber {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscriber {
    async fn connect(addr: std::net::SocketAddr, cursor: Option<u64>) -> Subscriber {
        let mut url = format!("ws://{addr}/xrpc/com.atproto.sync.subscribeRepos");
        if let Some(c) = cursor {
            url.push_str(&format!("?cursor={c}"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Subscriber { ws }
    }

    /// The next `n` frames, each within 10 s.
    async fn take(&mut self, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => out.push(b.to_vec()),
                Ok(Some(Ok(_))) => {}
                other => panic!("got {} of {n} frames, then {other:?}", out.len()),
            }
        }
        out
    }

    /// Asserts nothing more arrives for a short while.
    async fn assert_quiet(&mut self) {
        match tokio::time::timeout(Duration::from_millis(500), self.ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Binary(b)))) => {
                panic!("unexpected frame {:?}", Event::decode(&b).map(|e| e.seq()))
            }
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
}

/// Writes `n` posts through HTTP; the `(commit, rev)` of each.
async fn write_posts(net: &Net, who: &Session, n: usize, tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = ok(net
            .post(
                "com.atproto.repo.createRecord",
                Some(&who.access_jwt),
                json!({"repo": who.did, "collection": POST, "record": post_record(&format!("{tag} {i}"))}),
            )
            .await);
        out.push((
            r["commit"]["cid"].as_str().unwrap().to_owned(),
            r["commit"]["rev"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

/// Decodes frames, checking seqs run `first..` without gaps and verifying
/// every `#commit` strictly (inversion included) with its account's key.
/// Returns `(kind, did, commit cid)` per frame.
fn check_frames(net: &Net, frames: &[Vec<u8>], first: i64) -> Vec<(String, String, Option<Cid>)> {
    let opts = VerifyOptions {
        lenient: false,
        now_micros: now_micros(),
    };
    frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let ev = Event::decode(frame).expect("frames decode strictly");
            assert_eq!(ev.seq(), Some(first + i as i64), "gap-free seqs in order");
            let did = ev.did().unwrap().to_owned();
            match &ev {
                Event::Commit(c) => {
                    verify_commit(c, &net.key(&did), &opts)
                        .expect("every #commit verifies strictly, with inversion");
                    ("commit".into(), did, Some(c.commit))
                }
                Event::Identity(_) => ("identity".into(), did, None),
                Event::Account(_) => ("account".into(), did, None),
                other => panic!("unexpected event {other:?}"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_firehose_carries_every_write_in_order() {
    bounded(90, async {
        let net = start().await;
        let alice = net.pds.create_account("alice.test", None, "pw-secret").await.unwrap();
        let bob = net.pds.create_account("bob.test", None, "pw-secret").await.unwrap();
        let mut commits = write_posts(&net, &alice, 3, "alice").await;
        commits.extend(write_posts(&net, &bob, 2, "bob").await);

        // From the start of the log: the account lifecycles, then the writes.
        let mut sub = Subscriber::connect(net.server.addr, Some(0)).await;
        let backlog = net.pds.log().last_seq() as usize;
        assert_eq!(backlog, 2 * 3 + 5, "identity, account and empty commit per account, then 5 writes");
        let frames = sub.take(backlog).await;
        let kinds = check_frames(&net, &frames, 1);
        let names: Vec<&str> = kinds.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["identity", "account", "commit", "identity", "account", "commit", "commit", "commit", "commit", "commit", "commit"]
        );
        let written: Vec<String> = kinds[6..]
            .iter()
            .map(|(_, _, c)| c.unwrap().to_string())
            .collect();
        assert_eq!(
            written,
            commits.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>()
        );

        // Then live: applyWrites, an update, a delete, each verified.
        let live = ok(net
            .post(
                "com.atproto.repo.applyWrites",
                Some(&alice.access_jwt),
                json!({"repo": alice.did, "writes": [
                    {"$type": "com.atproto.repo.applyWrites#create", "collection": PROFILE, "rkey": "self", "value": {"$type": PROFILE}},
                    {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "value": post_record("x")},
                ]}),
            )
            .await);
        ok(net
            .post(
                "com.atproto.repo.putRecord",
                Some(&alice.access_jwt),
                json!({"repo": alice.did, "collection": PROFILE, "rkey": "self", "record": {"$type": PROFILE, "displayName": "A"}}),
            )
            .await);
        let post_rkey = rkey_of(&live["results"][1]["uri"]);
        ok(net
            .post(
                "com.atproto.repo.deleteRecord",
                Some(&alice.access_jwt),
                json!({"repo": alice.did, "collection": POST, "rkey": post_rkey}),
            )
            .await);
        let frames = sub.take(3).await;
        let kinds = check_frames(&net, &frames, backlog as i64 + 1);
        assert!(kinds.iter().all(|(k, d, _)| k == "commit" && *d == alice.did));
        assert_eq!(kinds[0].2.unwrap().to_string(), live["commit"]["cid"]);
        sub.assert_quiet().await;

        net.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_relay_crawls_the_pds_and_passes_every_commit_on() {
    bounded(120, async {
        let net = start().await;
        let alice = net
            .pds
            .create_account("alice.test", None, "pw-secret")
            .await
            .unwrap();
        let bob = net
            .pds
            .create_account("bob.test", None, "pw-secret")
            .await
            .unwrap();

        let relay_dir = tempfile::tempdir().unwrap();
        let host = net.server.addr.to_string();
        let mut cfg = RelayConfig::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.metrics_listen = String::new();
        cfg.server.data_dir = relay_dir.path().to_owned();
        cfg.identity.plc_url = net.plc.url();
        cfg.crawl.allow_private_hosts = true;
        cfg.crawl.hosts = vec![host.clone()];
        cfg.budget = BudgetConfig::unlimited();
        cfg.verify.workers = 2;
        let relay = Relay::start(&cfg).await.unwrap();
        // A new host is read from its live stream: write only once the
        // crawler is connected.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !relay.crawlers.running().contains(&host) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the relay never crawled the PDS"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut sub = Subscriber::connect(relay.addr, None).await;

        let mut alice_commits = Vec::new();
        let mut bob_commits = Vec::new();
        for round in 0..3 {
            alice_commits.extend(write_posts(&net, &alice, 2, &format!("alice {round}")).await);
            bob_commits.extend(write_posts(&net, &bob, 1, &format!("bob {round}")).await);
        }
        let total = alice_commits.len() + bob_commits.len();
        let frames = sub.take(total).await;
        let mut got_alice = Vec::new();
        let mut got_bob = Vec::new();
        let opts = VerifyOptions {
            lenient: false,
            now_micros: now_micros(),
        };
        for frame in &frames {
            let Ok(Event::Commit(c)) = Event::decode(frame) else {
                panic!("only commits were written");
            };
            // The relay passes the PDS's blocks through; they verify as such.
            verify_commit(&c, &net.key(c.repo), &opts).unwrap();
            let entry = (c.commit.to_string(), c.rev.to_owned());
            if c.repo == alice.did {
                got_alice.push(entry);
            } else {
                assert_eq!(c.repo, bob.did);
                got_bob.push(entry);
            }
        }
        assert_eq!(got_alice, alice_commits, "alice's commits, all, in order");
        assert_eq!(got_bob, bob_commits, "bob's commits, all, in order");
        sub.assert_quiet().await;

        relay.stop().await;
        net.stop().await;
    })
    .await;
}
