//! The relay's `com.atproto.sync.*` queries over its account state, and
//! `_health`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::XrpcError;
use super::AppState;
use crate::log::AccountState;
use crate::wire::syntax::validate_did;

type Params = Query<HashMap<String, String>>;

fn did_param(params: &HashMap<String, String>) -> Result<String, XrpcError> {
    let did = params
        .get("did")
        .ok_or_else(|| XrpcError::invalid("missing required parameter did"))?;
    validate_did(did).map_err(|e| XrpcError::invalid(e.to_string()))?;
    Ok(did.clone())
}

fn account(app: &AppState, did: &str) -> Result<AccountState, XrpcError> {
    app.log
        .get_account(did)
        .map_err(XrpcError::internal)?
        .ok_or_else(|| {
            XrpcError::named(
                StatusCode::BAD_REQUEST,
                "RepoNotFound",
                format!("no repo for {did}"),
            )
        })
}

/// The status downstream sees: a local takedown overrides the upstream's.
fn effective_status(a: &AccountState) -> Option<&str> {
    a.local_status.as_deref().or(a.upstream_status.as_deref())
}

/// Errors for repos that exist but are not served (getLatestCommit, getRepo).
fn require_active(did: &str, a: &AccountState) -> Result<(), XrpcError> {
    match effective_status(a) {
        None => Ok(()),
        Some(status) => Err(XrpcError::inactive_repo(did, status)),
    }
}

/// `getLatestCommit`: `{cid, rev}`.
pub async fn get_latest_commit(
    State(app): State<AppState>,
    Query(p): Params,
) -> Result<Response, XrpcError> {
    let did = did_param(&p)?;
    let a = account(&app, &did)?;
    require_active(&did, &a)?;
    match (&a.commit, &a.rev) {
        (Some(cid), Some(rev)) => {
            Ok(Json(json!({ "cid": cid.to_string(), "rev": rev })).into_response())
        }
        _ => Err(XrpcError::named(
            StatusCode::BAD_REQUEST,
            "RepoNotFound",
            format!("no commit seen for {did}"),
        )),
    }
}

/// `getRepoStatus`: `{did, active, status?, rev?}`.
pub async fn get_repo_status(
    State(app): State<AppState>,
    Query(p): Params,
) -> Result<Response, XrpcError> {
    let did = did_param(&p)?;
    let a = account(&app, &did)?;
    let mut out = json!({ "did": did, "active": effective_status(&a).is_none() });
    if let Some(status) = effective_status(&a) {
        out["status"] = json!(status);
    } else if let Some(rev) = &a.rev {
        out["rev"] = json!(rev);
    }
    Ok(Json(out).into_response())
}

/// `listRepos`: accounts in DID order, `limit` 1–1000 (default 500).
pub async fn list_repos(
    State(app): State<AppState>,
    Query(p): Params,
) -> Result<Response, XrpcError> {
    let limit = match p.get("limit") {
        None => 500,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| XrpcError::invalid("limit must be an integer from 1 to 1000"))?,
    };
    let page = app
        .log
        .list_accounts(p.get("cursor").map(String::as_str), limit)
        .map_err(XrpcError::internal)?;
    let repos: Vec<_> = page
        .iter()
        .filter_map(|(did, a)| {
            let (cid, rev) = (a.commit.as_ref()?, a.rev.as_ref()?);
            let mut r = json!({ "did": did, "head": cid.to_string(), "rev": rev, "active": effective_status(a).is_none() });
            if let Some(s) = effective_status(a) {
                r["status"] = json!(s);
            }
            Some(r)
        })
        .collect();
    let mut out = json!({ "repos": repos });
    if page.len() == limit {
        if let Some((last, _)) = page.last() {
            out["cursor"] = json!(last);
        }
    }
    Ok(Json(out).into_response())
}

/// `getRepo`: the relay keeps no repos; redirect to the account's PDS.
pub async fn get_repo(
    State(app): State<AppState>,
    Query(p): Params,
) -> Result<Response, XrpcError> {
    let did = did_param(&p)?;
    let a = account(&app, &did)?;
    require_active(&did, &a)?;
    let host = crate::net::HostName::parse(&a.host).map_err(XrpcError::internal)?;
    let secure = !(app.allow_private_hosts && host.is_local());
    let mut location = format!(
        "{}/xrpc/com.atproto.sync.getRepo?did={did}",
        host.origin(secure, false)
    );
    if let Some(since) = p.get("since") {
        crate::wire::syntax::validate_tid(since).map_err(|e| XrpcError::invalid(e.to_string()))?;
        location.push_str(&format!("&since={since}"));
    }
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// `/xrpc/_health`.
pub async fn health(State(app): State<AppState>) -> Response {
    Json(json!({ "version": env!("CARGO_PKG_VERSION"), "seq": app.log.last_seq() })).into_response()
}
