//! The swarm against a scripted websocket server on 127.0.0.1: exact counts
//! through pings, fragments, every length form, a `ConsumerTooSlow` close
//! and the reconnect from the last seq, on the raw client and (for the
//! same script) the tungstenite one.

use std::time::{Duration, Instant};

use atrelay::fanout::ws::accept_key;
use atrelay::wire::frame::{ErrorFrame, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::ws_frame::{encode_server_frame, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING};
use super::*;

use super::subscriber::identity_frame as identity;

/// Accepts one upgrade; returns the request's path and query.
async fn accept(listener: &TcpListener) -> (TcpStream, String) {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let path = head.split_whitespace().nth(1).unwrap().to_owned();
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .trim()
        .to_owned();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    sock.write_all(response.as_bytes()).await.unwrap();
    (sock, path)
}

/// Reads one client frame; checks it is masked and returns opcode and
/// unmasked payload.
async fn read_client_frame(sock: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    sock.read_exact(&mut h).await.unwrap();
    assert_ne!(h[1] & 0x80, 0, "client frames are masked");
    let len = (h[1] & 0x7f) as usize;
    assert!(len < 126);
    let mut mask = [0u8; 4];
    sock.read_exact(&mut mask).await.unwrap();
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).await.unwrap();
    for (b, m) in payload.iter_mut().zip(mask.iter().cycle()) {
        *b ^= m;
    }
    (h[0] & 0x0f, payload)
}

/// Frames 1..=40 with a ping, a fragmented frame and a trickle of single
/// bytes, then ConsumerTooSlow and a close; on the reconnect (which must
/// ask for cursor 40) frames 41..=60, one repeated. `echoes_close`: the
/// client answers the close (the raw client does; tungstenite's first
/// read path just hangs up).
async fn script(listener: TcpListener, echoes_close: bool) {
    let (mut sock, path) = accept(&listener).await;
    assert!(!path.contains("cursor"), "{path}");
    let mut bytes = Vec::new();
    for seq in 1..=20 {
        encode_server_frame(&mut bytes, true, OP_BINARY, &identity(seq));
    }
    sock.write_all(&bytes).await.unwrap();
    bytes.clear();
    encode_server_frame(&mut bytes, true, OP_PING, b"hi");
    sock.write_all(&bytes).await.unwrap();
    assert_eq!(read_client_frame(&mut sock).await, (0xA, b"hi".to_vec()));
    // Seq 21 in three fragments, a ping between two of them.
    let f = identity(21);
    bytes.clear();
    encode_server_frame(&mut bytes, false, OP_BINARY, &f[..10]);
    encode_server_frame(&mut bytes, true, OP_PING, b"");
    encode_server_frame(&mut bytes, false, OP_CONTINUATION, &f[10..20]);
    encode_server_frame(&mut bytes, true, OP_CONTINUATION, &f[20..]);
    sock.write_all(&bytes).await.unwrap();
    assert_eq!(read_client_frame(&mut sock).await, (0xA, Vec::new()));
    // 22..=40 a byte at a time, so frames straddle every read.
    bytes.clear();
    for seq in 22..=40 {
        encode_server_frame(&mut bytes, true, OP_BINARY, &identity(seq));
    }
    for b in &bytes {
        sock.write_all(std::slice::from_ref(b)).await.unwrap();
        sock.flush().await.unwrap();
    }
    bytes.clear();
    let mut too_slow = Vec::new();
    Event::Error(ErrorFrame {
        error: "ConsumerTooSlow",
        message: None,
    })
    .encode(&mut too_slow);
    encode_server_frame(&mut bytes, true, OP_BINARY, &too_slow);
    encode_server_frame(&mut bytes, true, OP_CLOSE, &[0x03, 0xf0]);
    sock.write_all(&bytes).await.unwrap();
    if echoes_close {
        let (op, code) = read_client_frame(&mut sock).await;
        assert_eq!((op, code), (0x8, vec![0x03, 0xf0]), "the close is echoed");
    }
    drop(sock);

    let (mut sock, path) = accept(&listener).await;
    assert!(path.ends_with("?cursor=40"), "{path}");
    bytes.clear();
    for seq in [40, 41].into_iter().chain(42..=60) {
        encode_server_frame(&mut bytes, true, OP_BINARY, &identity(seq));
    }
    sock.write_all(&bytes).await.unwrap();
    // Hold the connection until the swarm is stopped.
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest).await;
}

