//! Real upstreams for relay tests: a PDS that serves signed commits built with
//! `repo::builder` over a real websocket (the library's emulated host, with
//! `describeServer` on the same port), and a PLC directory serving real DID
//! documents. Everything listens on
//! 127.0.0.1 with port 0.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atrelay::crypto::{Curve, PrivateKey};
use atrelay::repo::builder::{BuiltCommit, RecordWrite, RepoHead};
use atrelay::upstream_sim::{HostFrame, SimHost, SimHostConfig};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{Account, Event, Identity};
use atrelay::wire::tid::{Tid, TidClock};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

pub const TIME: &str = "2026-11-24T12:00:00.000Z";

/// A PLC directory for tests: DID → document, with an outage switch.
#[derive(Clone)]
pub struct TestPlc {
    pub url: String,
    docs: Arc<Mutex<HashMap<String, serde_json::Value>>>,
    pub failing: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
}

impl TestPlc {
    pub async fn start() -> TestPlc {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let plc = TestPlc {
            url,
            docs: Arc::default(),
            failing: Arc::default(),
            requests: Arc::default(),
        };
        let served = plc.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let plc = served.clone();
                tokio::spawn(async move {
                    let Some(path) = read_request_path(&mut sock).await else {
                        return;
                    };
                    plc.requests.fetch_add(1, Ordering::SeqCst);
                    let did = path.trim_start_matches('/').to_owned();
                    let (status, body) = if plc.failing.load(Ordering::SeqCst) {
                        (500, "{\"message\":\"down\"}".to_owned())
                    } else {
                        match plc.docs.lock().unwrap().get(&did) {
                            Some(doc) => (200, doc.to_string()),
                            None => (404, "{\"message\":\"DID not registered\"}".to_owned()),
                        }
                    };
                    respond(&mut sock, status, "application/json", &body).await;
                });
            }
        });
        plc
    }

    /// Publishes a document naming `key` and the PDS at `pds_endpoint`.
    pub fn register(&self, did: &str, key: &PrivateKey, pds_endpoint: &str) {
        self.register_key(did, &key.public_key(), pds_endpoint);
    }

    /// [`TestPlc::register`] with only the public key.
    pub fn register_key(&self, did: &str, key: &atrelay::crypto::PublicKey, pds_endpoint: &str) {
        let handle = format!("{}.test", &did[8..16]);
        let doc = atrelay::identity::account_document(did, &handle, key, pds_endpoint);
        self.register_document(did, doc);
    }

    /// Publishes `doc` as it is (a test shaping a document the relay must
    /// refuse).
    pub fn register_document(&self, did: &str, doc: serde_json::Value) {
        self.docs.lock().unwrap().insert(did.to_owned(), doc);
    }
}

/// An account on a test PDS: real keys, real repo.
pub struct TestAccount {
    pub did: String,
    pub key: PrivateKey,
    pub head: RepoHead,
    pub store: HashMap<Cid, Vec<u8>>,
    clock: TidClock,
    pub posts: Vec<String>,
}

impl TestAccount {
    pub fn new() -> TestAccount {
        let did = format!("did:plc:{}", random_base32(24));
        let mut store = HashMap::new();
        let head = RepoHead::empty(&did, &mut store);
        TestAccount {
            did,
            key: PrivateKey::generate(Curve::K256),
            head,
            store,
            clock: TidClock::new(),
            posts: Vec::new(),
        }
    }

    /// A forger: the same DID, head and blocks, but a key the DID document
    /// does not name, so its commits fail signature verification.
    pub fn impostor(&self) -> TestAccount {
        let mut mallory = self.fork();
        mallory.key = PrivateKey::generate(Curve::K256);
        mallory
    }

    /// A copy to build commits the relay must refuse: the same DID, key,
    /// head and blocks, so committing on it leaves this account as it was.
    pub fn fork(&self) -> TestAccount {
        let mut fork = TestAccount::new();
        fork.did = self.did.clone();
        fork.key = self.key.clone();
        fork.head = self.head.clone();
        fork.store = self.store.clone();
        fork
    }

    /// Commits `writes` and advances the repo.
    pub fn commit(&mut self, writes: Vec<RecordWrite>) -> BuiltCommit {
        let rev = self.clock.next();
        self.commit_at(writes, rev)
    }

    /// Commits `writes` at `rev` (raised above the head's if needed) and
    /// advances the repo.
    pub fn commit_at(&mut self, writes: Vec<RecordWrite>, rev: Tid) -> BuiltCommit {
        let built = self
            .head
            .commit(&self.store, writes, &self.key, rev)
            .unwrap();
        built.store_into(&mut self.store);
        self.head = built.head.clone();
        built
    }

    /// Commits one new post.
    pub fn post(&mut self, text: &str) -> BuiltCommit {
        let write = self.new_post(text);
        self.commit(vec![write])
    }

    /// Commits one new post at `rev` (see [`TestAccount::commit_at`]).
    pub fn post_at(&mut self, text: &str, rev: Tid) -> BuiltCommit {
        let write = self.new_post(text);
        self.commit_at(vec![write], rev)
    }

