//! Strangers on the client side, played against the real `atrelay serve`
//! binary on loopback (issue 13, items 1 and 8):
//!
//! - 1,100 connections that send their headers slowly, with the relay's soft
//!   open-file limit at 1,024: `_health` and `/metrics` keep answering, a new
//!   subscriber gets events, the process lives, its log stays small, and the
//!   slow connections are gone after the header timeout. Once with a hard
//!   limit the relay can raise the soft one to, once with hard = soft = 1,024
//!   (the connection cap and eviction must hold on their own).
//! - 200 subscribers replaying several MB from cursor 0, each reading
//!   steadily but slowly for longer than `too_slow_secs`: none is dropped.
//!   Subscribers that stop reading are dropped, and when they resume they
//!   find the `ConsumerTooSlow` error frame, a close frame and a clean end of
//!   stream, not a reset.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use atrelay::net::fd_limit::{connection_budget, Reserve};
use atrelay::wire::frame::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::binary::{RelayProcess, Scrape};
use crate::harness::Subscriber;
use crate::pipeline::Net;

/// Held by each hostile test (here and in `hostile_hosts`) for its whole
/// run: the floods of the slow-header tests would otherwise starve the
/// steady readers of the other test of CPU (on two cores), and a reader that
/// does not get to read is rightly dropped; the hostile-host floods would
/// starve them the same way.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The soft open-file limit the relay is started with.
const SOFT_LIMIT: u64 = 1024;

/// Slow-header connections to the relay's port, and to its metrics port.
const SLOW_RELAY: usize = 1100;
const SLOW_METRICS: usize = 100;

/// The relay's header read timeout in these tests, in seconds.
const HEADER_TIMEOUT: u64 = 6;

/// Starts the relay with its soft `RLIMIT_NOFILE` at [`SOFT_LIMIT`] and the
/// hard limit at `hard` (set in the child between fork and exec: the test
/// process keeps its own limits).
async fn relay_with_fd_limit(net: &Net, hard: u64, env: &[(&str, &str)]) -> RelayProcess {
    RelayProcess::spawn_with(net, true, env, move |cmd: &mut Command| {
        // SAFETY: only async-signal-safe calls (setrlimit) between fork and
        // exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: SOFT_LIMIT,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
    .await
}

/// This process's hard limit (it needs well over a thousand sockets too,
/// so its own soft limit is raised to it).
fn own_hard_limit() -> u64 {
    atrelay::net::fd_limit::raise_to_hard_limit()
        .expect("read and raise this process's open-file limit")
        .hard
}

/// Opens `n` connections to `addr` that each send the start of a request
/// head and nothing more yet.
async fn open_slow(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.try_write(b"GET /xrpc/_health HTTP/1.1\r\nHost: relay\r\n");
        socks.push(s);
    }
    socks
}

/// Sends one more header line on each connection every 500 ms, as a
/// slowloris client does, until `until`.
fn trickle(socks: Vec<TcpStream>, until: Instant) -> tokio::task::JoinHandle<Vec<TcpStream>> {
    tokio::spawn(async move {
        while Instant::now() < until {
            for s in &socks {
                let _ = s.try_write(b"X-Slow: 1\r\n");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        socks
    })
}

/// How many of `socks` the server has not closed (a read neither ends nor
/// fails within a moment).
async fn still_open(socks: &mut [TcpStream]) -> usize {
    let mut open = 0;
    let mut buf = [0u8; 1024];
    for s in socks {
        loop {
            match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue, // an answer; read on to its end
                Err(_) => {
                    open += 1;
                    break;
                }
            }
        }
    }
    open
}

/// `GET url` on a fresh connection; must answer 200 within 2 s.
async fn answers_quickly(url: &str) -> String {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let res = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url} did not answer within 2 s: {e}"));
    assert_eq!(res.status(), 200, "{url}");
    let body = res.text().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "{url} was slow");
    body
}

