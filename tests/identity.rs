//! Identity: DID document parsing, and resolution against real HTTP servers on
//! 127.0.0.1 (a test PLC directory and a did:web host) covering caching, TTLs,
//! single-flight, purge, failures and limits.
//!
//! Every test is bounded by `tokio::time::timeout` (see [`bounded`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atrelay::crypto::{Curve, PrivateKey, PublicKey};
use atrelay::identity::{
    parse_document, Identity, ResolveError, Resolver, ResolverConfig, MAX_DOCUMENT_BYTES,
};
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CURVES: [Curve; 2] = [Curve::K256, Curve::P256];

/// Runs a test body with an overall deadline so a hang fails instead of stalling.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out")
}

// ---------------------------------------------------------------------------
// Documents

/// A did:plc made from `n`: `did:plc:` + 24 base32 characters.
fn plc_did(n: u64) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555;
    let mut id = String::from("did:plc:");
    for i in 0..24 {
        if i == 12 {
            x = n.wrapping_add(7).wrapping_mul(0xff51_afd7_ed55_8ccd);
        }
        id.push(ALPHABET[(x & 31) as usize] as char);
        x >>= 5;
    }
    id
}

/// A DID document in the shape plc.directory renders (absolute key id,
/// relative service id, Multikey).
fn plc_doc(did: &str, key: &PublicKey, endpoint: &str, handle: &str) -> Value {
    json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/secp256k1-2019/v1"
        ],
        "id": did,
        "alsoKnownAs": [format!("at://{handle}")],
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": key.to_multikey()
        }],
        "service": [{
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": endpoint
        }]
    })
}

/// A document with a single verification method and service given as JSON.
fn doc_with(did: &str, method: Value, service: Value) -> Value {
    json!({
        "id": did,
        "alsoKnownAs": ["at://alice.example.com"],
        "verificationMethod": [method],
        "service": [service]
    })
}

fn pds_service(endpoint: &str) -> Value {
    json!({"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": endpoint})
}

fn multikey_method(id: &str, did: &str, key: &PublicKey) -> Value {
    json!({"id": id, "type": "Multikey", "controller": did, "publicKeyMultibase": key.to_multikey()})
}

// ---------------------------------------------------------------------------
// Test servers

/// What the test server answers for one path.
#[derive(Clone)]
enum Behavior {
    /// 200 with this JSON.
    Doc(Value),
    /// This status with a small body.
    Status(u16),
    /// 200 with this JSON after a delay.
    Slow(Duration, Value),
    /// 200 with this raw body.
    Raw(String),
    /// A redirect to this location.
    Redirect(String),
}

#[derive(Default)]
struct ServerState {
    behaviors: Mutex<HashMap<String, Behavior>>,
    hits: Mutex<HashMap<String, usize>>,
    /// Extra delay before every answer (to make concurrent callers overlap).
    delay: Mutex<Duration>,
}

/// An axum server on 127.0.0.1:0 answering by path (without the leading `/`):
/// a PLC directory (`/{did}`) or a did:web host (`/.well-known/did.json`).
/// Unknown paths are 404. Counts requests per path.
struct TestServer {
    base: String,
    port: u16,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(state): State<Arc<ServerState>>, uri: Uri) -> Response {
    let key = uri.path().trim_start_matches('/').to_owned();
    *state
        .hits
        .lock()
        .expect("lock")
        .entry(key.clone())
        .or_default() += 1;
    let delay = *state.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let behavior = state.behaviors.lock().expect("lock").get(&key).cloned();
    let did_json = [(header::CONTENT_TYPE, "application/did+ld+json")];
    match behavior {
        None => (StatusCode::NOT_FOUND, "DID not registered").into_response(),
        Some(Behavior::Doc(doc)) => (did_json, doc.to_string()).into_response(),
        Some(Behavior::Slow(wait, doc)) => {
            tokio::time::sleep(wait).await;
            (did_json, doc.to_string()).into_response()
        }
        Some(Behavior::Status(code)) => (
            StatusCode::from_u16(code).expect("status"),
            "{\"message\":\"nope\"}",
        )
            .into_response(),
        Some(Behavior::Raw(body)) => (did_json, body).into_response(),
        Some(Behavior::Redirect(to)) => {
            (StatusCode::FOUND, [(header::LOCATION, to)], "").into_response()
        }
    }
}

impl TestServer {
    async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(ServerState::default());
        let app = Router::new().fallback(serve).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            state,
            task,
        }
    }

    fn set(&self, path: &str, behavior: Behavior) {
        self.state
            .behaviors
            .lock()
            .expect("lock")
            .insert(path.to_owned(), behavior);
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().expect("lock") = delay;
    }

    /// A resolver pointed at this server as its PLC directory.
    fn resolver(&self) -> Resolver {
        self.resolver_with(|_| {})
    }

    fn resolver_with(&self, tweak: impl FnOnce(&mut ResolverConfig)) -> Resolver {
        let mut cfg = ResolverConfig {
            plc_url: self.base.clone(),
            allow_private: true,
            timeout: Duration::from_secs(5),
            ..ResolverConfig::default()
        };
        tweak(&mut cfg);
        Resolver::new(cfg)
    }
}

