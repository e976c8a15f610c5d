//! `com.atproto.sync.subscribeRepos`: the websocket upgrade, done here by hand
//! so the fan-out session gets the raw socket and writes shared frame bytes to
//! it without a websocket library copying each frame per subscriber.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::error::XrpcError;
use super::AppState;
use crate::fanout::{
    accept_key, serve_subscriber, Peer, ReadAhead, SessionEnd, MAX_USER_AGENT_BYTES,
};
use crate::net::http_server::{into_tcp, UpgradedTcp};

/// Upgrades and hands the connection to a subscriber session, listed in
/// the firehose's `subscribers` with the peer's address and `User-Agent`
/// while it runs.
///
/// One handler for the relay's, a mirror's and PDS mode's `subscribeRepos`:
/// each router's state gives its [`Firehose`] through [`FromRef`], so the
/// route is the same code whatever else the state holds.
///
/// The address is `ConnectInfo<SocketAddr>` (our HTTP server,
/// [`crate::net::http_server`], adds it to every request), read from the
/// request's extensions rather than as an extractor: served without it (a
/// test harness, another embedding) the session is listed with no address
/// instead of the firehose answering 500.
pub async fn subscribe_repos(
    State(firehose): State<Firehose>,
    Query(params): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    serve_firehose(firehose, params, req)
}

/// What a `subscribeRepos` endpoint streams from and is bounded by: the
/// relay's and PDS mode's firehoses are the same code over their own ring
/// and log.
#[derive(Clone)]
pub struct Firehose {
    pub ring: crate::fanout::Ring,
    pub backfill: std::sync::Arc<dyn crate::fanout::Backfill>,
    pub session: crate::fanout::SessionConfig,
    pub subscribers: crate::fanout::Subscribers,
    /// Flips to true when the server stops: sessions end.
    pub shutdown: crate::lifecycle::StopSignal,
    /// Held by every session; the server's stop waits until all are gone.
    pub tasks: crate::lifecycle::TaskGuard,
}

impl FromRef<AppState> for Firehose {
    fn from_ref(app: &AppState) -> Firehose {
        app.firehose.clone()
    }
}

/// The event log as a firehose's catch-up source, for the relay and PDS
/// mode alike. It carries a "tasks" guard: sessions share it, and a dropped
/// session's log read may still be running on the blocking pool holding a
/// clone, so the server's stop waits for it too.
pub struct LogBackfill {
    log: crate::log::EventLog,
    _tasks: crate::lifecycle::TaskGuard,
}

impl LogBackfill {
    /// Reads `log`, holding `tasks` (the server's stop guard) while alive.
    pub fn new(log: crate::log::EventLog, tasks: crate::lifecycle::TaskGuard) -> LogBackfill {
        LogBackfill { log, _tasks: tasks }
    }
}

impl crate::fanout::Backfill for LogBackfill {
    fn read_from(
        &self,
        from_seq: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, bytes::Bytes)>, crate::fanout::BackfillError> {
        self.log
            .read_from(from_seq, max_events, max_bytes)
            .map_err(crate::fanout::BackfillError::new)
    }

    fn oldest_seq(&self) -> Option<u64> {
        self.log.oldest_seq()
    }
}

/// Answers a `subscribeRepos` upgrade request from `fh`.
pub fn serve_firehose(fh: Firehose, params: HashMap<String, String>, mut req: Request) -> Response {
    let headers = req.headers();
    if !is_websocket_upgrade(headers) {
        return XrpcError::named(
            StatusCode::UPGRADE_REQUIRED,
            "InvalidRequest",
            "subscribeRepos is a websocket endpoint: send Upgrade: websocket",
        )
        .into_response();
    }
    let Some(key) = headers
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return XrpcError::invalid("missing Sec-WebSocket-Key").into_response();
    };
    if headers.get("sec-websocket-version").map(|v| v.as_bytes()) != Some(b"13") {
        return XrpcError::invalid("unsupported Sec-WebSocket-Version (need 13)").into_response();
    }
    let cursor = match params.get("cursor") {
        None => None,
        Some(c) => match c.parse::<u64>() {
            Ok(c) => Some(c),
            Err(_) => {
                return XrpcError::invalid("cursor must be a non-negative integer").into_response()
            }
        },
    };
    // The cap comes before the upgrade is answered, so a refusal is a
    // plain HTTP error any client shows, with a hint when to come back.
    let admitted = match fh.subscribers.admit() {
        Ok(admitted) => admitted,
        Err(full) => {
            crate::fanout::metrics::subscriber_refused();
            let mut res = XrpcError::named(
                StatusCode::SERVICE_UNAVAILABLE,
                "TooManySubscribers",
                full.to_string(),
            )
            .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            return res;
        }
    };
    let peer = Peer {
        registry: fh.subscribers.clone(),
        remote: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr),
        user_agent: user_agent(headers),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let Firehose {
        ring,
        backfill,
        session: cfg,
        mut shutdown,
        tasks: guard,
        ..
    } = fh;
    // `guard` is held until the session ends: the server's stop waits for
    // every guard.
    tokio::spawn(async move {
        let _guard = guard;
        let _admitted = admitted;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        // Our server's sockets: the session gets the TCP socket itself (to
        // set its send limits and close it without a reset), and the
        // connection's slot stays taken until the session ends.
        let end = match into_tcp(upgraded) {
            Ok(UpgradedTcp {
                stream,
                read_ahead,
                slot: _slot,
            }) => {
                let stream = ReadAhead::new(read_ahead, stream);
                let session = serve_subscriber(stream, ring, backfill, cursor, cfg, Some(peer));
                until_stopped(session, &mut shutdown).await
            }
            Err(upgraded) => {
                let stream = TokioIo::new(upgraded);
                let session = serve_subscriber(stream, ring, backfill, cursor, cfg, Some(peer));
                until_stopped(session, &mut shutdown).await
            }
        };
        tracing::debug!(?end, "subscriber session ended");
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key(&key)) {
        h.insert("sec-websocket-accept", v);
    }
    res
}

/// Runs `session` until it ends or the server stops (`None`: dropping the
/// session closes the socket).
async fn until_stopped(
    session: impl std::future::Future<Output = SessionEnd>,
    shutdown: &mut crate::lifecycle::StopSignal,
) -> Option<SessionEnd> {
    tokio::select! {
        end = session => Some(end),
        _ = shutdown.stopping() => None,
    }
}

/// The `User-Agent`, cut to [`MAX_USER_AGENT_BYTES`] before it is copied
/// (non-UTF-8 bytes replaced; the registry cuts again at a character
/// boundary).
fn user_agent(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::USER_AGENT)?.as_bytes();
    let raw = &raw[..raw.len().min(MAX_USER_AGENT_BYTES)];
    Some(String::from_utf8_lossy(raw).into_owned())
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_is_cut_and_lossy() {
        let mut headers = HeaderMap::new();
        assert_eq!(user_agent(&headers), None);
        headers.insert(header::USER_AGENT, HeaderValue::from_static("goat/1.0"));
        assert_eq!(user_agent(&headers).as_deref(), Some("goat/1.0"));
        let long = "a".repeat(1000);
        headers.insert(header::USER_AGENT, HeaderValue::from_str(&long).unwrap());
        assert_eq!(user_agent(&headers).unwrap().len(), MAX_USER_AGENT_BYTES);
        let odd = HeaderValue::from_bytes(b"bot \xff").unwrap();
        headers.insert(header::USER_AGENT, odd);
        assert_eq!(user_agent(&headers).as_deref(), Some("bot \u{fffd}"));
    }
}
