//! Admin operations on hosts: list with budget use, add, block/unblock,
//! per-host limits, cursor reset.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{body, crawl_now, ok, refuse_banned, HostBody, Peer};
use crate::control::LimitOverride;
use crate::http::crawl::normalize_hostname;
use crate::http::{AppState, XrpcError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    hostname: String,
    accounts: Option<u64>,
    per_second: Option<u64>,
    per_hour: Option<u64>,
    per_day: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorBody {
    hostname: String,
    #[serde(default)]
    cursor: u64,
}

/// Every host with status, counters, limits and budget use.
pub async fn list(State(app): State<AppState>) -> Response {
    let running: std::collections::HashSet<String> = app.crawlers.running().into_iter().collect();
    let mut hosts = app.hosts.all();
    hosts.sort_by_key(|h| (h.snapshot().first_seen_micros, h.hostname.to_string()));
    let list: Vec<_> = hosts
        .iter()
        .map(|h| {
            let s = h.snapshot();
            json!({
                "hostname": h.hostname.as_ref(),
                "status": s.status,
                "crawling": running.contains(h.hostname.as_ref()),
                "cursor": s.cursor,
                "lastSeqSeen": s.last_seq_seen,
                "accountCount": s.account_count,
                "firstSeenMicros": s.first_seen_micros,
                "dropped": h.dropped.load(std::sync::atomic::Ordering::Relaxed),
                "chainBreaks": h.chain_breaks.load(std::sync::atomic::Ordering::Relaxed),
                "limitOverride": app.hosts.policy().limit_override(&h.hostname),
                "budget": h.budget.usage(),
            })
        })
        .collect();
    Json(json!({ "paused": app.crawlers.paused(), "hosts": list })).into_response()
}

/// Crawls a host now, bypassing requestCrawl's admission checks (allowlist,
/// probe, daily cap). Domain bans and blocks still hold (lift them first),
/// and so does the SSRF guard on every dial unless private hosts are
/// allowed: an operator's typo must not point the relay at its own network.
pub async fn add(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<HostBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let hostname = normalize_hostname(&body(b)?.hostname)?;
    refuse_banned(&app, &hostname)?;
    let started = crawl_now(&app, &hostname)?;
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, started, "admin: host added");
    Ok(ok(json!({ "hostname": hostname, "started": started })))
}

/// Stops crawling a host and refuses it from now on (status `banned`).
pub async fn block(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<HostBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let hostname = normalize_hostname(&body(b)?.hostname)?;
    let (host, _) = app
        .hosts
        .get_or_create(&hostname, app.hosts.clock().now_micros());
    host.ban();
    app.hosts.persist(&host).map_err(XrpcError::internal)?;
    let stopped = app.crawlers.stop(&hostname).await;
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, stopped, "admin: host blocked");
    Ok(ok(json!({ "hostname": hostname, "stopped": stopped })))
}

/// Lifts a block and crawls the host again from its cursor.
pub async fn unblock(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<HostBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let hostname = normalize_hostname(&body(b)?.hostname)?;
    let host = known(&app, &hostname)?;
    host.unban();
    app.hosts.persist(&host).map_err(XrpcError::internal)?;
    let started = app.crawlers.ensure(&hostname);
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, started, "admin: host unblocked");
    Ok(ok(json!({ "hostname": hostname, "started": started })))
}

/// Replaces a host's limit override (absent fields: the defaults); takes
/// effect at once, and a throttled host whose budget now has room resumes.
pub async fn set_limits(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<LimitsBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let req = body(b)?;
    let hostname = normalize_hostname(&req.hostname)?;
    known(&app, &hostname)?;
    app.hosts
        .policy()
        .set_limit_override(
            &hostname,
            LimitOverride {
                accounts: req.accounts,
                per_second: req.per_second,
                per_hour: req.per_hour,
                per_day: req.per_day,
            },
        )
        .map_err(XrpcError::internal)?;
    let limits = app.hosts.refresh_limits(&hostname);
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, ?limits, "admin: host limits changed");
    Ok(ok(json!({ "hostname": hostname, "limits": limits })))
}

/// Restarts a host's upstream cursor (default 0: from the oldest event the
/// host retains).
pub async fn reset_cursor(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<CursorBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let req = body(b)?;
    let hostname = normalize_hostname(&req.hostname)?;
    let host = known(&app, &hostname)?;
    let was_running = app.crawlers.stop(&hostname).await;
    host.reset_cursor(req.cursor);
    app.hosts.persist(&host).map_err(XrpcError::internal)?;
    let started = was_running && app.crawlers.ensure(&hostname);
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, cursor = req.cursor, "admin: host cursor reset");
    Ok(ok(
        json!({ "hostname": hostname, "cursor": req.cursor, "started": started }),
    ))
}

fn known(
    app: &AppState,
    hostname: &str,
) -> Result<std::sync::Arc<crate::relay::hosts::HostEntry>, XrpcError> {
    app.hosts.get(hostname).ok_or_else(|| {
        XrpcError::named(
            axum::http::StatusCode::NOT_FOUND,
            "HostNotFound",
            format!("{hostname} is not known here"),
        )
    })
}
