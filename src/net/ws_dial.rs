//! [`dial_ws`]: a websocket client connection to a checked address, for
//! every firehose this process reads (the relay's crawlers, a mirror's
//! upstream).

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::dns::Dns;

/// A client websocket, plain or TLS.
pub type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Resolves `host` once through `dns` (which applies the SSRF rule to the
/// answers), connects to a checked address, and runs the websocket
/// handshake for `url` over that connection: DNS cannot answer differently
/// for the dial than for the check. The error is a human-readable cause.
pub async fn dial_ws(
    dns: &Dns,
    host: &str,
    port: u16,
    url: &str,
    ws: WebSocketConfig,
) -> Result<WsClient, String> {
    let addrs = dns.resolve(host, port).await.map_err(|e| e.to_string())?;
    let mut last_error = String::new();
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return tokio_tungstenite::client_async_tls_with_config(url, tcp, Some(ws), None)
                    .await
                    .map(|(ws, _)| ws)
                    .map_err(|e| e.to_string());
            }
            Err(e) => last_error = format!("{addr}: {e}"),
        }
    }
    Err(last_error)
}
