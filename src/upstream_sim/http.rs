//! The host's plain HTTP answers: `describeServer`, `_health`, and 404.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::SimHostConfig;

/// How long a request head may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 16_384;

/// The bodies a host answers with, rendered once when it starts.
pub(super) struct Describe {
    describe_server: String,
    health: String,
}

impl Describe {
    pub(super) fn new(config: &SimHostConfig, addr: SocketAddr) -> Describe {
        let did = config
            .server_did
            .clone()
            .unwrap_or_else(|| format!("did:web:127.0.0.1%3A{}", addr.port()));
        Describe {
            describe_server: serde_json::json!({
                "did": did,
                "availableUserDomains": config.user_domains,
            })
            .to_string(),
            health: serde_json::json!({ "version": config.version }).to_string(),
        }
    }
}

/// Reads the request head and answers it; the connection then closes.
pub(super) async fn answer(mut sock: TcpStream, describe: &Describe) {
    let Some(path) = read_request_path(&mut sock).await else {
        return;
    };
    let (status, body) = if path.eq_ignore_ascii_case("/xrpc/com.atproto.server.describeServer") {
        ("200 OK", describe.describe_server.as_str())
    } else if path == "/xrpc/_health" {
        ("200 OK", describe.health.as_str())
    } else {
        ("404 Not Found", r#"{"error":"MethodNotImplemented"}"#)
    };
    let msg = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(msg.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// Reads an HTTP/1.1 request head and returns its path without the query.
async fn read_request_path(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(READ_TIMEOUT, sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > MAX_HEAD {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf).lines().next()?.to_owned();
    let path = line.split_whitespace().nth(1)?;
    Some(path.split('?').next().unwrap_or(path).to_owned())
}