async fn slow_headers_case(hard: u64) {
    let net = Net::start().await;
    let header_timeout = HEADER_TIMEOUT.to_string();
    let relay = relay_with_fd_limit(
        &net,
        hard,
        &[
            ("ATRELAY_LOG", "info"),
            ("ATRELAY_SERVER_HEADER_READ_TIMEOUT_SECS", &header_timeout),
        ],
    )
    .await;
    let metrics = relay.metrics.unwrap();

    // The relay says what it did with its limit, and sizes its cap by it.
    let (limit, said) = if hard > SOFT_LIMIT {
        (hard, ["raised the open-file limit", "before=1024"])
    } else {
        (SOFT_LIMIT, ["already at the hard limit", "limit=1024"])
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !said.iter().all(|s| relay.stderr.head().contains(s)) {
        assert!(
            Instant::now() < deadline,
            "stderr lacks {said:?}: {}",
            relay.stderr.head()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cap = connection_budget(
        limit,
        Reserve {
            databases: atrelay::log::FILE_DESCRIPTORS,
        },
    );
    let cap_of = |s: &Scrape| s.value("atrelay_http_max_connections", &[("server", "relay")]);
    let s = relay.scrape_until(|s| cap_of(s) > 0.0).await;
    assert_eq!(cap_of(&s), cap as f64);

    // The attack.
    let started = Instant::now();
    let mut slow = open_slow(relay.addr, SLOW_RELAY).await;
    slow.extend(open_slow(metrics, SLOW_METRICS).await);
    let opened = started.elapsed();
    let trickling = trickle(slow, Instant::now() + Duration::from_secs(4));

    // While it lasts: health, metrics, a new subscriber with live events.
    let health = relay.url("/xrpc/_health");
    let scrape_url = format!("http://{metrics}/metrics");
    for _ in 0..4 {
        answers_quickly(&health).await;
        Scrape::parse(&answers_quickly(&scrape_url).await).expect("a valid scrape");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut sub = tokio::time::timeout(
        Duration::from_secs(5),
        Subscriber::connect(relay.addr, None),
    )
    .await
    .expect("a new subscriber connects under the attack");
    let mut alice = net.account();
    net.pds.emit_commit(&alice.post("still serving"));
    sub.take(1).await;
    let mut slow = trickling.await.unwrap();

    // The slow connections are all gone after the header timeout.
    let done = started + opened + Duration::from_secs(HEADER_TIMEOUT + 2);
    tokio::time::sleep_until(done).await;
    assert_eq!(still_open(&mut slow).await, 0, "slow connections left open");
    answers_quickly(&health).await;
    let s = relay.scrape().await;
    let closed = |server| {
        s.value("atrelay_http_header_timeouts_total", &[("server", server)])
            + s.value(
                "atrelay_http_connections_evicted_total",
                &[("server", server)],
            )
    };
    assert!(
        closed("relay") >= SLOW_RELAY as f64,
        "relay: every slow connection timed out or was evicted"
    );
    assert!(closed("metrics") >= SLOW_METRICS as f64);
    let evicted = s.value(
        "atrelay_http_connections_evicted_total",
        &[("server", "relay")],
    );
    if cap < SLOW_RELAY {
        assert!(evicted > 0.0, "the cap ({cap}) held by eviction");
    } else {
        assert_eq!(evicted, 0.0, "below the cap ({cap}) nothing is evicted");
    }
    let open = s.value("atrelay_http_connections", &[("server", "relay")]);
    assert!(open <= 2.0, "{open} relay connections still open");
    for kind in ["emfile", "enfile"] {
        let errors = s.value(
            "atrelay_http_accept_errors_total",
            &[("server", "relay"), ("kind", kind)],
        );
        assert_eq!(errors, 0.0, "{kind} while accepting");
    }

    // Alive and quiet.
    let mut relay = relay;
    assert!(
        relay.child.0.try_wait().unwrap().is_none(),
        "the relay is still running"
    );
    let logged = relay.stderr.bytes();
    assert!(
        logged < 64 * 1024,
        "{logged} bytes of log; tail: {}",
        relay.stderr.tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_with_a_raisable_limit() {
    let _one = ONE_AT_A_TIME.lock().await;
    let hard = own_hard_limit();
    assert!(
        hard > SOFT_LIMIT + 2_000,
        "this test needs a hard limit above 3,024"
    );
    tokio::time::timeout(Duration::from_secs(90), slow_headers_case(hard))
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_at_a_fixed_limit_of_1024() {
    let _one = ONE_AT_A_TIME.lock().await;
    own_hard_limit();
    tokio::time::timeout(Duration::from_secs(90), slow_headers_case(SOFT_LIMIT))
        .await
        .expect("test timed out");
}

/// A firehose client on a raw socket, so the test decides exactly when and
/// how fast it reads and can tell a clean end of stream from a reset.
struct RawSubscriber {
    sock: TcpStream,
    /// Bytes read past the 101 response.
    early: Vec<u8>,
}

impl RawSubscriber {
    async fn connect(relay: SocketAddr, cursor: u64) -> RawSubscriber {
        let mut sock = TcpStream::connect(relay).await.expect("connect");
        let req = format!(
            "GET /xrpc/com.atproto.sync.subscribeRepos?cursor={cursor} HTTP/1.1\r\n\
             Host: {relay}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
                .await
                .expect("upgrade answered")
                .unwrap();
            assert!(n > 0, "closed during the upgrade");
            got.extend_from_slice(&buf[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        assert!(
            got.starts_with(b"HTTP/1.1 101"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        RawSubscriber {
            sock,
            early: got[end..].to_vec(),
        }
    }
}

/// What the server sent, frame by frame, without keeping payloads (a steady
/// reader reads megabytes).
#[derive(Default)]
struct FrameScan {
    /// Header bytes of the frame being read, then its payload's first bytes.
    head: Vec<u8>,
    /// Payload bytes of the current frame still to come; 0 between frames.
    left: usize,
    opcode: u8,
    frames: u64,
    /// A close frame, or a firehose error frame (`op: -1`), was seen.
    ended: bool,
}

impl FrameScan {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left == 0 {
                // Between frames: collecting a header.
                self.head.push(data[0]);
                data = &data[1..];
                if let Some((opcode, len, hlen)) = ws_header(&self.head) {
                    self.opcode = opcode;
                    self.left = len;
                    self.head.drain(..hlen);
                    self.finish_if_empty();
                }
                continue;
            }
            let take = self.left.min(data.len());
            if self.head.len() < 5 {
                let keep = (5 - self.head.len()).min(take);
                self.head.extend_from_slice(&data[..keep]);
            }
            self.left -= take;
            data = &data[take..];
            self.finish_if_empty();
        }
    }

    fn finish_if_empty(&mut self) {
        if self.left > 0 {
            return;
        }
        self.frames += 1;
        let error_frame = self.opcode == 2 && self.head.get(4) == Some(&0x20);
        if self.opcode == 8 || error_frame {
            self.ended = true;
        }
        self.head.clear();
    }
}

/// A server frame header at the start of `b`: (opcode, payload length,
/// header length), once complete.
fn ws_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    match b[1] & 0x7f {
        126 if b.len() >= 4 => Some((opcode, u16::from_be_bytes([b[2], b[3]]) as usize, 4)),
        127 if b.len() >= 10 => Some((
            opcode,
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            10,
        )),
        126 | 127 => None,
        n => Some((opcode, n as usize, 2)),
    }
}

/// Subscribers reading steadily, and how fast.
const STEADY: usize = 200;
const STEADY_BYTES_PER_SEC: usize = 32 * 1024;
/// Subscribers that stop reading.
const STALLED: usize = 3;
/// `fanout.too_slow_secs` in this test.
const TOO_SLOW_SECS: u64 = 5;

/// Reads at [`STEADY_BYTES_PER_SEC`] until `until`; returns the bytes read
/// and whether the stream ended (error frame, close, EOF or reset).
async fn read_steadily(sub: RawSubscriber, until: Instant) -> (usize, bool) {
    let mut scan = FrameScan::default();
    scan.feed(&sub.early);
    let mut total = sub.early.len();
    let per_tick = STEADY_BYTES_PER_SEC / 10;
    let mut buf = vec![0u8; per_tick];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < until {
        tick.tick().await;
        let mut want = per_tick;
        while want > 0 {
            match sub.sock.try_read(&mut buf[..want]) {
                Ok(0) => return (total, true),
                Ok(n) => {
                    scan.feed(&buf[..n]);
                    total += n;
                    want -= n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return (total, true),
            }
        }
        if scan.ended {
            return (total, true);
        }
    }
    (total, false)
}

/// Reads a dropped subscriber to its end at full speed, answering the
/// server's close as a client does. Returns every frame (opcode, payload)
/// and how the stream ended.
async fn read_to_the_end(mut sub: RawSubscriber) -> (Vec<(u8, Vec<u8>)>, std::io::Result<usize>) {
    let mut bytes = std::mem::take(&mut sub.early);
    let mut buf = vec![0u8; 64 * 1024];
    let mut answered = false;
    let last = loop {
        let r = tokio::time::timeout(Duration::from_secs(10), sub.sock.read(&mut buf))
            .await
            .expect("the stream ends");
        match r {
            Ok(0) => break Ok(0),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
        if !answered && parse_frames(&bytes).iter().any(|(op, _)| *op == 8) {
            // A masked close with an all-zero mask, code 1000.
            let _ = sub
                .sock
                .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
                .await;
            answered = true;
        }
    };
    (parse_frames(&bytes), last)
}

/// Every complete frame in `b`.
fn parse_frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Some((opcode, len, hlen)) = ws_header(b) {
        if b.len() < hlen + len {
            break;
        }
        frames.push((opcode, b[hlen..hlen + len].to_vec()));
        b = &b[hlen + len..];
    }
    frames
}

/// Several MB of commits (8 KB records) for the relay to replay.
async fn backlog(net: &Net, relay: &RelayProcess) -> u64 {
    let mut accounts: Vec<_> = (0..4).map(|_| net.account()).collect();
    let text = "x".repeat(8 * 1024);
    let events = 640;
    for i in 0..events {
        let built = accounts[i % 4].post(&text);
        net.pds.emit_commit(&built);
    }
    let s = relay
        .scrape_until(|s| s.value("atrelay_log_last_seq", &[]) >= events as f64)
        .await;
    let head = s.value("atrelay_log_last_seq", &[]);
    assert_eq!(head, events as f64, "the relay sequenced the backlog");
    let bytes = s.value("atrelay_log_appended_frame_bytes_total", &[]);
    assert!(bytes > 5e6, "a backlog of several MB ({bytes} bytes)");
    events as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_slow_readers_stay_and_stalled_ones_get_a_clean_goodbye() {
    let _one = ONE_AT_A_TIME.lock().await;
    own_hard_limit();
    tokio::time::timeout(Duration::from_secs(120), async {
        let net = Net::start().await;
        let too_slow = TOO_SLOW_SECS.to_string();
        let relay = RelayProcess::spawn(
            &net,
            true,
            &[
                ("ATRELAY_FANOUT_TOO_SLOW_SECS", &too_slow),
                ("ATRELAY_BUDGET_PER_SECOND", "0"),
            ],
        )
        .await;
        let events = backlog(&net, &relay).await;

        let mut steady = Vec::with_capacity(STEADY);
        for _ in 0..STEADY {
            steady.push(RawSubscriber::connect(relay.addr, 0).await);
        }
        let mut stalled = Vec::with_capacity(STALLED);
        for _ in 0..STALLED {
            stalled.push(RawSubscriber::connect(relay.addr, 0).await);
        }
        // Three times too_slow_secs of steady reading.
        let reading = Duration::from_secs(3 * TOO_SLOW_SECS);
        let until = Instant::now() + reading;
        let readers: Vec<_> = steady
            .into_iter()
            .map(|sub| tokio::spawn(read_steadily(sub, until)))
            .collect();

        // The stalled ones are dropped after too_slow_secs...
        let s = relay
            .scrape_until(|s| {
                s.value("atrelay_fanout_consumer_too_slow_total", &[]) >= STALLED as f64
            })
            .await;
        assert_eq!(
            s.value("atrelay_fanout_consumer_too_slow_total", &[]),
            STALLED as f64,
            "the stalled subscribers were dropped"
        );
        // ... and when they read again they get the error frame, the close
        // and a clean end of stream.
        let goodbyes: Vec<_> = stalled
            .into_iter()
            .map(|sub| tokio::spawn(read_to_the_end(sub)))
            .collect();
        for goodbye in goodbyes {
            let (frames, last) = goodbye.await.unwrap();
            assert!(matches!(last, Ok(0)), "a clean end of stream, not {last:?}");
            let n = frames.len();
            assert!(n >= 3, "{n} frames");
            let (close_op, close) = &frames[n - 1];
            assert_eq!(*close_op, 8, "a close frame last");
            assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1008);
            let (op, error) = &frames[n - 2];
            assert_eq!(*op, 2);
            match Event::decode(error) {
                Ok(Event::Error(e)) => assert_eq!(e.error, "ConsumerTooSlow"),
                other => panic!("expected the ConsumerTooSlow frame, got {other:?}"),
            }
            // Before it: whole events from seq 1, in order (the frame in
            // progress was finished, the rest dropped).
            let mut next = 1;
            for (op, frame) in &frames[..n - 2] {
                assert!(*op == 2 || *op == 9, "opcode {op}");
                if *op == 2 {
                    let seq = Event::decode(frame).expect("whole events").seq();
                    assert_eq!(seq, Some(next));
                    next += 1;
                }
            }
            assert!((next as u64) < events, "dropped before the end");
        }

        // The steady readers were never dropped, and did read.
        let mut least = usize::MAX;
        for reader in readers {
            let (bytes, ended) = reader.await.unwrap();
            assert!(!ended, "a steady reader was dropped after {bytes} bytes");
            least = least.min(bytes);
        }
        let expected = STEADY_BYTES_PER_SEC * reading.as_secs() as usize;
        assert!(
            least > expected / 2,
            "the slowest steady reader got {least} bytes of {expected}"
        );
        let s = relay.scrape().await;
        assert_eq!(
            s.value(
                "atrelay_fanout_sessions_ended_total",
                &[("reason", "too_slow")]
            ),
            STALLED as f64,
            "only the stalled subscribers were dropped"
        );
    })
    .await
    .expect("test timed out");
}
