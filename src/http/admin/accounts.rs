//! Admin operations on accounts: status, takedown and its reversal.
//!
//! A takedown is ordered with the account's own events (it goes through the
//! DID's verifier shard), persisted with the `#account` event announcing it
//! (`active: false, status: "takendown"`), and from then on the account's
//! events are dropped (`taken_down`) and `getRepoStatus` reports it. The
//! reversal emits `#account` with the upstream status again.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

use super::{body, ok, Peer};
use crate::http::{AppState, XrpcError};
use crate::wire::frame::AccountStatus;
use crate::wire::syntax::validate_did;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DidBody {
    did: String,
}

/// The stored state of one account, as the relay holds it.
pub async fn status(
    State(app): State<AppState>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Response, XrpcError> {
    let did = p
        .get("did")
        .ok_or_else(|| XrpcError::invalid("missing required parameter did"))?;
    validate_did(did).map_err(|e| XrpcError::invalid(format!("did: {e}")))?;
    let a = app
        .log
        .get_account(did)
        .map_err(XrpcError::internal)?
        .ok_or_else(|| {
            XrpcError::named(
                axum::http::StatusCode::NOT_FOUND,
                "RepoNotFound",
                format!("{did} is not known here"),
            )
        })?;
    Ok(Json(json!({
        "did": did,
        "host": a.host,
        "active": a.is_active(),
        "status": a.status(),
        "upstreamStatus": a.upstream_status,
        "localStatus": a.local_status,
        "rev": a.rev,
        "commit": a.commit.map(|c| c.to_string()),
    }))
    .into_response())
}

/// Takes an account down.
pub async fn takedown(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<DidBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    set(&app, &c, body(b)?.did, Some(AccountStatus::Takendown)).await
}

/// Reverses a takedown.
pub async fn reverse_takedown(
    State(app): State<AppState>,
    c: Peer,
    b: Result<Json<DidBody>, JsonRejection>,
) -> Result<Response, XrpcError> {
    set(&app, &c, body(b)?.did, None).await
}

async fn set(
    app: &AppState,
    c: &Peer,
    did: String,
    status: Option<AccountStatus>,
) -> Result<Response, XrpcError> {
    validate_did(&did).map_err(|e| XrpcError::invalid(format!("did: {e}")))?;
    app.pool
        .set_local_status(&did, status)
        .await
        .map_err(XrpcError::internal)?;
    tracing::info!(target: "atrelay::admin", peer = %c.0, %did, status = status.map_or("none", AccountStatus::as_str), "admin: account local status set");
    Ok(ok(
        json!({ "did": did, "localStatus": status.map(AccountStatus::as_str) }),
    ))
}
