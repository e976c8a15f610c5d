//! The listening host: one task accepting on loopback, one task per
//! connection, each either a firehose subscription or a plain HTTP request.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use super::http::{self, Describe};
use super::HostStream;

/// Frames written per flush.
const BATCH: usize = 256;
/// How long a new connection may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a subscription without a cursor starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithoutCursor {
    /// At the first frame, so a test or bench that appends before the relay
    /// connects loses nothing.
    FromStart,
    /// At the frames released from now on, as a live PDS serves a new
    /// subscriber (the load generator).
    Live,
}

/// How a [`SimHost`] answers.
#[derive(Clone, Debug)]
pub struct SimHostConfig {
    pub without_cursor: WithoutCursor,
    /// The DID `describeServer` names; `None`: `did:web:127.0.0.1%3A<port>`.
    pub server_did: Option<String>,
    /// `describeServer`'s `availableUserDomains`.
    pub user_domains: Vec<String>,
    /// `_health`'s `version`.
    pub version: String,
}

impl Default for SimHostConfig {
    fn default() -> SimHostConfig {
        SimHostConfig {
            without_cursor: WithoutCursor::FromStart,
            server_did: None,
            user_domains: vec![".test".to_owned()],
            version: "atrelay-upstream-sim".to_owned(),
        }
    }
}

/// A running emulated PDS host; stops accepting when dropped.
pub struct SimHost {
    pub addr: SocketAddr,
    pub stream: Arc<HostStream>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHost {
    /// A host on `127.0.0.1`, port 0.
    pub async fn start(config: SimHostConfig) -> std::io::Result<SimHost> {
        SimHost::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// A host on a given address (a host coming back on its old port).
    pub async fn start_on(addr: SocketAddr, config: SimHostConfig) -> std::io::Result<SimHost> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stream = Arc::new(HostStream::default());
        let describe = Arc::new(Describe::new(&config, addr));
        let served = stream.clone();
        let without_cursor = config.without_cursor;
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                let (stream, describe) = (served.clone(), describe.clone());
                tokio::spawn(serve(sock, stream, describe, without_cursor));
            }
        });
        Ok(SimHost { addr, stream, task })
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

impl Drop for SimHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    sock: TcpStream,
    stream: Arc<HostStream>,
    describe: Arc<Describe>,
    without_cursor: WithoutCursor,
) {
    let mut head = [0u8; 4096];
    let n = match tokio::time::timeout(HEAD_TIMEOUT, sock.peek(&mut head)).await {
        Ok(Ok(n)) => n,
        _ => return,
    };
    let text = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    if !text.contains("upgrade: websocket") {
        http::answer(sock, &describe).await;
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
    stream.connections.fetch_add(1, Ordering::SeqCst);
    let (mut tx, mut rx) = ws.split();
    // Drains the subscriber's frames (tungstenite answers pings); ends on close.
    let mut reader = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    // A replay sends only frames above the cursor, as a PDS does.
    let mut next = match (cursor, without_cursor) {
        (Some(c), _) => stream.resume_index(c),
        (None, WithoutCursor::FromStart) => 0,
        (None, WithoutCursor::Live) => stream.released(),
    };
    let above = cursor.unwrap_or(0);
    loop {
        let notified = stream.notified();
        let batch = stream.batch(next, BATCH);
        if batch.is_empty() {
            tokio::select! {
                _ = notified => continue,
                _ = &mut reader => return,
            }
        }
        next += batch.len();
        let mut written = 0;
        for f in batch.iter().filter(|f| cursor.is_none() || f.seq > above) {
            if tx.feed(Message::Binary(f.frame.as_sent())).await.is_err() {
                return;
            }
            written += 1;
        }
        if tx.flush().await.is_err() {
            return;
        }
        stream.sent.fetch_add(written, Ordering::Relaxed);
    }
}