/// Registers a fresh DID with a real key on the server; returns the DID and key.
/// The document [`register`] publishes: the key, a PDS, a handle.
fn standard_doc(did: &str, key: &PrivateKey) -> Value {
    plc_doc(
        did,
        &key.public_key(),
        "https://pds.example.com",
        "alice.example.com",
    )
}

fn register(server: &TestServer, n: u64, curve: Curve) -> (String, PrivateKey) {
    let did = plc_did(n);
    let key = PrivateKey::generate(curve);
    server.set(&did, Behavior::Doc(standard_doc(&did, &key)));
    (did, key)
}

// ---------------------------------------------------------------------------
// parse_document

#[test]
fn parses_multikey_docs_for_both_curves_and_id_forms() {
    let did = plc_did(1);
    for curve in CURVES {
        let key = PrivateKey::generate(curve);
        let public = key.public_key();
        for key_id in [format!("{did}#atproto"), "#atproto".to_owned()] {
            for service_id in [format!("{did}#atproto_pds"), "#atproto_pds".to_owned()] {
                let mut service = pds_service("https://pds.example.com");
                service["id"] = json!(service_id);
                let doc = doc_with(&did, multikey_method(&key_id, &did, &public), service);
                let id = parse_document(&did, &doc).expect("parse");
                assert_eq!(&*id.did, did);
                assert_eq!(id.handle.as_deref(), Some("alice.example.com"));
                assert_eq!(id.signing_key.as_ref(), Some(&public));
                assert_eq!(id.pds_endpoint.as_deref(), Some("https://pds.example.com"));
                assert_eq!(id.pds_host.as_deref(), Some("pds.example.com"));
                // The parsed key verifies the account's signatures.
                let sig = key.sign(b"commit bytes");
                let parsed = id.signing_key.expect("key");
                assert_eq!(parsed.curve(), curve);
                assert!(parsed.verify(b"commit bytes", &sig).is_ok());
            }
        }
    }
}

#[test]
fn parses_legacy_docs_for_both_curves() {
    let did = "did:web:alice.example.com";
    for curve in CURVES {
        let key = PrivateKey::generate(curve);
        let public = key.public_key();
        for key_id in [format!("{did}#atproto"), "#atproto".to_owned()] {
            let method = json!({
                "id": key_id,
                "type": public.legacy_key_type(),
                "controller": did,
                "publicKeyMultibase": public.to_legacy_multibase()
            });
            let doc = doc_with(did, method, pds_service("https://pds.example.com/"));
            let id = parse_document(did, &doc).expect("parse");
            assert_eq!(id.signing_key.as_ref(), Some(&public), "{curve:?}");
            assert_eq!(id.pds_endpoint.as_deref(), Some("https://pds.example.com"));
            let sig = key.sign(b"m");
            assert!(id.signing_key.expect("key").verify(b"m", &sig).is_ok());
        }
        // The legacy type of the other curve does not parse: no key.
        let other = match curve {
            Curve::K256 => "EcdsaSecp256r1VerificationKey2019",
            Curve::P256 => "EcdsaSecp256k1VerificationKey2019",
        };
        let method = json!({"id": "#atproto", "type": other, "controller": did,
            "publicKeyMultibase": public.to_legacy_multibase()});
        let doc = doc_with(did, method, pds_service("https://pds.example.com"));
        // A wrong-curve x coordinate is usually not on the other curve; either
        // way the key must not come back as this key.
        let id = parse_document(did, &doc).expect("parse");
        assert_ne!(id.signing_key.as_ref(), Some(&public));
    }
}

#[test]
fn first_matching_entries_win() {
    let did = plc_did(2);
    let a = PrivateKey::generate(Curve::K256).public_key();
    let b = PrivateKey::generate(Curve::P256).public_key();
    let doc = json!({
        "id": did,
        "alsoKnownAs": ["at://First.Example.com", "at://second.example.com"],
        "verificationMethod": [
            multikey_method("#other", &did, &b),
            {"id": "#atproto", "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": {}},
            multikey_method("#atproto", &did, &a),
            multikey_method("#atproto", &did, &b),
        ],
        "service": [
            {"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": "https://feed.example.com"},
            {"id": "#atproto_pds", "type": "Other", "serviceEndpoint": "https://other.example.com"},
            pds_service("https://one.example.com"),
            pds_service("https://two.example.com"),
        ]
    });
    let id = parse_document(&did, &doc).expect("parse");
    assert_eq!(id.handle.as_deref(), Some("first.example.com"));
    assert_eq!(id.signing_key, Some(a));
    assert_eq!(id.pds_host.as_deref(), Some("one.example.com"));
}

