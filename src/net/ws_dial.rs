//! [`dial_ws`]: a websocket client connection to a checked address, and
//! [`Keepalive`], its idle pings, for every firehose this process reads
//! (the relay's crawlers, a mirror's upstream).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::dns::{Dns, DnsError};

/// A client websocket, plain or TLS.
pub type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why [`dial_ws`] opened no websocket: the step that failed, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// No checked address (lookup failure, or only refused addresses).
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// No address accepted the connection; the last one tried.
    #[error("{addr}: {err}")]
    Connect {
        addr: SocketAddr,
        err: std::io::Error,
    },
    /// Connected, but the TLS or websocket handshake failed.
    #[error(transparent)]
    Handshake(#[from] WsError),
}

/// Resolves `host` once through `dns` (which applies the SSRF rule to the
/// answers), connects to a checked address, and runs the websocket
/// handshake for `url` over that connection: DNS cannot answer differently
/// for the dial than for the check.
pub async fn dial_ws(
    dns: &Dns,
    host: &str,
    port: u16,
    url: &str,
    ws: WebSocketConfig,
) -> Result<WsClient, DialError> {
    let addrs = dns.resolve(host, port).await?;
    let mut last_error = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                let (ws, _) =
                    tokio_tungstenite::client_async_tls_with_config(url, tcp, Some(ws), None)
                        .await?;
                return Ok(ws);
            }
            Err(err) => last_error = Some(DialError::Connect { addr, err }),
        }
    }
    // `resolve` answers at least one address or an error.
    Err(last_error.unwrap_or_else(|| {
        DialError::Dns(DnsError::NoAddresses {
            host: host.to_owned(),
        })
    }))
}

/// Why a client websocket is over.
#[derive(Debug)]
pub enum WsEnd {
    /// Silent for the idle time, then unanswered for as long after a ping.
    Silent,
    /// The ping could not be sent.
    PingFailed,
    /// The far side closed the stream.
    Closed,
    /// The websocket reader failed (broken framing, a message over the
    /// limit, I/O).
    Failed(tokio_tungstenite::tungstenite::Error),
}

impl std::fmt::Display for WsEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsEnd::Silent => f.write_str("no traffic and no pong"),
            WsEnd::PingFailed => f.write_str("ping failed"),
            WsEnd::Closed => f.write_str("stream closed"),
            WsEnd::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// What reading a client websocket with a timeout gave.
pub type Timed = Result<Option<Result<Message, WsError>>, tokio::time::error::Elapsed>;

/// Idle pings on a client websocket (the firehose has no application
/// keepalive, digest §1.6): after `idle` without a message, one ping; after
/// as long again without any, the connection is dead.
#[derive(Debug)]
pub struct Keepalive {
    idle: Duration,
    pinged: bool,
}

impl Keepalive {
    /// Pings after `idle` of silence.
    pub fn new(idle: Duration) -> Keepalive {
        Keepalive {
            idle,
            pinged: false,
        }
    }

    /// How long to wait for the next message (`tokio::time::timeout`).
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Takes what a timed read gave: `Ok(Some(message))`; `Ok(None)` when
    /// the wait ran out and a ping went out (read again); `Err` when the
    /// connection is over.
    pub async fn take(
        &mut self,
        next: Timed,
        tx: &mut SplitSink<WsClient, Message>,
    ) -> Result<Option<Message>, WsEnd> {
        match next {
            Err(_) if self.pinged => Err(WsEnd::Silent),
            Err(_) => {
                self.pinged = true;
                match tx.send(Message::Ping(Bytes::new())).await {
                    Ok(()) => Ok(None),
                    Err(_) => Err(WsEnd::PingFailed),
                }
            }
            Ok(None) => Err(WsEnd::Closed),
            Ok(Some(Err(e))) => Err(WsEnd::Failed(e)),
            Ok(Some(Ok(m))) => {
                self.pinged = false;
                Ok(Some(m))
            }
        }
    }
}
