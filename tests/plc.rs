//! The PLC directory from the outside: the real `atrelay plc` binary on a
//! loopback port with a temporary data dir, driven over HTTP the way a PDS and
//! a resolver use it; and the in-process server under the relay's own
//! `Resolver`.
//!
//! Every test runs under a deadline, and a child process is killed when its
//! guard drops, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use atrelay::crypto::{negate_s, Curve, PrivateKey};
use atrelay::identity::{parse_document, ResolveError, Resolver, ResolverConfig};
use atrelay::node::PlcServer;
use atrelay::plc::{
    genesis_op, tombstone_op, update_op, Genesis, Operation, PlcClient, SignedOperation,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// Deadline for a whole test.
const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `f` under [`TEST_DEADLINE`].
async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_DEADLINE, f)
        .await
        .expect("test exceeded its deadline");
}

/// A running `atrelay plc`; SIGKILLed and reaped on drop.
struct PlcProcess {
    child: Child,
    addr: SocketAddr,
}

impl PlcProcess {
    /// Starts the binary on a free loopback port over `data_dir` and waits
    /// (at most 30 s) for its "listening" line.
    fn start(data_dir: &Path) -> PlcProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_atrelay"))
            .args(["plc", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("ATRELAY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start atrelay plc");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // Drained all along so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            while matches!(stderr.read(&mut sink), Ok(n) if n > 0) {}
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep reading so later output never blocks the child.
            let mut rest = String::new();
            while matches!(reader.read_line(&mut rest), Ok(n) if n > 0) {
                rest.clear();
            }
        });
        let mut process = PlcProcess {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("atrelay plc printed no listening line in 30 s");
        let addr = line
            .trim()
            .strip_prefix("atrelay plc listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        process.addr = addr;
        process
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for atrelay plc") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "atrelay plc did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PlcProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, String, Option<String>) {
    let res = http().get(url).send().await.expect("GET");
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, res.text().await.unwrap(), ctype)
}

async fn get_json(url: &str) -> (u16, Value) {
    let (status, body, _) = get(url).await;
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, json)
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, body.to_string().into_bytes()).await
}

