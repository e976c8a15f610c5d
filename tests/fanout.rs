//! Subscriber sessions over real sockets: the server side is
//! `atrelay::fanout::serve_subscriber` behind a hand-written HTTP/1.1
//! upgrade, the client side is tokio-tungstenite (a reference WebSocket
//! client) or raw TCP for malformed input. Every test is bounded in time.
//!
//! `cargo test --test fanout`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atrelay::fanout::{
    accept_key, serve_subscriber, Backfill, BackfillError, Coalescing, MemoryBackfill, Peer, Ring,
    SessionConfig, SessionEnd, SubscriberInfo, Subscribers,
};
use atrelay::wire::frame::{ErrorFrame, Event, Identity, Info};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
const TIME: &str = "2024-11-24T12:00:00.000Z";
const LIMIT: Duration = Duration::from_secs(60);

/// Runs a test body under the global time limit.
async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test exceeded its time limit");
}

/// A real `#identity` frame for `seq`, with a handle whose length varies so
/// frame sizes vary.
fn frame(seq: u64) -> Bytes {
    let handle = format!("h{}.test", "x".repeat((seq % 50) as usize));
    let mut v = Vec::new();
    Event::Identity(Identity {
        seq: seq as i64,
        did: DID,
        time: TIME,
        handle: Some(&handle),
    })
    .encode(&mut v);
    Bytes::from(v)
}

/// The seq of a frame made by [`frame`].
fn seq_of(bytes: &[u8]) -> u64 {
    let ev = Event::decode(bytes).expect("a valid frame");
    ev.seq().expect("a frame with a seq") as u64
}

/// A big opaque frame: the seq then filler (sessions do not look inside).
fn big_frame(seq: u64, len: usize) -> Bytes {
    let mut v = seq.to_be_bytes().to_vec();
    v.resize(len, seq as u8);
    Bytes::from(v)
}

/// The ring and the log, published to as the sequencer does: log first
/// (durable), then the ring.
#[derive(Clone)]
struct Relay {
    ring: Ring,
    log: Arc<MemoryBackfill>,
}

impl Relay {
    fn new(capacity: usize) -> Relay {
        Relay {
            ring: Ring::new(capacity, 0),
            log: Arc::new(MemoryBackfill::new()),
        }
    }

    fn publish_frame(&self, seq: u64, f: Bytes) {
        self.log.push(seq, f.clone());
        self.ring.publish(seq, f);
    }

    fn publish(&self, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            self.publish_frame(seq, frame(seq));
        }
    }
}

/// A test server: accepts connections, performs the WebSocket upgrade by
/// hand and runs one session per connection, listed in `subscribers` with
/// its peer address and `User-Agent`; hands out the sessions' join handles
/// in accept order.
struct Server {
    addr: SocketAddr,
    sessions: mpsc::UnboundedReceiver<JoinHandle<SessionEnd>>,
    subscribers: Subscribers,
}

impl Server {
    async fn start(ring: Ring, log: Arc<dyn Backfill>, cfg: SessionConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, sessions) = mpsc::unbounded_channel();
        let subscribers = Subscribers::new();
        let registry = subscribers.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, remote)) = listener.accept().await else {
                    return;
                };
                let (ring, log, cfg) = (ring.clone(), log.clone(), cfg.clone());
                let registry = registry.clone();
                let session = tokio::spawn(async move {
                    let (sock, cursor, user_agent) = upgrade(sock).await;
                    let peer = Peer {
                        registry,
                        remote: Some(remote),
                        user_agent,
                    };
                    serve_subscriber(sock, ring, log, cursor, cfg, Some(peer)).await
                });
                if tx.send(session).is_err() {
                    return;
                }
            }
        });
        Server {
            addr,
            sessions,
            subscribers,
        }
    }

    fn url(&self, cursor: Option<u64>) -> String {
        let mut url = format!("ws://{}/xrpc/com.atproto.sync.subscribeRepos", self.addr);
        if let Some(c) = cursor {
            url.push_str(&format!("?cursor={c}"));
        }
        url
    }

    async fn connect(&mut self, cursor: Option<u64>) -> (Client, JoinHandle<SessionEnd>) {
        self.connect_as(cursor, None).await
    }

    /// [`Server::connect`], sending `user_agent` as the `User-Agent`.
    async fn connect_as(
        &mut self,
        cursor: Option<u64>,
        user_agent: Option<&'static str>,
    ) -> (Client, JoinHandle<SessionEnd>) {
        let mut req = self.url(cursor).into_client_request().unwrap();
        if let Some(ua) = user_agent {
            req.headers_mut()
                .insert("user-agent", HeaderValue::from_static(ua));
        }
        let (ws, resp) = connect_async(req).await.expect("upgrade");
        assert_eq!(resp.status(), 101);
        let session = self.sessions.recv().await.expect("a session");
        (ws, session)
    }
}

