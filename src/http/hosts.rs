//! `listHosts` and `getHostStatus`: the hosts this relay knows, per lexicon.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::XrpcError;
use super::AppState;
use crate::relay::hosts::HostEntry;

/// One `#host` object.
fn host_json(h: &HostEntry) -> Value {
    let s = h.snapshot();
    json!({
        "hostname": h.hostname.as_ref(),
        "seq": s.last_seq_seen,
        "accountCount": s.account_count,
        "status": s.status,
    })
}

/// `listHosts`: oldest first-seen first; `limit` 1–1000 (default 200); the
/// cursor is opaque (`<first-seen micros>:<hostname>`).
pub async fn list_hosts(
    State(app): State<AppState>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Response, XrpcError> {
    let limit = match p.get("limit") {
        None => 200,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| XrpcError::invalid("limit must be an integer from 1 to 1000"))?,
    };
    let after = match p.get("cursor") {
        None => None,
        Some(c) => {
            let (micros, host) = c
                .split_once(':')
                .and_then(|(m, h)| Some((m.parse::<u64>().ok()?, h.to_owned())))
                .ok_or_else(|| XrpcError::invalid("malformed cursor"))?;
            Some((micros, host))
        }
    };
    let mut hosts: Vec<(u64, String, std::sync::Arc<HostEntry>)> = app
        .hosts
        .all()
        .into_iter()
        .map(|h| (h.snapshot().first_seen_micros, h.hostname.to_string(), h))
        .collect();
    hosts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let page: Vec<_> = hosts
        .into_iter()
        .filter(|(m, name, _)| {
            after
                .as_ref()
                .map_or(true, |(am, ah)| (*m, name) > (*am, ah))
        })
        .take(limit)
        .collect();
    let mut out = json!({ "hosts": page.iter().map(|(_, _, h)| host_json(h)).collect::<Vec<_>>() });
    if page.len() == limit {
        if let Some((m, name, _)) = page.last() {
            out["cursor"] = json!(format!("{m}:{name}"));
        }
    }
    Ok(Json(out).into_response())
}

/// `getHostStatus`: `HostNotFound` for hosts this relay has never seen.
pub async fn get_host_status(
    State(app): State<AppState>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Response, XrpcError> {
    let hostname = p
        .get("hostname")
        .ok_or_else(|| XrpcError::invalid("missing required parameter hostname"))?
        .to_ascii_lowercase();
    let host = app.hosts.get(&hostname).ok_or_else(|| {
        XrpcError::named(
            StatusCode::BAD_REQUEST,
            "HostNotFound",
            format!("{hostname} is not known here"),
        )
    })?;
    Ok(Json(host_json(&host)).into_response())
}
