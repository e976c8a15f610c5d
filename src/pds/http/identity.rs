//! `com.atproto.identity.*` for PDS mode (digest §8.3): changing an
//! account's handle and resolving handles to DIDs.
//!
//! `resolveHandle` answers only for handles hosted here, from the store; it
//! does not go out to DNS or `/.well-known/atproto-did` for other names.
//! That keeps a minimal PDS from being a resolver (and a request forwarder)
//! for arbitrary hosts on a caller's word; clients resolve foreign handles
//! themselves or through an AppView.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::accounts::{body, not_taken_down, reply};
use super::auth::AccessDid;
use super::{xrpc, PdsState};
use crate::http::XrpcError;
use crate::wire::syntax::{normalize_handle, validate_handle};

/// This namespace's routes.
pub fn routes() -> Router<PdsState> {
    Router::new()
        .route(
            "/xrpc/com.atproto.identity.updateHandle",
            post(update_handle),
        )
        .route(
            "/xrpc/com.atproto.identity.resolveHandle",
            get(resolve_handle),
        )
}

#[derive(Deserialize)]
struct HandleInput {
    handle: String,
}

/// Moves the account to a new handle under one of this PDS's user domains:
/// a PLC update, then `#identity` (the core does both, in that order).
async fn update_handle(
    State(st): State<PdsState>,
    AccessDid(did): AccessDid,
    input: Result<Json<HandleInput>, JsonRejection>,
) -> Response {
    reply(
        async {
            let input = body(input)?;
            not_taken_down(&st.pds, &did)?;
            st.pds
                .update_handle(&did, &input.handle)
                .await
                .map_err(xrpc)?;
            tracing::info!(%did, handle = %input.handle, "handle updated");
            Ok(None)
        }
        .await,
    )
}

/// `{did}` for a handle hosted here; 400 `HandleNotFound` otherwise.
async fn resolve_handle(
    State(st): State<PdsState>,
    params: Result<Query<HandleInput>, QueryRejection>,
) -> Response {
    reply((|| {
        let Query(params) = params.map_err(|e| XrpcError::invalid(e.body_text()))?;
        let handle = normalize_handle(params.handle.trim());
        validate_handle(&handle).map_err(|e| XrpcError::invalid(format!("handle: {e}")))?;
        let did = st
            .pds
            .store()
            .did_for_handle(&handle)
            .map_err(|e| xrpc(e.into()))?
            .ok_or_else(|| {
                XrpcError::named(
                    StatusCode::BAD_REQUEST,
                    "HandleNotFound",
                    format!("no account here has the handle {handle}"),
                )
            })?;
        Ok(Some(json!({ "did": did })))
    })())
}