    /// The write creating one new post.
    fn new_post(&mut self, text: &str) -> RecordWrite {
        let path = format!("app.bsky.feed.post/{}", self.clock.next());
        self.posts.push(path.clone());
        let mut record = Vec::new();
        let mut e = atrelay::wire::cbor::Encoder::new(&mut record);
        e.map(2);
        e.text("text");
        e.text(text);
        e.text("$type");
        e.text("app.bsky.feed.post");
        RecordWrite::Create { path, record }
    }
}

/// A PDS for tests: the library's emulated host ([`SimHost`]) with an
/// ordered event log, every event served as soon as it is appended.
#[derive(Clone)]
pub struct TestPds {
    pub addr: SocketAddr,
    host: Arc<SimHost>,
}

impl TestPds {
    pub async fn start() -> TestPds {
        TestPds::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// A PDS on a given address (a host coming back on its old port).
    pub async fn start_on(addr: SocketAddr) -> TestPds {
        let config = SimHostConfig {
            server_did: Some("did:web:pds.test".to_owned()),
            ..SimHostConfig::default()
        };
        let host = SimHost::start_on(addr, config).await.unwrap();
        TestPds {
            addr: host.addr,
            host: Arc::new(host),
        }
    }

    /// `127.0.0.1:<port>`: how the relay names this host.
    pub fn hostname(&self) -> String {
        self.host.hostname()
    }

    pub fn endpoint(&self) -> String {
        self.host.endpoint()
    }

    /// Subscriptions accepted so far.
    pub fn connections(&self) -> u64 {
        self.host.stream.connections.load(Ordering::SeqCst)
    }

    /// Next upstream seq.
    pub fn next_seq(&self) -> u64 {
        self.host.stream.next_seq()
    }

    /// Appends an event (its seq is replaced by the next upstream seq).
    pub fn emit(&self, mut event: Event) -> u64 {
        let seq = self.next_seq();
        match &mut event {
            Event::Commit(c) => c.seq = seq as i64,
            Event::Sync(s) => s.seq = seq as i64,
            Event::Identity(i) => i.seq = seq as i64,
            Event::Account(a) => a.seq = seq as i64,
            _ => {}
        }
        let mut frame = Vec::new();
        event.encode(&mut frame);
        self.emit_raw(seq, Bytes::from(frame));
        seq
    }

    /// Emits a commit built by an account.
    pub fn emit_commit(&self, built: &BuiltCommit) -> u64 {
        let s = built.frame_strings();
        self.emit(Event::Commit(built.to_frame(&s, 0, TIME)))
    }

    pub fn emit_identity(&self, did: &str) -> u64 {
        self.emit(Event::Identity(Identity {
            seq: 0,
            did,
            time: TIME,
            handle: None,
        }))
    }

    pub fn emit_account(&self, did: &str, active: bool, status: Option<&str>) -> u64 {
        self.emit(Event::Account(Account {
            seq: 0,
            did,
            time: TIME,
            active,
            status,
        }))
    }

    /// Appends arbitrary bytes as the frame for `seq`.
    pub fn emit_raw(&self, seq: u64, frame: Bytes) {
        self.host.stream.publish(seq, HostFrame::verbatim(frame));
    }
}

/// Reads an HTTP/1.1 request head and returns its path.
async fn read_request_path(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 16_384 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf).lines().next()?.to_owned();
    let path = line.split_whitespace().nth(1)?.to_owned();
    Some(path.split('?').next().unwrap_or(&path).to_owned())
}

async fn respond(sock: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Error",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(msg.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// A sound `#commit` header and seq, then a body that is not a `#commit`
/// (its `repo` is not UTF-8, its other fields missing).
pub fn garbage_commit(seq: u64) -> Bytes {
    use atrelay::wire::cbor::Encoder;
    use atrelay::wire::frame::{Commit, Header};
    let mut frame = Vec::new();
    Header::message(Commit::TYPE).encode(&mut Encoder::new(&mut frame));
    let mut e = Encoder::new(&mut frame);
    e.map(2);
    e.text("seq");
    e.u64(seq);
    e.text("repo");
    frame.extend_from_slice(&[0x62, 0xff, 0xfe]);
    frame.into()
}

pub fn random_base32(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..n)
        .map(|_| ALPHABET[rand::random::<usize>() % 32] as char)
        .collect()
}

/// A firehose subscriber on the relay.
pub struct Subscriber {
    rx: futures_util::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    >,
}

impl Subscriber {
    pub async fn connect(relay: SocketAddr, cursor: Option<u64>) -> Subscriber {
        let mut url = format!("ws://{relay}/xrpc/com.atproto.sync.subscribeRepos");
        if let Some(c) = cursor {
            url.push_str(&format!("?cursor={c}"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (_, rx) = ws.split();
        Subscriber { rx }
    }

    /// The next binary frame, or `None` after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Option<Bytes> {
        loop {
            match tokio::time::timeout(wait, self.rx.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => return Some(b),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Collects `n` frames, failing the test if they do not come in time.
    pub async fn take(&mut self, n: usize) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.next(Duration::from_secs(10)).await {
                Some(f) => out.push(f),
                None => panic!("got {} of {n} frames", out.len()),
            }
        }
        out
    }
}