#[test]
fn missing_or_unusable_key_and_pds_are_none() {
    let did = plc_did(3);
    let key = PrivateKey::generate(Curve::K256).public_key();
    let empty = json!({"id": did});
    let id = parse_document(&did, &empty).expect("bare doc");
    assert_eq!(
        id,
        Identity {
            did: did.as_str().into(),
            handle: None,
            signing_key: None,
            pds_endpoint: None,
            pds_host: None,
        }
    );

    let unusable_methods = [
        // Another DID's key.
        multikey_method(&format!("{}#atproto", plc_did(4)), &did, &key),
        // Foreign controller.
        multikey_method("#atproto", &plc_did(4), &key),
        // Not the #atproto id.
        multikey_method("#atproto_label", &did, &key),
        // Key bytes that do not parse.
        json!({"id": "#atproto", "type": "Multikey", "controller": did, "publicKeyMultibase": "zQ3shnotakey"}),
        // A did:key is not a Multikey value.
        json!({"id": "#atproto", "type": "Multikey", "controller": did, "publicKeyMultibase": key.to_did_key()}),
        // Legacy value under the Multikey type.
        json!({"id": "#atproto", "type": "Multikey", "controller": did, "publicKeyMultibase": key.to_legacy_multibase()}),
        // No key material.
        json!({"id": "#atproto", "type": "Multikey", "controller": did}),
        // Unsupported type.
        json!({"id": "#atproto", "type": "Ed25519VerificationKey2020", "controller": did, "publicKeyMultibase": key.to_multikey()}),
    ];
    for method in unusable_methods {
        let doc = doc_with(&did, method.clone(), pds_service("https://pds.example.com"));
        let id = parse_document(&did, &doc).expect("parse");
        assert_eq!(id.signing_key, None, "{method}");
        assert_eq!(id.pds_host.as_deref(), Some("pds.example.com"));
    }

    // A missing controller is tolerated.
    let method =
        json!({"id": "#atproto", "type": "Multikey", "publicKeyMultibase": key.to_multikey()});
    let doc = doc_with(&did, method, pds_service("https://pds.example.com"));
    assert_eq!(
        parse_document(&did, &doc).expect("parse").signing_key,
        Some(key.clone())
    );

    let unusable_services = [
        json!({"id": "#atproto_pds", "type": "AtprotoLabeler", "serviceEndpoint": "https://pds.example.com"}),
        json!({"id": "#atproto_labeler", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.example.com"}),
        json!({"id": format!("{}#atproto_pds", plc_did(4)), "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.example.com"}),
        json!({"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": ["https://pds.example.com"]}),
    ];
    for service in unusable_services {
        let doc = doc_with(
            &did,
            multikey_method("#atproto", &did, &key),
            service.clone(),
        );
        let id = parse_document(&did, &doc).expect("parse");
        assert_eq!(id.signing_key.as_ref(), Some(&key));
        assert_eq!((id.pds_endpoint, id.pds_host), (None, None), "{service}");
    }
}

/// Decision: a malformed `serviceEndpoint` does not make the whole document
/// invalid; it leaves `pds_endpoint` / `pds_host` as `None` (the account has no
/// usable PDS), while the signing key is still reported.
#[test]
fn bad_endpoint_is_no_pds_not_invalid() {
    let did = plc_did(5);
    let key = PrivateKey::generate(Curve::P256).public_key();
    for endpoint in [
        "pds.example.com",
        "ftp://pds.example.com",
        "wss://pds.example.com",
        "https://pds.example.com/xrpc",
        "https://pds.example.com/path/",
        "https://user:pass@pds.example.com",
        "https://user@pds.example.com",
        "https://pds.example.com?q=1",
        "https://pds.example.com#x",
        "https://",
        "",
        "not a url",
    ] {
        let doc = doc_with(
            &did,
            multikey_method("#atproto", &did, &key),
            pds_service(endpoint),
        );
        let id = parse_document(&did, &doc).expect("parse");
        assert_eq!(id.pds_endpoint, None, "{endpoint:?}");
        assert_eq!(id.pds_host, None, "{endpoint:?}");
        assert_eq!(id.signing_key.as_ref(), Some(&key));
    }
}

#[test]
fn pds_host_keeps_only_non_default_ports() {
    let did = plc_did(6);
    let key = PrivateKey::generate(Curve::K256).public_key();
    for (endpoint, want_endpoint, want_host) in [
        (
            "https://pds.example.com",
            "https://pds.example.com",
            "pds.example.com",
        ),
        (
            "https://pds.example.com/",
            "https://pds.example.com",
            "pds.example.com",
        ),
        (
            "https://PDS.Example.COM:443",
            "https://pds.example.com",
            "pds.example.com",
        ),
        (
            "https://pds.example.com:8443",
            "https://pds.example.com:8443",
            "pds.example.com:8443",
        ),
        (
            "http://pds.example.com:80",
            "http://pds.example.com",
            "pds.example.com",
        ),
        // The host as the relay dials it: wss on 443 for a public name.
        (
            "http://pds.example.com:443",
            "http://pds.example.com:443",
            "pds.example.com",
        ),
        (
            "http://127.0.0.1:2583",
            "http://127.0.0.1:2583",
            "127.0.0.1:2583",
        ),
        (
            "http://localhost:2583/",
            "http://localhost:2583",
            "localhost:2583",
        ),
    ] {
        let doc = doc_with(
            &did,
            multikey_method("#atproto", &did, &key),
            pds_service(endpoint),
        );
        let id = parse_document(&did, &doc).expect("parse");
        assert_eq!(
            id.pds_endpoint.as_deref(),
            Some(want_endpoint),
            "{endpoint}"
        );
        assert_eq!(id.pds_host.as_deref(), Some(want_host), "{endpoint}");
    }
}

#[test]
fn id_mismatch_and_malformed_docs_are_invalid() {
    let did = plc_did(7);
    let key = PrivateKey::generate(Curve::K256).public_key();
    let good = plc_doc(&did, &key, "https://pds.example.com", "a.example.com");
    assert!(parse_document(&did, &good).is_ok());
    // Resolved for another DID (or differently cased).
    for other in [
        plc_did(8),
        did.to_uppercase(),
        format!("{did} "),
        String::new(),
    ] {
        assert!(
            matches!(parse_document(&other, &good), Err(ResolveError::Invalid(_))),
            "{other}"
        );
    }
    let mut no_id = good.clone();
    no_id.as_object_mut().expect("object").remove("id");
    let mut wrong_type = good.clone();
    wrong_type["verificationMethod"] = json!({"id": "#atproto"});
    for doc in [
        no_id,
        wrong_type,
        json!(null),
        json!([good.clone()]),
        json!("did"),
    ] {
        let r = parse_document(&did, &doc);
        assert!(matches!(r, Err(ResolveError::Invalid(_))), "{doc}: {r:?}");
    }
}

// ---------------------------------------------------------------------------
// Resolution

#[tokio::test]
async fn resolves_did_plc_from_the_directory() {
    bounded(async {
        let server = TestServer::start().await;
        let resolver = server.resolver();
        for (n, curve) in [(10, Curve::K256), (11, Curve::P256)] {
            let (did, key) = register(&server, n, curve);
            let id = resolver.resolve(&did).await.expect("resolve");
            assert_eq!(&*id.did, did);
            assert_eq!(id.signing_key, Some(key.public_key()));
            assert_eq!(id.handle.as_deref(), Some("alice.example.com"));
            assert_eq!(id.pds_endpoint.as_deref(), Some("https://pds.example.com"));
            assert_eq!(id.pds_host.as_deref(), Some("pds.example.com"));
            assert_eq!(server.hits(&did), 1);
        }
        // A trailing slash on the directory URL is fine.
        let resolver = server.resolver_with(|c| c.plc_url = format!("{}/", server.base));
        let did = plc_did(10);
        assert!(resolver.resolve(&did).await.is_ok());
        assert_eq!(server.hits(&did), 2);
    })
    .await;
}

#[tokio::test]
async fn resolves_did_web_on_loopback_with_allow_private() {
    bounded(async {
        let server = TestServer::start().await;
        let did = format!("did:web:127.0.0.1%3A{}", server.port);
        let key = PrivateKey::generate(Curve::P256);
        let pds = format!("http://127.0.0.1:{}", server.port);
        server.set(
            ".well-known/did.json",
            Behavior::Doc(plc_doc(&did, &key.public_key(), &pds, "web.example.com")),
        );
        let resolver = server.resolver();
        let id = resolver.resolve(&did).await.expect("resolve");
        assert_eq!(&*id.did, did);
        assert_eq!(id.signing_key, Some(key.public_key()));
        assert_eq!(id.pds_endpoint.as_deref(), Some(pds.as_str()));
        assert_eq!(
            id.pds_host.as_deref(),
            Some(format!("127.0.0.1:{}", server.port).as_str())
        );
        assert_eq!(server.hits(".well-known/did.json"), 1);
        // Cached like any other.
        assert!(resolver.resolve(&did).await.is_ok());
        assert_eq!(server.hits(".well-known/did.json"), 1);

        // Without allow_private a loopback did:web is refused with no request.
        let strict = server.resolver_with(|c| c.allow_private = false);
        assert!(matches!(
            strict.resolve(&did).await,
            Err(ResolveError::Invalid(_))
        ));
        let localhost = format!("did:web:localhost%3A{}", server.port);
        assert!(matches!(
            strict.resolve(&localhost).await,
            Err(ResolveError::Invalid(_))
        ));
        assert_eq!(server.hits(".well-known/did.json"), 1);

        // The same host under another name: the document's id does not match.
        let id = resolver.resolve(&localhost).await;
        assert!(matches!(id, Err(ResolveError::Invalid(_))), "{id:?}");
        assert_eq!(server.hits(".well-known/did.json"), 2);

        // Paths and other methods are refused up front.
        for bad in [
            format!("did:web:127.0.0.1%3A{}:user:alice", server.port),
            "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc".to_owned(),
            "did:example:123".to_owned(),
        ] {
            assert!(
                matches!(resolver.resolve(&bad).await, Err(ResolveError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(server.hits(".well-known/did.json"), 2);
    })
    .await;
}

#[tokio::test]
async fn cache_hit_makes_no_request() {
    bounded(async {
        let server = TestServer::start().await;
        let (did, _) = register(&server, 20, Curve::K256);
        let resolver = server.resolver();
        assert!(resolver.cached(&did).is_none());
        let first = resolver.resolve(&did).await.expect("first");
        for _ in 0..10 {
            let again = resolver.resolve(&did).await.expect("again");
            assert!(Arc::ptr_eq(&first, &again));
        }
        let peek = resolver.cached(&did).expect("cached");
        assert!(Arc::ptr_eq(&first, &peek));
        // Clones share the cache.
        let clone = resolver.clone();
        assert!(Arc::ptr_eq(
            &first,
            &clone.resolve(&did).await.expect("clone")
        ));
        assert_eq!(server.hits(&did), 1);
        assert_eq!(resolver.cache_len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resolves_share_one_request() {
    bounded(async {
        let server = TestServer::start().await;
        server.set_delay(Duration::from_millis(200));
        let (did, key) = register(&server, 30, Curve::P256);
        let resolver = server.resolver();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let resolver = resolver.clone();
            let did = did.clone();
            tasks.push(tokio::spawn(async move { resolver.resolve(&did).await }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("join").expect("resolve"));
        }
        assert_eq!(server.hits(&did), 1);
        for r in &results {
            assert!(Arc::ptr_eq(r, &results[0]));
            assert_eq!(r.signing_key, Some(key.public_key()));
        }
        assert_eq!(resolver.in_flight_len(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_also_share_one_request() {
    bounded(async {
        let server = TestServer::start().await;
        server.set_delay(Duration::from_millis(200));
        let did = plc_did(31);
        server.set(&did, Behavior::Status(503));
        let resolver = server.resolver();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let resolver = resolver.clone();
            let did = did.clone();
            tasks.push(tokio::spawn(async move { resolver.resolve(&did).await }));
        }
        for task in tasks {
            let r = task.await.expect("join");
            assert!(matches!(r, Err(ResolveError::Transient(_))), "{r:?}");
        }
        assert_eq!(server.hits(&did), 1);
    })
    .await;
}

#[tokio::test]
async fn a_caller_giving_up_does_not_cancel_the_fetch() {
    bounded(async {
        let server = TestServer::start().await;
        server.set_delay(Duration::from_millis(300));
        let (did, _) = register(&server, 32, Curve::K256);
        let resolver = server.resolver();
        let gave_up = tokio::time::timeout(Duration::from_millis(50), resolver.resolve(&did)).await;
        assert!(gave_up.is_err(), "should still be in flight");
        // The fetch finishes on its own and fills the cache.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(resolver.cached(&did).is_some());
        assert!(resolver.resolve(&did).await.is_ok());
        assert_eq!(server.hits(&did), 1);
    })
    .await;
}

#[tokio::test]
async fn ttl_expiry_refetches() {
    bounded(async {
        let server = TestServer::start().await;
        let (did, _) = register(&server, 40, Curve::K256);
        let resolver = server.resolver_with(|c| c.ttl = Duration::from_millis(300));
        resolver.resolve(&did).await.expect("first");
        resolver.resolve(&did).await.expect("cached");
        assert_eq!(server.hits(&did), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            resolver.cached(&did).is_none(),
            "stale entries are not served"
        );
        resolver.resolve(&did).await.expect("refetched");
        assert_eq!(server.hits(&did), 2);
        resolver.resolve(&did).await.expect("cached again");
        assert_eq!(server.hits(&did), 2);
    })
    .await;
}

#[tokio::test]
async fn purge_and_refresh_pick_up_a_rotated_key() {
    bounded(async {
        let server = TestServer::start().await;
        let (did, old) = register(&server, 50, Curve::K256);
        let resolver = server.resolver();
        let first = resolver.resolve(&did).await.expect("first");
        assert_eq!(first.signing_key, Some(old.public_key()));

        // Rotate the key and move the PDS; the cache still has the old document.
        let new = PrivateKey::generate(Curve::P256);
        server.set(
            &did,
            Behavior::Doc(plc_doc(
                &did,
                &new.public_key(),
                "https://new-pds.example.com:8443",
                "alice.example.com",
            )),
        );
        let cached = resolver.resolve(&did).await.expect("cached");
        assert_eq!(cached.signing_key, Some(old.public_key()));
        assert_eq!(server.hits(&did), 1);

        resolver.purge(&did);
        assert!(resolver.cached(&did).is_none());
        assert_eq!(resolver.cache_len(), 0);
        let fresh = resolver.resolve(&did).await.expect("after purge");
        assert_eq!(fresh.signing_key, Some(new.public_key()));
        assert_eq!(fresh.pds_host.as_deref(), Some("new-pds.example.com:8443"));
        assert_eq!(server.hits(&did), 2);

        // refresh = purge + resolve: always one more request.
        let refreshed = resolver.refresh(&did).await.expect("refresh");
        assert_eq!(refreshed.signing_key, Some(new.public_key()));
        assert_eq!(server.hits(&did), 3);
        // Purging an unknown DID is harmless.
        resolver.purge(&plc_did(51));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_detaches_a_fetch_in_flight() {
    bounded(async {
        let server = TestServer::start().await;
        let did = plc_did(52);
        let old = PrivateKey::generate(Curve::K256).public_key();
        let new = PrivateKey::generate(Curve::K256).public_key();
        let endpoint = "https://pds.example.com";
        server.set(
            &did,
            Behavior::Slow(
                Duration::from_millis(400),
                plc_doc(&did, &old, endpoint, "a.example.com"),
            ),
        );
        let resolver = server.resolver();
        let early = {
            let resolver = resolver.clone();
            let did = did.clone();
            tokio::spawn(async move { resolver.resolve(&did).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(resolver.in_flight_len(), 1);
        // An #identity event arrives while the old document is being fetched.
        server.set(
            &did,
            Behavior::Doc(plc_doc(&did, &new, endpoint, "a.example.com")),
        );
        let fresh = resolver.refresh(&did).await.expect("refresh");
        assert_eq!(fresh.signing_key, Some(new.clone()));
        // The detached fetch still answers its caller, but does not overwrite the cache.
        let early = early.await.expect("join").expect("early");
        assert_eq!(early.signing_key, Some(old));
        let cached = resolver.cached(&did).expect("cached");
        assert_eq!(cached.signing_key, Some(new));
        assert_eq!(server.hits(&did), 2);
        assert_eq!(resolver.in_flight_len(), 0);
    })
    .await;
}

#[tokio::test]
async fn server_errors_are_transient_and_not_cached() {
    bounded(async {
        let server = TestServer::start().await;
        let (did, key) = register(&server, 60, Curve::K256);
        let good = standard_doc(&did, &key);
        let resolver = server.resolver();
        for (i, code) in [500u16, 502, 503, 429].into_iter().enumerate() {
            server.set(&did, Behavior::Status(code));
            let r = resolver.resolve(&did).await;
            assert!(matches!(&r, Err(e) if e.is_transient()), "{code}: {r:?}");
            assert_eq!(server.hits(&did), i + 1);
        }
        assert_eq!(resolver.cache_len(), 0);
        // The server recovers; the next call fetches and succeeds.
        server.set(&did, Behavior::Doc(good));
        let id = resolver.resolve(&did).await.expect("recovered");
        assert_eq!(id.signing_key, Some(key.public_key()));
        assert_eq!(server.hits(&did), 5);
    })
    .await;
}

#[tokio::test]
async fn timeouts_are_transient_and_not_cached() {
    bounded(async {
        let server = TestServer::start().await;
        let (did, key) = register(&server, 61, Curve::P256);
        let good = standard_doc(&did, &key);
        server.set(&did, Behavior::Slow(Duration::from_secs(3), good.clone()));
        let resolver = server.resolver_with(|c| c.timeout = Duration::from_millis(300));
        let started = std::time::Instant::now();
        let r = resolver.resolve(&did).await;
        assert!(matches!(&r, Err(ResolveError::Transient(_))), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "timeout honoured"
        );
        assert!(r.as_ref().err().is_some_and(ResolveError::is_transient));
        assert_eq!(resolver.cache_len(), 0);
        server.set(&did, Behavior::Doc(good));
        let id = resolver.resolve(&did).await.expect("recovered");
        assert_eq!(id.signing_key, Some(key.public_key()));
        assert_eq!(server.hits(&did), 2);
    })
    .await;
}

#[tokio::test]
async fn connection_refused_is_transient() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let resolver = Resolver::new(ResolverConfig {
            plc_url: format!("http://127.0.0.1:{port}"),
            timeout: Duration::from_secs(2),
            ..ResolverConfig::default()
        });
        let r = resolver.resolve(&plc_did(62)).await;
        assert!(matches!(&r, Err(ResolveError::Transient(_))), "{r:?}");
        assert_eq!(resolver.cache_len(), 0);
    })
    .await;
}

#[tokio::test]
async fn not_found_is_cached_for_the_negative_ttl() {
    bounded(async {
        let server = TestServer::start().await;
        let did = plc_did(70);
        let resolver = server.resolver_with(|c| c.negative_ttl = Duration::from_millis(400));
        assert_eq!(resolver.resolve(&did).await, Err(ResolveError::NotFound));
        assert_eq!(resolver.resolve(&did).await, Err(ResolveError::NotFound));
        assert_eq!(server.hits(&did), 1);
        assert!(
            resolver.cached(&did).is_none(),
            "failures are not identities"
        );
        // The DID gets created; the negative entry still answers until it expires.
        let key = PrivateKey::generate(Curve::K256);
        server.set(
            &did,
            Behavior::Doc(plc_doc(
                &did,
                &key.public_key(),
                "https://pds.example.com",
                "a.example.com",
            )),
        );
        assert_eq!(resolver.resolve(&did).await, Err(ResolveError::NotFound));
        assert_eq!(server.hits(&did), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let id = resolver.resolve(&did).await.expect("now exists");
        assert_eq!(id.signing_key, Some(key.public_key()));
        assert_eq!(server.hits(&did), 2);
    })
    .await;
}

#[tokio::test]
async fn gone_is_tombstoned_and_cached() {
    bounded(async {
        let server = TestServer::start().await;
        let did = plc_did(71);
        server.set(&did, Behavior::Status(410));
        let resolver = server.resolver();
        let r = resolver.resolve(&did).await;
        assert_eq!(r, Err(ResolveError::Tombstoned));
        assert!(!ResolveError::Tombstoned.is_transient());
        assert_eq!(resolver.resolve(&did).await, Err(ResolveError::Tombstoned));
        assert_eq!(server.hits(&did), 1);
        // purge forgets negative entries too.
        resolver.purge(&did);
        assert_eq!(resolver.resolve(&did).await, Err(ResolveError::Tombstoned));
        assert_eq!(server.hits(&did), 2);
    })
    .await;
}

#[tokio::test]
async fn bad_documents_and_statuses_are_invalid_and_cached() {
    bounded(async {
        let server = TestServer::start().await;
        let resolver = server.resolver();
        let key = PrivateKey::generate(Curve::K256).public_key();
        let cases: Vec<(String, Behavior)> = vec![
            // A document for another DID.
            (
                plc_did(80),
                Behavior::Doc(plc_doc(
                    &plc_did(81),
                    &key,
                    "https://pds.example.com",
                    "a.example.com",
                )),
            ),
            (plc_did(82), Behavior::Raw("<html>not json</html>".into())),
            (plc_did(83), Behavior::Raw("{\"id\": ".into())),
            (plc_did(84), Behavior::Status(400)),
            (plc_did(85), Behavior::Status(403)),
            // Redirects are not followed.
            (
                plc_did(86),
                Behavior::Redirect(format!("{}/{}", server.base, plc_did(87))),
            ),
        ];
        server.set(
            &plc_did(87),
            Behavior::Doc(plc_doc(
                &plc_did(86),
                &key,
                "https://pds.example.com",
                "a.example.com",
            )),
        );
        for (did, behavior) in cases {
            server.set(&did, behavior);
            let r = resolver.resolve(&did).await;
            assert!(matches!(&r, Err(ResolveError::Invalid(_))), "{did}: {r:?}");
            assert!(matches!(
                resolver.resolve(&did).await,
                Err(ResolveError::Invalid(_))
            ));
            assert_eq!(server.hits(&did), 1, "{did}: negative entry cached");
        }
        assert_eq!(server.hits(&plc_did(87)), 0, "redirect not followed");
    })
    .await;
}

#[tokio::test]
async fn capacity_eviction_bounds_the_cache() {
    bounded(async {
        let server = TestServer::start().await;
        let resolver = server.resolver_with(|c| c.capacity = 16);
        let mut dids = Vec::new();
        for n in 0..100 {
            let (did, key) = register(&server, 1000 + n, Curve::K256);
            let id = resolver.resolve(&did).await.expect("resolve");
            assert_eq!(id.signing_key, Some(key.public_key()));
            assert!(resolver.cache_len() <= 16, "len {}", resolver.cache_len());
            dids.push(did);
        }
        // Negative entries count against the capacity too.
        for n in 0..40 {
            let _ = resolver.resolve(&plc_did(5000 + n)).await;
            assert!(resolver.cache_len() <= 16);
        }
        assert!(
            resolver.cache_len() >= 8,
            "eviction frees a batch, not everything"
        );
        // Evicted DIDs are simply fetched again.
        let first = &dids[0];
        let before = server.hits(first);
        resolver.resolve(first).await.expect("again");
        assert!(server.hits(first) <= before + 1);
        assert!(resolver.cache_len() <= 16);
    })
    .await;
}

#[tokio::test]
async fn huge_responses_are_refused() {
    bounded(async {
        let server = TestServer::start().await;
        let resolver = server.resolver();
        let key = PrivateKey::generate(Curve::K256);

        // Just under the cap: a real document padded with whitespace is fine.
        let did = plc_did(90);
        let doc = plc_doc(
            &did,
            &key.public_key(),
            "https://pds.example.com",
            "a.example.com",
        );
        let mut body = doc.to_string();
        body.push_str(&" ".repeat(MAX_DOCUMENT_BYTES - body.len()));
        assert_eq!(body.len(), MAX_DOCUMENT_BYTES);
        server.set(&did, Behavior::Raw(body));
        let id = resolver.resolve(&did).await.expect("at the cap");
        assert_eq!(id.signing_key, Some(key.public_key()));

        // One byte over, and far over (Content-Length known up front).
        for (n, len) in [(91, MAX_DOCUMENT_BYTES + 1), (92, 8 * 1024 * 1024)] {
            let did = plc_did(n);
            let doc = plc_doc(
                &did,
                &key.public_key(),
                "https://pds.example.com",
                "a.example.com",
            );
            let mut body = doc.to_string();
            body.push_str(&" ".repeat(len - body.len()));
            server.set(&did, Behavior::Raw(body));
            let r = resolver.resolve(&did).await;
            assert!(matches!(&r, Err(ResolveError::Invalid(_))), "{len}: {r:?}");
        }
    })
    .await;
}

/// A raw HTTP/1.1 server that answers every request with a chunked body of
/// `total` bytes and no Content-Length, so the size cap must apply while reading.
async fn chunked_server(total: usize) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 16 * 1024];
                let mut sent = 0;
                while sent < total {
                    let n = chunk.len().min(total - sent);
                    let mut frame = format!("{n:x}\r\n").into_bytes();
                    frame.extend_from_slice(&chunk[..n]);
                    frame.extend_from_slice(b"\r\n");
                    if socket.write_all(&frame).await.is_err() {
                        return;
                    }
                    sent += n;
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn huge_chunked_response_is_refused_while_streaming() {
    bounded(async {
        let (port, task) = chunked_server(64 * 1024 * 1024).await;
        let resolver = Resolver::new(ResolverConfig {
            plc_url: format!("http://127.0.0.1:{port}"),
            timeout: Duration::from_secs(10),
            ..ResolverConfig::default()
        });
        let started = std::time::Instant::now();
        let r = resolver.resolve(&plc_did(93)).await;
        assert!(matches!(&r, Err(ResolveError::Invalid(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "stopped early");
        task.abort();
    })
    .await;
}

// ---------------------------------------------------------------------------
// Metrics

/// A recorder that keeps every counter and gauge as an `AtomicU64` and every
/// histogram's samples, keyed `name{label=value,...}`. Installed thread-locally,
/// so tests running in parallel on other threads do not mix in.
#[derive(Default)]
struct TestRecorder {
    values: Mutex<HashMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    samples: Mutex<HashMap<String, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().expect("lock").push(value);
    }
}

fn metric_key(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

impl TestRecorder {
    fn value(&self, key: &metrics::Key) -> Arc<std::sync::atomic::AtomicU64> {
        let mut values = self.values.lock().expect("lock");
        values.entry(metric_key(key)).or_default().clone()
    }

    fn counter(&self, key: &str) -> u64 {
        let values = self.values.lock().expect("lock");
        values
            .get(key)
            .map_or(0, |v| v.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn gauge(&self, key: &str) -> f64 {
        f64::from_bits(self.counter(key))
    }

    fn samples(&self, key: &str) -> usize {
        let samples = self.samples.lock().expect("lock");
        samples
            .get(key)
            .map_or(0, |s| s.0.lock().expect("lock").len())
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.value(key))
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.value(key))
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let mut samples = self.samples.lock().expect("lock");
        metrics::Histogram::from_arc(samples.entry(metric_key(key)).or_default().clone())
    }
}

/// Hits, misses, errors by kind, fetch latency and cache size are recorded,
/// with no label naming a DID. Current-thread runtime: the flights run on this
/// thread, where the recorder is installed.
#[tokio::test]
async fn resolution_metrics_are_recorded() {
    let recorder = TestRecorder::default();
    let _installed = metrics::set_default_local_recorder(&recorder);
    atrelay::metrics::describe(atrelay::identity::metrics::FAMILIES);
    bounded(async {
        let server = TestServer::start().await;
        let (good, _) = register(&server, 90, Curve::K256);
        let (missing, broken) = (plc_did(91), plc_did(92));
        server.set(&broken, Behavior::Status(503));
        let resolver = server.resolver();
        resolver.resolve(&good).await.expect("resolves");
        resolver.resolve(&good).await.expect("cached");
        assert_eq!(
            resolver.resolve(&missing).await,
            Err(ResolveError::NotFound)
        );
        assert_eq!(
            resolver.resolve(&missing).await,
            Err(ResolveError::NotFound)
        );
        let r = resolver.resolve(&broken).await;
        assert!(matches!(r, Err(ResolveError::Transient(_))), "{r:?}");
    })
    .await;
    assert_eq!(recorder.counter("atrelay_identity_cache_hits_total"), 2);
    assert_eq!(recorder.counter("atrelay_identity_cache_misses_total"), 3);
    assert_eq!(
        recorder.counter("atrelay_identity_resolve_errors_total{kind=not_found}"),
        1
    );
    assert_eq!(
        recorder.counter("atrelay_identity_resolve_errors_total{kind=transient}"),
        1
    );
    assert_eq!(
        recorder.samples("atrelay_identity_resolve_seconds{method=plc}"),
        3
    );
    // The identity and the negative entry; the transient failure is not cached.
    assert_eq!(recorder.gauge("atrelay_identity_cache_entries"), 2.0);
    let values = recorder.values.lock().expect("lock");
    assert!(
        values.keys().all(|k| !k.contains("did:")),
        "a label names a DID: {:?}",
        values.keys()
    );
}