/// Reads the HTTP request head, answers `101 Switching Protocols`, and
/// returns the stream, the `cursor` query parameter and the `User-Agent`.
async fn upgrade(mut sock: TcpStream) -> (TcpStream, Option<u64>, Option<String>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "client hung up during the upgrade");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8(head).unwrap();
    let request_line = head.split("\r\n").next().unwrap();
    let target = request_line.split(' ').nth(1).unwrap().to_string();
    let cursor = target
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("cursor=")))
        .map(|c| c.parse().unwrap());
    let header = |wanted: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_string())
        })
    };
    let key = header("sec-websocket-key").expect("Sec-WebSocket-Key");
    let user_agent = header("user-agent");
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    sock.write_all(resp.as_bytes()).await.unwrap();
    (sock, cursor, user_agent)
}

/// The next data or close message (pings and pongs skipped).
async fn next_message(ws: &mut Client) -> Message {
    loop {
        match ws.next().await.expect("stream ended").expect("ws error") {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
}

/// The next `n` binary frames.
async fn recv_frames(ws: &mut Client, n: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match next_message(ws).await {
            Message::Binary(b) => out.push(b),
            m => panic!("expected a binary frame, got {m:?}"),
        }
    }
    out
}

async fn recv_seqs(ws: &mut Client, n: usize) -> Vec<u64> {
    recv_frames(ws, n).await.iter().map(|b| seq_of(b)).collect()
}

/// Waits until the session is running its loop (it answered a ping), so a
/// live subscriber's starting point is fixed before the test publishes.
async fn sync(ws: &mut Client) {
    ws.send(Message::Ping(Bytes::from_static(b"sync")))
        .await
        .unwrap();
    loop {
        match ws.next().await.expect("stream ended").expect("ws error") {
            Message::Pong(p) if &p[..] == b"sync" => return,
            Message::Ping(_) | Message::Pong(_) => {}
            m => panic!("unexpected {m:?} before the pong"),
        }
    }
}

/// Sends a close and waits for the session to end with `ClientClosed`.
async fn close(mut ws: Client, session: JoinHandle<SessionEnd>) {
    ws.close(None).await.unwrap();
    assert_eq!(session.await.unwrap(), SessionEnd::ClientClosed);
}

fn cfg() -> SessionConfig {
    SessionConfig::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_in_order() {
    bounded(async {
        let relay = Relay::new(1024);
        relay.publish(1..=10);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let (mut ws, session) = server.connect(None).await;
        sync(&mut ws).await;
        let writer = {
            let relay = relay.clone();
            tokio::spawn(async move {
                for seq in 11..=3010 {
                    relay.publish(seq..=seq);
                    if seq % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let frames = recv_frames(&mut ws, 3000).await;
        writer.await.unwrap();
        for (i, f) in frames.iter().enumerate() {
            let seq = 11 + i as u64;
            assert_eq!(f, &frame(seq), "frame {i}");
        }
        close(ws, session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_live_subscribers_get_the_same_stream() {
    bounded(async {
        let relay = Relay::new(256);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let mut clients = Vec::new();
        for _ in 0..20 {
            let (mut ws, session) = server.connect(None).await;
            sync(&mut ws).await;
            clients.push((ws, session));
        }
        let readers: Vec<_> = clients
            .into_iter()
            .map(|(mut ws, session)| {
                tokio::spawn(async move {
                    let seqs = recv_seqs(&mut ws, 2000).await;
                    close(ws, session).await;
                    seqs
                })
            })
            .collect();
        for seq in 1..=2000 {
            relay.publish(seq..=seq);
            if seq % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        for r in readers {
            assert_eq!(r.await.unwrap(), (1..=2000).collect::<Vec<_>>());
        }
    })
    .await;
}

/// With wake-ups coalesced (every wake deferred to a shared tick, so each
/// write carries several events), nothing is lost, duplicated or reordered:
/// fast and slow readers, readers that leave and come back with their last
/// seq as cursor, and readers that join mid-stream from a cursor or live,
/// each checked seq by seq and byte by byte against what the log holds. The
/// ring is small, so slow readers also fall to the log and come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_wakes_lose_duplicate_and_reorder_nothing() {
    const LAST: u64 = 3000;
    bounded(async {
        // `writes_per_sec: 1` puts every wake at the 5 ms bound.
        let coalescing = Coalescing {
            max_delay: Duration::from_millis(5),
            writes_per_sec: 1,
        };
        let relay = Relay {
            ring: Ring::with_coalescing(64, 0, coalescing),
            log: Arc::new(MemoryBackfill::new()),
        };
        let server = Arc::new(tokio::sync::Mutex::new(
            Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await,
        ));

        /// Reads until `LAST`, checking every frame against the log's
        /// bytes; `pause_every` frames it sleeps 2 ms (a slow reader);
        /// after `leave_after` frames it hangs up and reconnects with its
        /// last seq. `sync_first`: wait until the session runs before
        /// publishing starts (a frame would otherwise come before the
        /// pong). Returns the seqs it saw, in order.
        async fn reader(
            server: Arc<tokio::sync::Mutex<Server>>,
            sync_first: bool,
            cursor: Option<u64>,
            pause_every: Option<u64>,
            leave_after: Option<usize>,
        ) -> (Option<u64>, Vec<u64>) {
            let (mut ws, mut session) = server.lock().await.connect(cursor).await;
            if sync_first {
                sync(&mut ws).await;
            }
            let mut seen = Vec::new();
            let mut since_reconnect = 0;
            while seen.last() != Some(&LAST) {
                let Message::Binary(f) = next_message(&mut ws).await else {
                    panic!("stream ended after {:?}", seen.last());
                };
                let seq = seq_of(&f);
                assert_eq!(f, frame(seq), "frame {seq} differs from the log's");
                seen.push(seq);
                since_reconnect += 1;
                if pause_every.is_some_and(|p| seq % p == 0) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if leave_after.is_some_and(|n| since_reconnect == n) && seq < LAST {
                    close(ws, session).await;
                    (ws, session) = server.lock().await.connect(Some(seq)).await;
                    since_reconnect = 0;
                }
            }
            close(ws, session).await;
            (cursor, seen)
        }

        let mut readers = Vec::new();
        for i in 0..12 {
            let (pause, leave) = match i % 3 {
                0 => (None, None),          // fast
                1 => (Some(20), None),      // slow: falls out of the ring
                _ => (None, Some(400 + i)), // leaves and comes back
            };
            readers.push(tokio::spawn(reader(
                server.clone(),
                true,
                None,
                pause,
                leave,
            )));
        }
        // Let the first readers start live from seq 1.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for seq in 1..=LAST {
            relay.publish(seq..=seq);
            if seq % 25 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if seq == 1000 || seq == 2000 {
                // Joiners: from a cursor inside the ring, from one only the
                // log holds, and live.
                let live = tokio::spawn(reader(server.clone(), false, None, None, None));
                readers.push(live);
                for cursor in [seq - 10, seq - 900] {
                    readers.push(tokio::spawn(reader(
                        server.clone(),
                        false,
                        Some(cursor),
                        None,
                        None,
                    )));
                }
            }
        }
        for r in readers {
            let (cursor, seen) = r.await.unwrap();
            let first = *seen.first().expect("a reader saw something");
            if let Some(c) = cursor {
                assert_eq!(first, c + 1, "a replay starts right after its cursor");
            }
            assert_eq!(
                seen,
                (first..=LAST).collect::<Vec<_>>(),
                "a reader missed, repeated or reordered events"
            );
        }
        let (_, deferred) = relay.ring.wakes();
        assert!(
            deferred > 0,
            "no wake was coalesced: the test tested nothing"
        );
    })
    .await;
}

/// Replay from the log, then the switch to the ring while the writer keeps
/// publishing: no gap, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_replay_then_live_without_gap_or_duplicate() {
    bounded(async {
        let relay = Relay::new(256);
        relay.publish(1..=3000);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let writer = {
            let relay = relay.clone();
            tokio::spawn(async move {
                for seq in 3001..=20_000 {
                    relay.publish(seq..=seq);
                    if seq % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let (mut ws, session) = server.connect(Some(1000)).await;
        let frames = recv_frames(&mut ws, 19_000).await;
        writer.await.unwrap();
        for (i, f) in frames.iter().enumerate() {
            let seq = 1001 + i as u64;
            assert_eq!(seq_of(f), seq, "position {i}");
            assert_eq!(f, &frame(seq));
        }
        close(ws, session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_zero_replays_everything_then_goes_live() {
    bounded(async {
        let relay = Relay::new(64);
        relay.publish(1..=500);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let (mut ws, session) = server.connect(Some(0)).await;
        assert_eq!(recv_seqs(&mut ws, 500).await, (1..=500).collect::<Vec<_>>());
        relay.publish(501..=510);
        assert_eq!(
            recv_seqs(&mut ws, 10).await,
            (501..=510).collect::<Vec<_>>()
        );
        close(ws, session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_inside_the_window_replays_strictly_after_it() {
    bounded(async {
        let relay = Relay::new(16);
        relay.publish(1..=100);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        // in the log only
        let (mut ws, session) = server.connect(Some(40)).await;
        assert_eq!(recv_seqs(&mut ws, 60).await, (41..=100).collect::<Vec<_>>());
        close(ws, session).await;
        // in the ring
        let (mut ws, session) = server.connect(Some(95)).await;
        assert_eq!(recv_seqs(&mut ws, 5).await, (96..=100).collect::<Vec<_>>());
        // the cursor is the head: nothing to replay, live from there
        relay.publish(101..=101);
        assert_eq!(recv_seqs(&mut ws, 1).await, [101]);
        close(ws, session).await;
        let (mut ws, session) = server.connect(Some(101)).await;
        sync(&mut ws).await;
        relay.publish(102..=102);
        assert_eq!(recv_seqs(&mut ws, 1).await, [102]);
        close(ws, session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outdated_cursor_gets_info_first_then_the_oldest() {
    bounded(async {
        let relay = Relay::new(64);
        relay.publish(1..=300);
        relay.log.trim_before(100); // retention dropped 1..=99
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let (mut ws, session) = server.connect(Some(10)).await;
        let Message::Binary(first) = next_message(&mut ws).await else {
            panic!("expected a binary frame first");
        };
        match Event::decode(&first).unwrap() {
            Event::Info(Info { name, .. }) => assert_eq!(name, Info::OUTDATED_CURSOR),
            ev => panic!("expected #info, got {ev:?}"),
        }
        assert_eq!(
            recv_seqs(&mut ws, 201).await,
            (100..=300).collect::<Vec<_>>()
        );
        close(ws, session).await;
        // cursor 98: the client still needs 99, which retention dropped
        let (mut ws, session) = server.connect(Some(98)).await;
        let Message::Binary(first) = next_message(&mut ws).await else {
            panic!("expected a binary frame first");
        };
        assert!(matches!(Event::decode(&first).unwrap(), Event::Info(_)));
        close(ws, session).await;
        // cursor 99: the next one it needs is 100, the oldest: no info
        let (mut ws, session) = server.connect(Some(99)).await;
        assert_eq!(recv_seqs(&mut ws, 1).await, [100]);
        close(ws, session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_cursor_gets_error_frame_then_close_1008() {
    bounded(async {
        let relay = Relay::new(64);
        relay.publish(1..=5);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let (mut ws, session) = server.connect(Some(50)).await;
        let Message::Binary(first) = next_message(&mut ws).await else {
            panic!("expected the error frame");
        };
        match Event::decode(&first).unwrap() {
            Event::Error(ErrorFrame { error, message }) => {
                assert_eq!(error, ErrorFrame::FUTURE_CURSOR);
                assert!(message.unwrap().contains("50"));
            }
            ev => panic!("expected an error frame, got {ev:?}"),
        }
        match next_message(&mut ws).await {
            Message::Close(Some(CloseFrame { code, reason })) => {
                assert_eq!(code, CloseCode::Policy);
                assert_eq!(reason.as_str(), "FutureCursor");
            }
            m => panic!("expected a close, got {m:?}"),
        }
        assert_eq!(session.await.unwrap(), SessionEnd::FutureCursor);
        // the stream ends after the close
        let rest = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap();
        assert!(!matches!(rest, Some(Ok(Message::Binary(_)))));
    })
    .await;
}

/// Invariant 4: a replay yields byte-identical frames to what live
/// subscribers got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_bytes_equal_live_bytes() {
    bounded(async {
        let relay = Relay::new(32);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let (mut live, live_session) = server.connect(None).await;
        sync(&mut live).await;
        let published: Vec<Bytes> = (1..=400).map(frame).collect();
        for (i, f) in published.iter().enumerate() {
            relay.publish_frame(i as u64 + 1, f.clone());
        }
        let live_frames = recv_frames(&mut live, 400).await;
        let (mut replay, replay_session) = server.connect(Some(0)).await;
        let replay_frames = recv_frames(&mut replay, 400).await;
        assert_eq!(live_frames, published);
        assert_eq!(replay_frames, live_frames);
        close(live, live_session).await;
        close(replay, replay_session).await;
    })
    .await;
}

/// A [`Backfill`] that counts reads, to prove catch-up went to the log.
struct CountingLog {
    inner: Arc<MemoryBackfill>,
    reads: AtomicUsize,
}

impl Backfill for CountingLog {
    fn read_from(
        &self,
        from: u64,
        n: usize,
        bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, BackfillError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_from(from, n, bytes)
    }

    fn oldest_seq(&self) -> Option<u64> {
        self.inner.oldest_seq()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_behind_the_ring_catches_up_from_the_log() {
    bounded(async {
        let relay = Relay::new(16);
        let log = Arc::new(CountingLog {
            inner: relay.log.clone(),
            reads: AtomicUsize::new(0),
        });
        let cfg = SessionConfig {
            batch_max_frames: 8,
            ..cfg()
        };
        let mut server = Server::start(relay.ring.clone(), log.clone(), cfg).await;
        let (mut ws, session) = server.connect(None).await;
        sync(&mut ws).await;
        // publish far more than the ring holds before the client reads
        relay.publish(1..=5000);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seqs = recv_seqs(&mut ws, 5000).await;
        assert_eq!(seqs, (1..=5000).collect::<Vec<_>>());
        assert!(
            log.reads.load(Ordering::SeqCst) > 0,
            "catch-up read the log"
        );
        // and it is live again
        relay.publish(5001..=5001);
        assert_eq!(recv_seqs(&mut ws, 1).await, [5001]);
        close(ws, session).await;
    })
    .await;
}

/// Invariant 5: a subscriber whose socket stops draining does not slow the
/// writer or another subscriber, holds bounded memory, and is dropped with
/// `ConsumerTooSlow` after `too_slow_after`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_does_not_slow_others_and_is_dropped() {
    bounded(async {
        const N: u64 = 1500;
        const SIZE: usize = 64 * 1024; // ~96 MiB in total: far beyond socket buffers
        let relay = Relay::new(64);
        let cfg = SessionConfig {
            too_slow_after: Duration::from_millis(1500),
            ..cfg()
        };
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg).await;
        let (stalled, stalled_session) = server.connect(Some(0)).await;
        let (mut healthy, healthy_session) = server.connect(Some(0)).await;

        let writer = {
            let relay = relay.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let mut slowest = Duration::ZERO;
                for seq in 1..=N {
                    let t = Instant::now();
                    relay.publish_frame(seq, big_frame(seq, SIZE));
                    slowest = slowest.max(t.elapsed());
                    if seq % 10 == 0 {
                        // spread publishing over ~1.5 s, across the stall
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (start.elapsed(), slowest)
            })
        };
        let reader = tokio::spawn(async move {
            let mut next = 1u64;
            while next <= N {
                match next_message(&mut healthy).await {
                    Message::Binary(b) => {
                        assert_eq!(b.len(), SIZE);
                        assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), next);
                        next += 1;
                    }
                    m => panic!("unexpected {m:?}"),
                }
            }
            healthy
        });
        let (elapsed, slowest) = writer.await.unwrap();
        assert!(
            elapsed < Duration::from_secs(10),
            "the writer published {N} events in {elapsed:?}"
        );
        assert!(
            slowest < Duration::from_millis(100),
            "a publish took {slowest:?}"
        );
        let healthy = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .expect("the healthy subscriber kept up")
            .unwrap();
        let t = Instant::now();
        let end = tokio::time::timeout(Duration::from_secs(20), stalled_session)
            .await
            .expect("the stalled subscriber was dropped")
            .unwrap();
        assert_eq!(end, SessionEnd::TooSlow);
        assert!(t.elapsed() < Duration::from_secs(10));
        drop(stalled);
        close(healthy, healthy_session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ping_gets_pong() {
    bounded(async {
        let relay = Relay::new(8);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let (mut ws, session) = server.connect(None).await;
        for payload in [&b""[..], b"are you there?", &[7u8; 125]] {
            ws.send(Message::Ping(Bytes::copy_from_slice(payload)))
                .await
                .unwrap();
            match ws.next().await.unwrap().unwrap() {
                Message::Pong(p) => assert_eq!(&p[..], payload),
                m => panic!("expected a pong, got {m:?}"),
            }
        }
        // data and pongs from the client are ignored
        ws.send(Message::Binary(Bytes::from_static(b"ignored")))
            .await
            .unwrap();
        ws.send(Message::text("ignored too")).await.unwrap();
        ws.send(Message::Pong(Bytes::new())).await.unwrap();
        relay.publish(1..=1);
        assert_eq!(recv_seqs(&mut ws, 1).await, [1]);
        close(ws, session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscriber_gets_pinged() {
    bounded(async {
        let relay = Relay::new(8);
        let cfg = SessionConfig {
            ping_interval: Duration::from_millis(200),
            ..cfg()
        };
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg).await;
        let (mut ws, session) = server.connect(None).await;
        for _ in 0..2 {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("a ping within the interval")
                .unwrap()
                .unwrap();
            assert!(matches!(m, Message::Ping(_)), "{m:?}");
        }
        close(ws, session).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_ends_the_session() {
    bounded(async {
        let relay = Relay::new(8);
        relay.publish(1..=3);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        let (mut ws, session) = server.connect(Some(0)).await;
        assert_eq!(recv_seqs(&mut ws, 3).await, [1, 2, 3]);
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
        // the server echoes the close code
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => {
                    assert_eq!(f.code, CloseCode::Normal);
                    break;
                }
                Some(Ok(Message::Close(None))) | None => break,
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(session.await.unwrap(), SessionEnd::ClientClosed);
        // a client that just hangs up also ends it
        let (ws, session) = server.connect(None).await;
        drop(ws);
        assert_eq!(session.await.unwrap(), SessionEnd::ClientClosed);
    })
    .await;
}

/// A raw TCP client: upgrade by hand, send `bytes`, hang up the sending side,
/// and return what the server sent back until it closed.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        b"GET /xrpc/com.atproto.sync.subscribeRepos HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(sock.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"));
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    // the server may close before reading everything: ignore write errors;
    // then hang up our side, so a frame left incomplete ends at EOF
    let _ = sock.write_all(bytes).await;
    let _ = sock.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
    out
}

/// Masks a client frame.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    let mut v = vec![first];
    if payload.len() < 126 {
        v.push(0x80 | payload.len() as u8);
    } else {
        v.push(0x80 | 126);
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_client_is_a_protocol_error_never_a_panic() {
    bounded(async {
        let relay = Relay::new(8);
        let cfg = SessionConfig {
            max_client_frame: 1024,
            ..cfg()
        };
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg).await;
        let mut too_big = vec![0x82, 0x80 | 127];
        too_big.extend_from_slice(&(1u64 << 40).to_be_bytes());
        too_big.extend_from_slice(&[0; 4]);
        let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
            ("unmasked", vec![0x82, 0x01, 0x00], Some(1002)),
            ("reserved opcode", masked(0x83, b""), Some(1002)),
            ("reserved bits", masked(0xc2, b"x"), Some(1002)),
            ("long ping", masked(0x89, &[0; 126]), Some(1002)),
            ("oversized", masked(0x82, &[0; 2000]), Some(1009)),
            ("huge length", too_big, Some(1009)),
            ("bad close code", masked(0x88, &[0x03, 0xed]), Some(1002)),
            (
                "close reason not utf-8",
                masked(0x88, &[0x03, 0xe8, 0xff]),
                Some(1007),
            ),
            ("http again", b"GET / HTTP/1.1\r\n\r\n".to_vec(), Some(1002)),
            (
                "half a frame, then EOF",
                masked(0x82, &[0; 100])[..50].to_vec(),
                None,
            ),
        ];
        for (name, bytes, code) in cases {
            let reply = raw_exchange(server.addr, &bytes).await;
            let end = server.sessions.recv().await.unwrap().await;
            let end = end.unwrap_or_else(|e| panic!("{name}: session panicked: {e}"));
            assert!(matches!(end, SessionEnd::Protocol(_)), "{name}: {end:?}");
            if let Some(code) = code {
                assert!(reply.len() >= 4, "{name}: no close frame in {reply:02x?}");
                assert_eq!(reply[0], 0x88, "{name}: {reply:02x?}");
                assert_eq!(u16::from_be_bytes([reply[2], reply[3]]), code, "{name}");
            }
        }
        // random bytes: any end but a panic
        let mut x = 0x2545f4914f6cdd1du64;
        for _ in 0..40 {
            let bytes: Vec<u8> = (0..(x % 300) as usize)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            x = x.wrapping_add(0x9e3779b97f4a7c15);
            raw_exchange(server.addr, &bytes).await;
            let session = server.sessions.recv().await.unwrap();
            let end = tokio::time::timeout(Duration::from_secs(10), session)
                .await
                .expect("session ended")
                .expect("session did not panic");
            assert!(
                matches!(
                    end,
                    SessionEnd::Protocol(_) | SessionEnd::ClientClosed | SessionEnd::Io(_)
                ),
                "{end:?}"
            );
        }
    })
    .await;
}

/// A log that fails: the subscriber gets close 1011 and the session ends
/// with an I/O reason.
struct BrokenLog;

impl Backfill for BrokenLog {
    fn read_from(&self, _: u64, _: usize, _: usize) -> Result<Vec<(u64, Bytes)>, BackfillError> {
        Err(BackfillError::new("disk on fire"))
    }

    fn oldest_seq(&self) -> Option<u64> {
        Some(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_closes_with_1011() {
    bounded(async {
        let ring = Ring::new(4, 0);
        for seq in 1..=20 {
            ring.publish(seq, frame(seq));
        }
        let mut server = Server::start(ring, Arc::new(BrokenLog), cfg()).await;
        let (mut ws, session) = server.connect(Some(0)).await;
        match next_message(&mut ws).await {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1011),
            m => panic!("expected close 1011, got {m:?}"),
        }
        match session.await.unwrap() {
            SessionEnd::Io(msg) => assert!(msg.contains("disk on fire"), "{msg}"),
            end => panic!("{end:?}"),
        }
    })
    .await;
}

/// The client's end of the TCP connection: the server's `remote`.
fn local_addr(ws: &Client) -> SocketAddr {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s.local_addr().unwrap(),
        _ => unreachable!("plain ws:// only"),
    }
}

/// Polls the registry until `done` holds for its listing (against the
/// ring's head), returning that listing.
async fn wait_listed(
    server: &Server,
    ring: &Ring,
    done: impl Fn(&[SubscriberInfo]) -> bool,
) -> Vec<SubscriberInfo> {
    loop {
        let listed = server.subscribers.list(ring.head());
        if done(&listed) {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_lists_sessions_with_their_progress_until_they_end() {
    bounded(async {
        let relay = Relay::new(1024);
        relay.publish(1..=10);
        let mut server = Server::start(relay.ring.clone(), relay.log.clone(), cfg()).await;
        assert_eq!(server.subscribers.count(), 0);

        // A live subscriber: listed once running, nothing behind at the head.
        let (mut live, live_session) = server.connect(None).await;
        sync(&mut live).await;
        // A replaying one, with a User-Agent.
        let (mut replay, replay_session) = server.connect_as(Some(4), Some("replayer/2.0")).await;
        assert_eq!(
            recv_seqs(&mut replay, 6).await,
            (5..=10).collect::<Vec<_>>()
        );

        let listed = wait_listed(&server, &relay.ring, |l| {
            l.len() == 2 && l.iter().all(|s| s.delivered_seq == 10)
        })
        .await;
        assert!(listed[0].id < listed[1].id, "sorted by id");
        let (l, r) = (&listed[0], &listed[1]);
        assert_eq!(l.remote, Some(local_addr(&live)));
        assert_eq!(r.remote, Some(local_addr(&replay)));
        assert_eq!((l.cursor, r.cursor), (None, Some(4)));
        assert_eq!(l.user_agent, None);
        assert_eq!(r.user_agent.as_deref(), Some("replayer/2.0"));
        assert!(listed.iter().all(|s| s.lag == 0 && s.connected_micros > 0));

        // Published but not yet read: the registry shows the lag until the
        // sessions have written it all.
        relay.publish(11..=500);
        assert_eq!(
            recv_seqs(&mut live, 490).await,
            (11..=500).collect::<Vec<_>>()
        );
        assert_eq!(
            recv_seqs(&mut replay, 490).await,
            (11..=500).collect::<Vec<_>>()
        );
        let listed = wait_listed(&server, &relay.ring, |l| {
            l.iter().all(|s| s.delivered_seq == 500)
        })
        .await;
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|s| s.lag == 0));
        // Against a later head, the lag is counted from what was delivered.
        assert!(server.subscribers.list(510).iter().all(|s| s.lag == 10));

        // One closes cleanly, the other just hangs up: both are unlisted.
        close(live, live_session).await;
        assert_eq!(server.subscribers.count(), 1);
        drop(replay);
        assert_eq!(replay_session.await.unwrap(), SessionEnd::ClientClosed);
        assert_eq!(server.subscribers.count(), 0);
        assert!(server.subscribers.list(relay.ring.head()).is_empty());
    })
    .await;
}
