//! The server against real sockets on 127.0.0.1: timeouts, eviction,
//! refusal, upgrades, stop.

use super::*;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::io::AsyncWriteExt;

/// A server on a free port with `limits`: `/` answers the client's
/// address, `/wait` answers once the test notifies `release`, `/upgrade`
/// switches protocols and hands the socket to the test.
struct TestServer {
    addr: std::net::SocketAddr,
    stop: crate::lifecycle::Shutdown,
    done: tokio::task::JoinHandle<()>,
    upgraded: tokio::sync::mpsc::Receiver<UpgradedTcp>,
    release: Arc<tokio::sync::Notify>,
}

impl TestServer {
    async fn start(limits: ServerLimits) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, upgraded) = tokio::sync::mpsc::channel(4);
        let release = Arc::new(tokio::sync::Notify::new());
        let waiting = release.clone();
        let app = Router::new()
            .route(
                "/",
                get(
                    |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
                        peer.to_string()
                    },
                ),
            )
            .route(
                "/refuse",
                axum::routing::post(|| async { StatusCode::PAYLOAD_TOO_LARGE }),
            )
            .route(
                "/read",
                axum::routing::post(|body: String| async move { body.len().to_string() }),
            )
            .route(
                "/wait",
                get(move || {
                    let waiting = waiting.clone();
                    async move { waiting.notified().await }
                }),
            )
            .route(
                "/upgrade",
                get(move |mut req: axum::extract::Request| {
                    let tx = tx.clone();
                    async move {
                        let on_upgrade = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let upgraded = on_upgrade.await.unwrap();
                            let tcp = into_tcp(upgraded).expect("our own socket");
                            let _ = tx.send(tcp).await;
                        });
                        axum::http::Response::builder()
                            .status(101)
                            .header("upgrade", "test")
                            .header("connection", "upgrade")
                            .body(axum::body::Body::empty())
                            .unwrap()
                    }
                }),
            );
        let stop = crate::lifecycle::Shutdown::new();
        let done = tokio::spawn(serve(listener, app, "relay", limits, stop.signal()));
        TestServer {
            addr,
            stop,
            done,
            upgraded,
            release,
        }
    }
}

fn limits(max_connections: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        max_connections,
    }
}

/// Sends `req` on a new connection and reads until the server closes
/// it or `within` passes.
async fn exchange(addr: std::net::SocketAddr, req: &str, within: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    read_until_closed(&mut s, within).await
}

async fn read_until_closed(s: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closed `s` within `within` (EOF or reset).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

const GET: &str = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn requests_carry_the_peer_address() {
    let server = TestServer::start(limits(8)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(GET.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(&me.to_string()), "{answer}");
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let server = TestServer::start(limits(8)).await;
    // Never finishes its head.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
    // Finishes one request, then idles.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).await.unwrap() > 0, "answered");
    let t = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    let slow_after = t.elapsed();
    assert!(slow_after < Duration::from_millis(1200), "{slow_after:?}");
    assert!(closed_within(&mut idle, Duration::from_secs(4)).await);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "not before the idle timeout"
    );
    // A keep-alive client whose next request stalls half-way gets the
    // header timeout from its first byte.
    let mut next = TcpStream::connect(server.addr).await.unwrap();
    next.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(next.read(&mut buf).await.unwrap() > 0);
    next.write_all(b"GET / HT").await.unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut next, Duration::from_secs(3)).await);
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn at_the_cap_the_oldest_idle_connection_is_evicted() {
    let server = TestServer::start(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        ..limits(3)
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        slow.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Real clients that keep their connections: each evicts the oldest
    // connection without a request in progress, which is a slow one
    // every time (the real ones are younger).
    let mut real = Vec::new();
    for (round, evicted) in slow.iter_mut().enumerate() {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "round {round}: {answer}"
        );
        assert!(
            closed_within(evicted, Duration::from_secs(2)).await,
            "round {round} evicted the oldest slow connection"
        );
        real.push(s);
    }
    for s in &mut real {
        assert!(!closed_within(s, Duration::from_millis(100)).await);
    }
}

#[tokio::test]
async fn busy_slots_refuse_with_503_and_upgrades_keep_their_slot() {
    let mut server = TestServer::start(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        ..limits(2)
    })
    .await;
    // One slot: a request in progress.
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // The other: an upgraded socket, with bytes sent behind the request.
    let mut up = TcpStream::connect(server.addr).await.unwrap();
    up.write_all(
        b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\nearly",
    )
    .await
    .unwrap();
    let tcp = server.upgraded.recv().await.unwrap();
    assert_eq!(&tcp.read_ahead[..], b"early");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let answer = exchange(server.addr, GET, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 5"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], "TooManyConnections");
    // The upgraded socket frees its slot when it is dropped.
    drop(tcp);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let answer = exchange(server.addr, GET, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The busy request finishes normally.
    server.release.notify_one();
    let mut buf = [0u8; 256];
    assert!(busy.read(&mut buf).await.unwrap() > 0);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    drop(up);
}

#[tokio::test]
async fn stop_closes_idle_connections_and_returns() {
    let server = TestServer::start(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 8,
    })
    .await;
    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop.begin();
    tokio::time::timeout(Duration::from_secs(2), server.done)
        .await
        .expect("serve returned")
        .unwrap();
    assert!(closed_within(&mut waiting, Duration::from_secs(1)).await);
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer listening"
    );
}

#[test]
fn refusal_is_well_formed() {
    let text = std::str::from_utf8(REFUSAL).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), len);
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], "TooManyConnections");
    assert!(json["message"].is_string());
}

#[test]
fn accept_errors_back_off_and_are_classified() {
    let metrics = ServerMetrics::new("relay");
    let mut errors = AcceptErrors::new("relay");
    let emfile = io::Error::from_raw_os_error(libc::EMFILE);
    let pauses: Vec<Duration> = (0..6).map(|_| errors.failed(&emfile, &metrics)).collect();
    assert_eq!(pauses[0], Duration::from_millis(50));
    assert_eq!(pauses[1], Duration::from_millis(100));
    assert_eq!(pauses[5], Duration::from_millis(500));
    assert_eq!(errors.suppressed, 5, "one line logged, five suppressed");
    errors.succeeded();
    let reset = io::Error::from_raw_os_error(libc::ECONNABORTED);
    assert_eq!(errors.failed(&reset, &metrics), Duration::from_millis(1));
    assert_eq!(accept_error_kind(&reset), 4);
    assert_eq!(
        accept_error_kind(&io::Error::from_raw_os_error(libc::ENFILE)),
        1
    );
}

/// The answer's head to one raw request.
async fn head_of(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before an answer");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).to_ascii_lowercase()
}

#[tokio::test]
async fn an_answer_before_the_body_is_read_closes_the_connection() {
    let server = TestServer::start(limits(8)).await;
    // Most of a large body is still on its way when the refusal is written:
    // a client must not reuse the connection, and is told so.
    let body = vec![b'x'; 256 * 1024];
    let mut req = format!(
        "POST /refuse HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body[..1024]);
    let head = head_of(server.addr, &req).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // A body read to its end leaves the connection reusable.
    let head = head_of(
        server.addr,
        b"POST /read HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
}