async fn post_raw(url: &str, body: Vec<u8>) -> (u16, Value) {
    let res = http()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn did_key(key: &PrivateKey) -> String {
    key.public_key().to_did_key()
}

/// An account as a PDS would register it: a repo signing key and two
/// rotation keys (the user's recovery key above the PDS's).
struct Account {
    signing: PrivateKey,
    recovery: PrivateKey,
    pds: PrivateKey,
    genesis: Genesis,
}

fn account(handle: &str, endpoint: &str) -> Account {
    let signing = PrivateKey::generate(Curve::K256);
    let recovery = PrivateKey::generate(Curve::P256);
    let pds = PrivateKey::generate(Curve::K256);
    let genesis = genesis_op(
        &did_key(&signing),
        handle,
        endpoint,
        &[did_key(&recovery), did_key(&pds)],
        &pds,
    )
    .unwrap();
    Account {
        signing,
        recovery,
        pds,
        genesis,
    }
}

/// `op`'s JSON with its `sig` replaced by `sig` (base64url text).
fn with_sig(op: &SignedOperation, sig: &str) -> Value {
    let mut json = op.to_json();
    json["sig"] = json!(sig);
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_the_plc_api_and_keeps_it_across_restarts() {
    bounded(async {
        let data = tempfile::tempdir().unwrap();
        let mut plc = PlcProcess::start(data.path());

        let (status, health) = get_json(&plc.url("/_health")).await;
        assert_eq!(status, 200);
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

        // Genesis.
        let alice = account("alice.test", "https://pds.example.com");
        let did = alice.genesis.did.clone();
        let (status, body) = post(&plc.url(&format!("/{did}")), &alice.genesis.to_json()).await;
        assert_eq!(status, 200, "{body}");

        // The document, as the relay's resolver parses it.
        let (status, text, ctype) = get(&plc.url(&format!("/{did}"))).await;
        assert_eq!(status, 200);
        assert_eq!(ctype.as_deref(), Some("application/did+ld+json"));
        let doc: Value = serde_json::from_str(&text).unwrap();
        let identity = parse_document(&did, &doc).unwrap();
        assert_eq!(identity.signing_key, Some(alice.signing.public_key()));
        assert_eq!(identity.handle.as_deref(), Some("alice.test"));
        assert_eq!(
            identity.pds_endpoint.as_deref(),
            Some("https://pds.example.com")
        );
        let (status, data_json) = get_json(&plc.url(&format!("/{did}/data"))).await;
        assert_eq!(status, 200);
        assert_eq!(data_json["did"], did.as_str());
        assert_eq!(
            data_json["rotationKeys"],
            json!([did_key(&alice.recovery), did_key(&alice.pds)])
        );

        // Handle change, signed by the PDS's rotation key.
        let update = update_op(&alice.genesis.op, &alice.pds, |op| {
            op.set_handle("alice2.test")
        })
        .unwrap();
        let (status, body) = post(&plc.url(&format!("/{did}")), &update.to_json()).await;
        assert_eq!(status, 200, "{body}");
        let (status, log) = get_json(&plc.url(&format!("/{did}/log"))).await;
        assert_eq!(status, 200);
        let log = log.as_array().unwrap();
        assert_eq!(log.len(), 2);
        let (status, last) = get_json(&plc.url(&format!("/{did}/log/last"))).await;
        assert_eq!(status, 200);
        let last = SignedOperation::from_json(&last).unwrap();
        assert_eq!(last.cid(), update.cid());
        let (_, text, _) = get(&plc.url(&format!("/{did}"))).await;
        let identity = parse_document(&did, &serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(identity.handle.as_deref(), Some("alice2.test"));

        // Forged: signed by a key that is not a rotation key.
        let stranger = PrivateKey::generate(Curve::K256);
        let mut forged_op = update.operation().normalized().unwrap().into_owned();
        forged_op.prev = Some(update.cid().to_string());
        forged_op.set_handle("mallory.test");
        let forged = Operation::Regular(forged_op).sign(&stranger).unwrap();
        let (status, body) = post(&plc.url(&format!("/{did}")), &forged.to_json()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("signature"),
            "{body}"
        );

        // High-S: a genuine signature by the PDS key with s' = n - s.
        let next = update_op(&update, &alice.pds, |op| op.set_handle("alice3.test")).unwrap();
        let high = negate_s(Curve::K256, next.signature());
        let (status, body) = post(
            &plc.url(&format!("/{did}")),
            &with_sig(&next, &URL_SAFE_NO_PAD.encode(high)),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("high S"),
            "{body}"
        );
        // Padded, and 71 bytes (a DER-sized signature).
        let padded = format!("{}==", next.signature_text());
        let (status, _) = post(&plc.url(&format!("/{did}")), &with_sig(&next, &padded)).await;
        assert_eq!(status, 400);
        let der_sized = URL_SAFE_NO_PAD.encode([0x30u8; 71]);
        let (status, _) = post(&plc.url(&format!("/{did}")), &with_sig(&next, &der_sized)).await;
        assert_eq!(status, 400);
        // Wrong prev: chained on the genesis again is a fork the PDS key
        // (same authority as the update's signer) may not make.
        let fork = update_op(&alice.genesis.op, &alice.pds, |op| op.set_handle("x.test")).unwrap();
        let (status, _) = post(&plc.url(&format!("/{did}")), &fork.to_json()).await;
        assert_eq!(status, 400);
        // Genesis posted under another DID.
        let bob = account("bob.test", "https://pds.example.com");
        // Wrong prev: a CID from another DID's log.
        let stray = update_op(&bob.genesis.op, &bob.pds, |op| op.set_handle("y.test")).unwrap();
        let (status, body) = post(&plc.url(&format!("/{did}")), &stray.to_json()).await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("prev"), "{body}");
        let (status, body) = post(
            &plc.url("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"),
            &bob.genesis.to_json(),
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            body["message"].as_str().unwrap().contains("hashes to"),
            "{body}"
        );
        // Malformed bodies and DIDs never reach the directory.
        let (status, _) = post_raw(&plc.url(&format!("/{did}")), b"{not json".to_vec()).await;
        assert_eq!(status, 400);
        let (status, _) = post_raw(&plc.url(&format!("/{did}")), vec![b' '; 20_000]).await;
        assert_eq!(status, 413);
        let (status, _) = post(&plc.url("/did:web:example.com"), &bob.genesis.to_json()).await;
        assert_eq!(status, 400);
        for path in ["/did:plc:UPPER", "/not-a-did/log", "/did:plc:short/data"] {
            assert_eq!(get(&plc.url(path)).await.0, 400, "{path}");
        }
        for path in ["", "/data", "/log", "/log/audit", "/log/last"] {
            let url = plc.url(&format!("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa{path}"));
            assert_eq!(get(&url).await.0, 404, "{path}");
        }
        assert_eq!(get(&plc.url("/export/stream")).await.0, 404);

        // Bob registers properly; Carol registers and is tombstoned.
        let (status, _) = post(
            &plc.url(&format!("/{}", bob.genesis.did)),
            &bob.genesis.to_json(),
        )
        .await;
        assert_eq!(status, 200);
        let carol = account("carol.test", "https://pds.example.com");
        let carol_did = carol.genesis.did.clone();
        let (status, _) = post(&plc.url(&format!("/{carol_did}")), &carol.genesis.to_json()).await;
        assert_eq!(status, 200);
        let tomb = tombstone_op(&carol.genesis.op, &carol.recovery).unwrap();
        let (status, body) = post(&plc.url(&format!("/{carol_did}")), &tomb.to_json()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(get(&plc.url(&format!("/{carol_did}"))).await.0, 410);
        assert_eq!(get(&plc.url(&format!("/{carol_did}/data"))).await.0, 410);
        let (status, last) = get_json(&plc.url(&format!("/{carol_did}/log/last"))).await;
        assert_eq!(status, 200);
        assert_eq!(last["type"], "plc_tombstone");
        // Nothing follows a tombstone signed by the top rotation key.
        let after = update_op(&carol.genesis.op, &carol.recovery, |op| {
            op.set_handle("carol2.test")
        })
        .unwrap();
        let (status, body) = post(&plc.url(&format!("/{carol_did}")), &after.to_json()).await;
        assert_eq!(status, 400, "{body}");

        // Audit log and export.
        let (status, audit) = get_json(&plc.url(&format!("/{did}/log/audit"))).await;
        assert_eq!(status, 200);
        let audit = audit.as_array().unwrap();
        assert_eq!(audit.len(), 2);
        for entry in audit {
            assert_eq!(entry["did"], did.as_str());
            assert_eq!(entry["nullified"], false);
            assert!(entry["cid"].as_str().unwrap().starts_with("bafyrei"));
            atrelay::wire::syntax::parse_datetime(entry["createdAt"].as_str().unwrap()).unwrap();
        }
        let export = export_lines(&plc, "?after=0&count=1000").await;
        assert_eq!(export.len(), 5, "alice ×2, bob, carol ×2");
        let seqs: Vec<u64> = export.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        for line in &export {
            assert_eq!(line["type"], "sequenced_op");
            let op = SignedOperation::from_json(&line["operation"]).unwrap();
            assert_eq!(line["cid"], op.cid().to_string());
            assert!(line["did"].as_str().unwrap().starts_with("did:plc:"));
            assert!(line["createdAt"].is_string());
        }
        assert_eq!(export_lines(&plc, "?after=3").await.len(), 2);
        assert_eq!(export_lines(&plc, "?after=0&count=2").await.len(), 2);
        assert_eq!(export_lines(&plc, "?after=5").await.len(), 0);
        let legacy = export_lines(&plc, "").await;
        assert_eq!(legacy.len(), 5);
        assert!(legacy[0].get("nullified").is_some());
        for bad in ["?count=0", "?count=1001", "?count=x", "?after=yesterday"] {
            assert_eq!(
                get(&plc.url(&format!("/export{bad}"))).await.0,
                400,
                "{bad}"
            );
        }

        // SIGTERM: a clean exit.
        assert!(plc.terminate().success());
        drop(plc);

        // Restarted on the same data dir, then killed -9 and restarted again:
        // every acknowledged op is still there.
        let plc = PlcProcess::start(data.path());
        let more = account("dave.test", "https://pds.example.com");
        let (status, _) = post(
            &plc.url(&format!("/{}", more.genesis.did)),
            &more.genesis.to_json(),
        )
        .await;
        assert_eq!(status, 200);
        drop(plc); // SIGKILL
        let plc = PlcProcess::start(data.path());
        let (status, log) = get_json(&plc.url(&format!("/{did}/log"))).await;
        assert_eq!(status, 200);
        assert_eq!(log.as_array().unwrap().len(), 2);
        let (_, text, _) = get(&plc.url(&format!("/{did}"))).await;
        let identity = parse_document(&did, &serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(identity.handle.as_deref(), Some("alice2.test"));
        assert_eq!(get(&plc.url(&format!("/{carol_did}"))).await.0, 410);
        let export = export_lines(&plc, "?after=0").await;
        assert_eq!(
            export
                .iter()
                .map(|l| l["seq"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(export[5]["did"], more.genesis.did.as_str());
        // The chain continues from the persisted head.
        let next = update_op(&update, &alice.pds, |op| op.set_handle("alice4.test")).unwrap();
        let (status, body) = post(&plc.url(&format!("/{did}")), &next.to_json()).await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
}

async fn export_lines(plc: &PlcProcess, query: &str) -> Vec<Value> {
    let (status, body, ctype) = get(&plc.url(&format!("/export{query}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ctype.as_deref(), Some("application/jsonlines"));
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_resolver_resolves_from_the_in_process_directory() {
    bounded(async {
        let data = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plc = PlcServer::start(listener, data.path()).await.unwrap();
        let client = PlcClient::new(&plc.url());

        let alice = account("alice.test", "http://127.0.0.1:2583");
        let did = alice.genesis.did.clone();
        assert_eq!(client.last_op(&did).await.unwrap(), None);
        client.submit(&did, &alice.genesis.op).await.unwrap();
        assert_eq!(
            client.last_op(&did).await.unwrap().map(|op| op.cid()),
            Some(alice.genesis.op.cid())
        );

        let resolver = Resolver::new(ResolverConfig {
            plc_url: plc.url(),
            allow_private: true,
            timeout: Duration::from_secs(5),
            ..ResolverConfig::default()
        });
        let identity = resolver.resolve(&did).await.unwrap();
        assert_eq!(identity.signing_key, Some(alice.signing.public_key()));
        assert_eq!(identity.handle.as_deref(), Some("alice.test"));
        assert_eq!(
            identity.pds_endpoint.as_deref(),
            Some("http://127.0.0.1:2583")
        );
        assert_eq!(identity.pds_host.as_deref(), Some("127.0.0.1:2583"));

        // A refused op comes back as the directory's 400 message.
        let stranger = PrivateKey::generate(Curve::K256);
        let mut op = alice
            .genesis
            .op
            .operation()
            .normalized()
            .unwrap()
            .into_owned();
        op.prev = Some(alice.genesis.op.cid().to_string());
        let forged = Operation::Regular(op).sign(&stranger).unwrap();
        match client.submit(&did, &forged).await {
            Err(atrelay::plc::ClientError::Status {
                status: 400,
                message,
            }) => {
                assert!(message.contains("signature"), "{message}")
            }
            other => panic!("expected a 400, got {other:?}"),
        }

        // Recovery: the user's key nullifies the PDS's update within 72 h.
        let moved = update_op(&alice.genesis.op, &alice.pds, |op| {
            op.set_pds_endpoint("http://127.0.0.1:9999")
        })
        .unwrap();
        client.submit(&did, &moved).await.unwrap();
        let recovered = update_op(&alice.genesis.op, &alice.recovery, |op| {
            op.set_handle("alice-recovered.test")
        })
        .unwrap();
        client.submit(&did, &recovered).await.unwrap();
        let identity = resolver.refresh(&did).await.unwrap();
        assert_eq!(identity.handle.as_deref(), Some("alice-recovered.test"));
        assert_eq!(
            identity.pds_endpoint.as_deref(),
            Some("http://127.0.0.1:2583")
        );
        let directory = plc.directory();
        let audit = directory.audit_log(&did).unwrap();
        assert_eq!(
            audit.iter().map(|o| o.nullified).collect::<Vec<_>>(),
            [false, true, false]
        );
        drop(directory);

        // Unknown and tombstoned DIDs.
        let unknown = account("nobody.test", "http://127.0.0.1:2583");
        assert!(matches!(
            resolver.resolve(&unknown.genesis.did).await,
            Err(ResolveError::NotFound)
        ));
        let tomb = tombstone_op(&recovered, &alice.recovery).unwrap();
        client.submit(&did, &tomb).await.unwrap();
        assert!(matches!(
            resolver.refresh(&did).await,
            Err(ResolveError::Tombstoned)
        ));

        // Stopping closes the database: the same dir opens again at once.
        plc.stop().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plc = PlcServer::start(listener, data.path()).await.unwrap();
        assert_eq!(plc.directory().last_seq(), 4);
        plc.stop().await;
    })
    .await;
}