/// The scripted server's runtime: a worker of its own, so the server runs
/// while the test thread waits on the swarm.
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn run_script(client: SwarmClient) {
    let rt = server_runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!(
        "ws://{}/xrpc/com.atproto.sync.subscribeRepos",
        listener.local_addr().unwrap()
    );
    let server = rt.spawn(script(listener, client == SwarmClient::Raw));
    let cfg = SwarmConfig {
        subscribers: 1,
        check: 1,
        client,
        ..SwarmConfig::default()
    };
    let swarm = Swarm::start(&url, &cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::spawn(move || {
        while swarm.min_frames() < 60 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let t = swarm.totals();
        assert_eq!(t.min_frames, 60, "{client:?}: {t:?}");
        assert_eq!(t.duplicates, 1, "{t:?}");
        assert_eq!(t.gaps, 0, "{t:?}");
        assert_eq!(t.reconnects, 1, "{t:?}");
        assert_eq!(t.too_slow, 1, "{t:?}");
        assert_eq!(t.decode_errors, 0, "{t:?}");
        assert_eq!(t.checker_types.get("identity"), Some(&61), "{t:?}");
        swarm.stop();
    })
    .join()
    .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("script ends once the swarm closes")
            .expect("script's own checks");
    });
}

#[test]
fn raw_client_counts_exactly_through_pings_fragments_and_a_reconnect() {
    run_script(SwarmClient::Raw);
}

#[test]
fn tungstenite_client_counts_the_same() {
    run_script(SwarmClient::Tungstenite);
}

/// A slow subscriber reads no faster than `max_rate` over time (the raw
/// client sleeps between reads of at most 4 KiB, about 36 of these frames).
#[test]
fn max_rate_paces_the_reader() {
    let rt = server_runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = rt.spawn(async move {
        let (mut sock, _) = accept(&listener).await;
        let mut bytes = Vec::new();
        for seq in 1..=300 {
            encode_server_frame(&mut bytes, true, OP_BINARY, &identity(seq));
        }
        sock.write_all(&bytes).await.unwrap();
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest).await;
    });
    let cfg = SwarmConfig {
        subscribers: 1,
        check: 0,
        max_rate: 1_000.0,
        ..SwarmConfig::default()
    };
    let started = Instant::now();
    let swarm = Swarm::start(&url, &cfg).unwrap();
    while swarm.min_frames() < 300 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    assert_eq!(swarm.min_frames(), 300);
    // 300 frames at 1,000/s, the first read's worth at once: at least
    // (300 - 36) ms.
    assert!(took >= Duration::from_millis(250), "{took:?}");
    swarm.stop();
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    });
}

/// A swarm spread over two URLs deals its subscribers round-robin, and its
/// totals by endpoint count each URL's subscribers apart.
#[test]
fn a_spread_swarm_deals_subscribers_over_its_urls() {
    let rt = server_runtime();
    let mut urls = Vec::new();
    let mut servers = Vec::new();
    for frames in [5, 7] {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        urls.push(format!("ws://{}/", listener.local_addr().unwrap()));
        servers.push(rt.spawn(async move {
            let mut held = Vec::new();
            for _ in 0..2 {
                let (mut sock, _) = accept(&listener).await;
                let mut bytes = Vec::new();
                for seq in 1..=frames {
                    encode_server_frame(&mut bytes, true, OP_BINARY, &identity(seq));
                }
                sock.write_all(&bytes).await.unwrap();
                held.push(sock);
            }
            // Hold the connections until the swarm is stopped.
            for mut sock in held {
                let mut rest = Vec::new();
                let _ = sock.read_to_end(&mut rest).await;
            }
        }));
    }
    let cfg = SwarmConfig {
        subscribers: 4,
        check: 2,
        ..SwarmConfig::default()
    };
    let swarm = Swarm::start_spread(&urls, &cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while swarm.totals().frames < 2 * 5 + 2 * 7 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let by = swarm.endpoint_totals();
    assert_eq!(by.len(), 2);
    for (t, frames) in by.iter().zip([5, 7]) {
        assert_eq!(t.subscribers, 2, "{t:?}");
        assert_eq!((t.min_frames, t.max_frames), (frames, frames), "{t:?}");
        assert_eq!(t.checker_types.get("identity"), Some(&frames), "{t:?}");
    }
    assert_eq!(swarm.totals().frames, 2 * 5 + 2 * 7);
    assert_eq!(swarm.take_latency_by_endpoint().len(), 2);
    swarm.stop();
    rt.block_on(async {
        for s in servers {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
    });
}
