//! The client side of the WebSocket opening handshake (RFC 6455 §4.1) over
//! a plain TCP socket: send the upgrade request, accept only a `101` whose
//! `Sec-WebSocket-Accept` matches our key.
//!
//! Only `ws://`: the swarm measures a relay on the same network, and TLS
//! would measure the TLS library instead (the `tungstenite` client does
//! `wss://` for runs against a public relay).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest response head accepted; the relay's is about 150 bytes.
const MAX_RESPONSE_HEAD: usize = 8 << 10;

/// Why a swarm URL cannot be dialed by the raw client; names the URL.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {problem}")]
pub struct TargetError {
    pub url: String,
    pub problem: TargetProblem,
}

/// What is wrong with a swarm URL, and what to use instead.
#[derive(Debug, thiserror::Error)]
pub enum TargetProblem {
    #[error("the raw swarm client speaks ws:// only (use the tungstenite client for wss://)")]
    NotWs,
    #[error("no query in the URL, please; the swarm adds its own cursor")]
    Query,
    #[error(transparent)]
    Resolve(std::io::Error),
    #[error("{0} has no address")]
    NoAddress(String),
}

/// Where a `ws://host:port/path` URL points, resolved once.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority as written.
    host: String,
    /// Path, without a query.
    path: String,
}

impl Target {
    /// Parses and resolves `url`; an error says what to use instead.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let bad = |problem| TargetError {
            url: url.to_owned(),
            problem,
        };
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| bad(TargetProblem::NotWs))?;
        let (host, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.contains('?') {
            return Err(bad(TargetProblem::Query));
        }
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| bad(TargetProblem::Resolve(e)))?
            .next()
            .ok_or_else(|| bad(TargetProblem::NoAddress(host.to_owned())))?;
        Ok(Target {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The request path, with `cursor` as the query when given.
    fn request_path(&self, cursor: Option<u64>) -> String {
        match cursor {
            Some(c) => format!("{}?cursor={c}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Why an upgrade failed.
#[derive(Debug)]
pub enum HandshakeError {
    Io(std::io::Error),
    /// Not `101 Switching Protocols`, or a missing or wrong header.
    Refused(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Refused(why) => write!(f, "upgrade refused: {why}"),
        }
    }
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> HandshakeError {
        HandshakeError::Io(e)
    }
}

/// Sends the upgrade request for `target` (from `cursor`) on `stream` and
/// checks the answer. Returns the bytes that followed the response head:
/// the start of the frame stream, which the caller must read first.
pub async fn upgrade(
    stream: &mut TcpStream,
    target: &Target,
    cursor: Option<u64>,
) -> Result<Vec<u8>, HandshakeError> {
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        path = target.request_path(cursor),
        host = target.host,
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HandshakeError::Refused(
                "connection closed before the response".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head_len) = check_response(&buf, &key)? {
            return Ok(buf.split_off(head_len));
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(HandshakeError::Refused("response head too long".into()));
        }
    }
}

/// `Ok(None)` while the head is incomplete; `Ok(Some(len))` when `buf`
/// starts with a valid `101` answering `key`, `len` bytes long.
fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::Refused(format!("bad response: {e}"))),
    };
    if response.code != Some(101) {
        return Err(HandshakeError::Refused(format!(
            "status {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        )));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(HandshakeError::Refused("no Upgrade: websocket".into()));
    }
    let want = derive_accept_key(key.as_bytes());
    match header("sec-websocket-accept") {
        Some(accept) if accept == want => Ok(Some(head_len)),
        other => Err(HandshakeError::Refused(format!(
            "Sec-WebSocket-Accept {other:?}, expected {want:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455 §1.3's example key and answer.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn accepts_only_the_matching_101() {
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n\x02\x01x"
        );
        let head = ok.len() - 3;
        assert_eq!(check_response(ok.as_bytes(), KEY).unwrap(), Some(head));
        assert_eq!(check_response(&ok.as_bytes()[..40], KEY).unwrap(), None);
        let wrong = ok.replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(check_response(wrong.as_bytes(), KEY).is_err());
        let busy = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        let err = check_response(busy.as_bytes(), KEY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("503"), "{err}");
    }

    #[test]
    fn urls_resolve_and_keep_their_path() {
        let t = Target::parse("ws://127.0.0.1:2470/xrpc/com.atproto.sync.subscribeRepos").unwrap();
        assert_eq!(t.addr, "127.0.0.1:2470".parse().unwrap());
        assert_eq!(
            t.request_path(Some(5)),
            "/xrpc/com.atproto.sync.subscribeRepos?cursor=5"
        );
        assert_eq!(Target::parse("ws://127.0.0.1").unwrap().addr.port(), 80);
        assert!(Target::parse("wss://relay.example/x")
            .unwrap_err()
            .to_string()
            .contains("ws://"));
        assert!(Target::parse("ws://127.0.0.1:1/x?cursor=1").is_err());
    }
}
