//! One synthetic PDS host on loopback: `com.atproto.sync.subscribeRepos`
//! (with cursor replay, as a real PDS serves it), `describeServer` for the
//! relay's requestCrawl probe, and `/xrpc/_health`.
//!
//! The host's stream is a list of pre-encoded frames; upstream seq is the
//! index + 1. The pacer moves `released` forward; each connection writes the
//! released frames it has not sent, stamping the emit time into a copy of
//! each frame as it goes (see `emit_time`). The relay can disconnect and
//! resume from any cursor: the list is kept for the whole run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::emit_time;

/// A frame with no emit-time placeholder.
pub const NO_TIME: u32 = u32::MAX;
/// Frames written per flush.
const BATCH: usize = 256;

/// A pre-encoded frame and where its `time` placeholder sits.
#[derive(Clone, Debug)]
pub struct HostFrame {
    pub bytes: Bytes,
    pub time_at: u32,
}

impl HostFrame {
    pub fn new(bytes: Vec<u8>) -> HostFrame {
        let time_at = emit_time::locate(&bytes).unwrap_or(NO_TIME);
        HostFrame {
            bytes: Bytes::from(bytes),
            time_at,
        }
    }

    /// The frame as sent at `now` (µs).
    fn stamped(&self, now: u64) -> Bytes {
        if self.time_at == NO_TIME {
            return self.bytes.clone();
        }
        let mut copy = self.bytes.to_vec();
        emit_time::stamp(&mut copy, self.time_at, now);
        Bytes::from(copy)
    }
}

/// The host's event stream, shared by its connections and the pacer.
#[derive(Default)]
pub struct HostStream {
    frames: RwLock<Vec<HostFrame>>,
    released: AtomicUsize,
    notify: Notify,
    /// Frames written to sockets (a relay reconnecting may be sent some twice).
    pub sent: AtomicU64,
    /// Subscriptions accepted so far.
    pub connections: AtomicU64,
}

impl HostStream {
    /// Appends frames (not yet released); returns the seq of the first.
    pub fn stage(&self, frames: impl IntoIterator<Item = HostFrame>) -> u64 {
        let mut all = self.frames.write().expect("stream lock");
        let first = all.len() as u64 + 1;
        all.extend(frames);
        first
    }

    /// Frames staged so far; the next staged frame gets seq `len + 1`.
    pub fn len(&self) -> usize {
        self.frames.read().expect("stream lock").len()
    }

    /// Makes `n` more frames sendable.
    pub fn release(&self, n: usize) {
        self.released.fetch_add(n, Ordering::AcqRel);
    }

    /// Wakes the connections after [`HostStream::release`].
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    pub fn released(&self) -> usize {
        self.released.load(Ordering::Acquire)
    }
}

/// A running host.
pub struct Host {
    pub addr: SocketAddr,
    pub stream: Arc<HostStream>,
    task: tokio::task::JoinHandle<()>,
}

impl Host {
    pub async fn start() -> std::io::Result<Host> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stream = Arc::new(HostStream::default());
        let served = stream.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve(sock, served.clone(), addr));
            }
        });
        Ok(Host { addr, stream, task })
    }

    /// `127.0.0.1:port`, the hostname the relay knows the host by.
    pub fn hostname(&self) -> String {
        self.addr.to_string()
    }

    /// The PDS endpoint DID documents name.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(sock: TcpStream, stream: Arc<HostStream>, addr: SocketAddr) {
    let mut head = [0u8; 4096];
    let n = match tokio::time::timeout(Duration::from_secs(10), sock.peek(&mut head)).await {
        Ok(Ok(n)) => n,
        _ => return,
    };
    let text = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    if !text.contains("upgrade: websocket") {
        answer_http(sock, &text, addr).await;
        return;
    }
    let mut cursor: Option<u64> = None;
    // tungstenite's callback signature returns its (large) error type.
    #[allow(clippy::result_large_err)]
    let ws = tokio_tungstenite::accept_hdr_async(sock, |req: &Request, res: Response| {
        cursor = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("cursor=")))
            .and_then(|c| c.parse().ok());
        Ok(res)
    })
    .await;
    let Ok(ws) = ws else { return };
    stream.connections.fetch_add(1, Ordering::Relaxed);
    let (mut tx, mut rx) = ws.split();
    // Drains the relay's frames (tungstenite answers pings); ends on close.
    let mut reader = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let released = stream.released();
    let mut next = match cursor {
        Some(c) => (c as usize).min(released),
        None => released,
    };
    loop {
        let notified = stream.notify.notified();
        let released = stream.released();
        if next >= released {
            tokio::select! {
                _ = notified => continue,
                _ = &mut reader => return,
            }
        }
        let end = released.min(next + BATCH);
        let batch: Vec<HostFrame> = stream.frames.read().expect("stream lock")[next..end].to_vec();
        let now = emit_time::now_micros();
        for frame in batch {
            if tx.feed(Message::Binary(frame.stamped(now))).await.is_err() {
                return;
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
        stream
            .sent
            .fetch_add((end - next) as u64, Ordering::Relaxed);
        next = end;
    }
}

/// `describeServer`, `_health`, and 404 for anything else.
async fn answer_http(mut sock: TcpStream, head: &str, addr: SocketAddr) {
    // Read the request head off the socket (it was only peeked).
    let mut buf = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path.starts_with("/xrpc/com.atproto.server.describeserver") {
        let did = format!("did:web:127.0.0.1%3A{}", addr.port());
        (
            "200 OK",
            serde_json::json!({"did": did, "availableUserDomains": [".fleet.test"]}).to_string(),
        )
    } else if path.starts_with("/xrpc/_health") {
        ("200 OK", r#"{"version":"atrelay-loadtest"}"#.to_owned())
    } else {
        (
            "404 Not Found",
            r#"{"error":"MethodNotImplemented"}"#.to_owned(),
        )
    };
    let msg = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(msg.as_bytes()).await;
    let _ = sock.shutdown().await;
}
