//! The operator's admin API under `/admin`, behind HTTP Basic auth
//! ([`auth`]). JSON in and out; errors are XRPC-style `{error, message}`.
//!
//! Every change is persisted before it is acknowledged (hosts in the `hosts`
//! column family, policy in `meta`, takedowns as `#account` events in the
//! log) and logged under the `atrelay::admin` target with the peer address.
//! README.md documents each route with a curl example.

mod accounts;
mod auth;
mod crawl;
mod hosts;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::{AppState, XrpcError};
use crate::log::HostStatus;

/// The admin routes, all behind [`auth::require_admin`].
pub fn routes(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/hosts", get(hosts::list))
        .route("/admin/hosts/add", post(hosts::add))
        .route("/admin/hosts/block", post(hosts::block))
        .route("/admin/hosts/unblock", post(hosts::unblock))
        .route("/admin/hosts/limits", post(hosts::set_limits))
        .route("/admin/hosts/reset-cursor", post(hosts::reset_cursor))
        .route("/admin/crawl", get(crawl::show))
        .route("/admin/crawl/mode", post(crawl::set_mode))
        .route("/admin/crawl/pause", post(crawl::pause))
        .route("/admin/crawl/resume", post(crawl::resume))
        .route("/admin/allowlist/add", post(crawl::allow))
        .route("/admin/allowlist/remove", post(crawl::disallow))
        .route("/admin/pending", get(crawl::pending))
        .route("/admin/pending/approve", post(crawl::approve))
        .route("/admin/bans/add", post(crawl::ban))
        .route("/admin/bans/remove", post(crawl::unban))
        .route("/admin/accounts/status", get(accounts::status))
        .route("/admin/accounts/takedown", post(accounts::takedown))
        .route(
            "/admin/accounts/reverse-takedown",
            post(accounts::reverse_takedown),
        )
        .route("/admin/subscribers", get(subscribers))
        .route_layer(axum::middleware::from_fn_with_state(
            app,
            auth::require_admin,
        ))
}

/// The routes, for a human with curl.
async fn index() -> Response {
    Json(json!({
        "get": ["/admin/hosts", "/admin/crawl", "/admin/pending", "/admin/accounts/status?did=DID", "/admin/subscribers"],
        "post": {
            "/admin/hosts/add": {"hostname": "HOST"},
            "/admin/hosts/block": {"hostname": "HOST"},
            "/admin/hosts/unblock": {"hostname": "HOST"},
            "/admin/hosts/limits": {"hostname": "HOST", "accounts": "N?", "per_second": "N?", "per_hour": "N?", "per_day": "N?"},
            "/admin/hosts/reset-cursor": {"hostname": "HOST", "cursor": "N? (default 0: the oldest event the host retains)"},
            "/admin/crawl/mode": {"mode": "open | allowlist"},
            "/admin/crawl/pause": {},
            "/admin/crawl/resume": {},
            "/admin/allowlist/add": {"entry": "HOST or DOMAIN"},
            "/admin/allowlist/remove": {"entry": "HOST or DOMAIN"},
            "/admin/pending/approve": {"hostname": "HOST"},
            "/admin/bans/add": {"domain": "DOMAIN"},
            "/admin/bans/remove": {"domain": "DOMAIN"},
            "/admin/accounts/takedown": {"did": "DID"},
            "/admin/accounts/reverse-takedown": {"did": "DID"}
        }
    }))
    .into_response()
}

/// Live subscribers with their lag behind the head.
async fn subscribers(State(app): State<AppState>) -> Response {
    let head = app.firehose.ring.head();
    let list = app.firehose.subscribers.list(head);
    Json(json!({ "head": head, "count": list.len(), "subscribers": list })).into_response()
}

/// `{"hostname": ...}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBody {
    hostname: String,
}

/// 409 `HostBanned` when a ban or block covers `hostname`: operations that
/// would crawl it ask the operator to lift that first.
fn refuse_banned(app: &AppState, hostname: &str) -> Result<(), XrpcError> {
    let why = if let Some(ban) = app.hosts.policy().ban_of(hostname) {
        format!("{hostname} is under the domain ban {ban}; remove the ban first")
    } else if app
        .hosts
        .get(hostname)
        .is_some_and(|h| h.status() == HostStatus::Banned)
    {
        format!("{hostname} is blocked; unblock it first")
    } else {
        return Ok(());
    };
    Err(XrpcError::named(
        axum::http::StatusCode::CONFLICT,
        "HostBanned",
        why,
    ))
}

/// Crawls `hostname` (if not already) and stores its entry; whether a
/// crawler was started.
fn crawl_now(app: &AppState, hostname: &crate::net::HostName) -> Result<bool, XrpcError> {
    let started = app.crawlers.ensure(hostname);
    if let Some(h) = app.hosts.get(hostname.as_str()) {
        app.hosts.persist(&h).map_err(XrpcError::internal)?;
    }
    Ok(started)
}

/// A JSON body, or `InvalidRequest` naming what was wrong with it.
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, XrpcError> {
    b.map(|Json(t)| t)
        .map_err(|e| XrpcError::invalid(format!("bad JSON body: {}", e.body_text())))
}

/// The peer's address, for the audit log (empty when the server runs
/// without connection info).
pub struct Peer(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Peer, Self::Rejection> {
        let super::PeerAddr(addr) = super::PeerAddr::from_request_parts(parts, state).await?;
        Ok(Peer(addr.map(|a| a.to_string()).unwrap_or_default()))
    }
}

/// `{"ok": true, ...extra}`.
fn ok(extra: serde_json::Value) -> Response {
    let mut out = json!({ "ok": true });
    if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    Json(out).into_response()
}
