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
use crate::http::crawl::parse_hostname;
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
    let hostname = parse_hostname(&body(b)?.hostname)?;
    refuse_banned(&app, hostname.as_str())?;
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
    let hostname = parse_hostname(&body(b)?.hostname)?;
    let (host, _) = app
        .hosts
        .get_or_create(&hostname, app.hosts.clock().now_micros());
    host.ban();
    app.hosts.persist(&host).map_err(XrpcError::internal)?;
    let stopped = app.crawlers.stop(hostname.as_str()).await;
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, stopped, "admin: host blocked");
    Ok(ok(json!({ "hostname": hostname, "stopped": stopped })))
}

/// Lifts a block and crawls the host again from its cursor.
pub async fn unblock(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<HostBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let hostname = parse_hostname(&body(b)?.hostname)?;
    let host = known(&app, hostname.as_str())?;
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
    let hostname = parse_hostname(&req.hostname)?;
    known(&app, hostname.as_str())?;
    let limits = LimitOverride {
        accounts: checked_limit("accounts", req.accounts)?,
        per_second: checked_limit("per_second", req.per_second)?,
        per_hour: checked_limit("per_hour", req.per_hour)?,
        per_day: checked_limit("per_day", req.per_day)?,
    };
    app.hosts
        .policy()
        .set_limit_override(hostname.as_str(), limits)
        .map_err(XrpcError::internal)?;
    let limits = app.hosts.refresh_limits(hostname.as_str());
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
    let hostname = parse_hostname(&req.hostname)?;
    if req.cursor > MAX_CURSOR {
        return Err(XrpcError::invalid(format!(
            "cursor {} is not a firehose seq (at most {MAX_CURSOR}, the lexicon's integer range)",
            req.cursor
        )));
    }
    let host = known(&app, hostname.as_str())?;
    let seen = host.snapshot().last_seq_seen;
    if req.cursor > seen {
        return Err(XrpcError::invalid(format!(
            "cursor {} is beyond the highest seq this relay has seen from {hostname} ({seen}); the host would answer FutureCursor and be marked offline",
            req.cursor
        )));
    }
    let was_running = app.crawlers.stop(hostname.as_str()).await;
    host.reset_cursor(req.cursor);
    app.hosts.persist(&host).map_err(XrpcError::internal)?;
    let started = was_running && app.crawlers.ensure(&hostname);
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, cursor = req.cursor, "admin: host cursor reset");
    Ok(ok(
        json!({ "hostname": hostname, "cursor": req.cursor, "started": started }),
    ))
}

/// Largest cursor accepted: seqs are the lexicon's 64-bit signed integers.
const MAX_CURSOR: u64 = i64::MAX as u64;

/// Largest limit accepted (0 is "no limit"): far beyond any real budget,
/// and small enough that sums of budgets over every host cannot overflow.
const MAX_LIMIT: u64 = 1 << 40;

/// A limit from the operator, refused past [`MAX_LIMIT`] with a message
/// saying how to ask for "no limit".
fn checked_limit(field: &str, value: Option<u64>) -> Result<Option<u64>, XrpcError> {
    match value {
        Some(v) if v > MAX_LIMIT => Err(XrpcError::invalid(format!(
            "{field} {v} is out of range (at most {MAX_LIMIT}; 0 means no limit)"
        ))),
        v => Ok(v),
    }
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
