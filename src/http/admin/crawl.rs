//! Admin operations on the crawl policy: mode, global pause, allowlist,
//! pending requests, domain bans.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{body, crawl_now, ok, refuse_banned, HostBody, Peer};
use crate::control::{CrawlMode, PolicyError};
use crate::http::crawl::parse_hostname;
use crate::http::{AppState, XrpcError};
use crate::log::HostStatus;
use crate::net::covers;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    entry: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainBody {
    domain: String,
}

fn policy_error(e: PolicyError) -> XrpcError {
    match e {
        PolicyError::Invalid(e) => XrpcError::invalid(e.to_string()),
        e => XrpcError::internal(e),
    }
}

/// The whole policy at a glance.
pub async fn show(State(app): State<AppState>) -> Response {
    let p = app.hosts.policy();
    Json(json!({
        "mode": p.mode(),
        "paused": p.paused(),
        "allowlist": p.allowlist(),
        "bans": p.bans(),
        "pending": p.pending().len(),
        "limitOverrides": p.limit_overrides().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    }))
    .into_response()
}

/// `open` or `allowlist`. The mode governs admission: hosts already being
/// crawled stay (block them to stop them).
pub async fn set_mode(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<ModeBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let req = body(b)?;
    let mode = CrawlMode::parse(&req.mode)
        .ok_or_else(|| XrpcError::invalid("mode must be \"open\" or \"allowlist\""))?;
    app.hosts.policy().set_mode(mode).map_err(policy_error)?;
    tracing::info!(target: "atrelay::admin", peer = %c.0, ?mode, "admin: crawl mode set");
    Ok(ok(json!({ "mode": mode })))
}

/// Stops reading every host (their cursors hold) until resumed; survives a
/// restart.
pub async fn pause(State(app): State<AppState>, c: Peer) -> Result<Response, XrpcError> {
    set_paused(&app, &c, true)
}

/// Resumes crawling after a pause.
pub async fn resume(State(app): State<AppState>, c: Peer) -> Result<Response, XrpcError> {
    set_paused(&app, &c, false)
}

fn set_paused(app: &AppState, c: &Peer, paused: bool) -> Result<Response, XrpcError> {
    app.hosts
        .policy()
        .set_paused(paused)
        .map_err(policy_error)?;
    app.crawlers.set_paused(paused);
    tracing::info!(target: "atrelay::admin", peer = %c.0, paused, "admin: crawling {}", if paused { "paused" } else { "resumed" });
    Ok(ok(json!({ "paused": paused })))
}

/// Adds an allowlist entry (host or domain suffix).
pub async fn allow(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<EntryBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let entry = app
        .hosts
        .policy()
        .allow(&body(b)?.entry)
        .map_err(policy_error)?;
    tracing::info!(target: "atrelay::admin", peer = %c.0, %entry, "admin: allowlist entry added");
    Ok(ok(json!({ "entry": entry })))
}

/// Removes an allowlist entry (hosts already crawled stay).
pub async fn disallow(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<EntryBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let entry = body(b)?.entry;
    let removed = app.hosts.policy().disallow(&entry).map_err(policy_error)?;
    tracing::info!(target: "atrelay::admin", peer = %c.0, %entry, removed, "admin: allowlist entry removed");
    Ok(ok(json!({ "removed": removed })))
}

/// Crawl requests waiting for approval.
pub async fn pending(State(app): State<AppState>) -> Response {
    let list: Vec<_> = app
        .hosts
        .policy()
        .pending()
        .into_iter()
        .map(|(hostname, p)| {
            json!({
                "hostname": hostname,
                "firstMicros": p.first_micros,
                "lastMicros": p.last_micros,
                "count": p.count,
            })
        })
        .collect();
    Json(json!({ "pending": list })).into_response()
}

/// Allowlists a host (pending or not) and crawls it now.
pub async fn approve(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<HostBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let hostname = parse_hostname(&body(b)?.hostname)?;
    refuse_banned(&app, hostname.as_str())?;
    app.hosts
        .policy()
        .allow(hostname.as_str())
        .map_err(policy_error)?;
    let started = crawl_now(&app, &hostname)?;
    tracing::info!(target: "atrelay::admin", peer = %c.0, %hostname, started, "admin: crawl request approved");
    Ok(ok(json!({ "hostname": hostname, "started": started })))
}

/// Bans a domain suffix: its hosts' crawlers stop and they are marked
/// `banned`; requestCrawl answers `HostBanned`.
pub async fn ban(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<DomainBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let domain = app
        .hosts
        .policy()
        .ban(&body(b)?.domain)
        .map_err(policy_error)?;
    let mut stopped = Vec::new();
    for host in app.hosts.all() {
        if covers(&domain, &host.hostname) {
            host.ban();
            app.hosts.persist(&host).map_err(XrpcError::internal)?;
            app.crawlers.stop(&host.hostname).await;
            stopped.push(host.hostname.to_string());
        }
    }
    tracing::info!(target: "atrelay::admin", peer = %c.0, %domain, ?stopped, "admin: domain banned");
    Ok(ok(json!({ "domain": domain, "hosts": stopped })))
}

/// Lifts a domain ban; its hosts (unless another ban covers them) are
/// `active` and crawled again from their cursors.
pub async fn unban(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<DomainBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    let domain = body(b)?.domain;
    let removed = app.hosts.policy().unban(&domain).map_err(policy_error)?;
    let domain =
        crate::net::normalize_domain(&domain).map_err(|e| XrpcError::invalid(e.to_string()))?;
    let mut restarted = Vec::new();
    for host in app.hosts.all() {
        if covers(&domain, &host.hostname)
            && host.status() == HostStatus::Banned
            && app.hosts.policy().ban_of(&host.hostname).is_none()
        {
            host.unban();
            app.hosts.persist(&host).map_err(XrpcError::internal)?;
            if app.crawlers.ensure(&host.name) {
                restarted.push(host.hostname.to_string());
            }
        }
    }
    tracing::info!(target: "atrelay::admin", peer = %c.0, %domain, removed, ?restarted, "admin: domain ban lifted");
    Ok(ok(json!({ "removed": removed, "hosts": restarted })))
}
