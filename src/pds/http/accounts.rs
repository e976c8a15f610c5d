//! `com.atproto.server.*` for PDS mode (digest §8.1): the server's
//! description, accounts and sessions, plus the two things that belong to the
//! server as a whole rather than to one account: the admin's
//! `com.atproto.admin.deleteAccount` and the service's own `did:web`
//! document (`/.well-known/did.json`).
//!
//! The handlers only translate: JSON in, a call on [`Pds`](crate::pds::service::Pds),
//! JSON out. Three choices live here rather than in the core:
//! - token problems on `refreshSession` / `deleteSession` answer 401 (as the
//!   reference PDS does), so a client knows to log in again rather than to
//!   fix its request;
//! - a taken-down account cannot lift or overwrite its takedown through
//!   `activateAccount` / `deactivateAccount` (its access tokens outlive the
//!   takedown by up to two hours);
//! - bodies tolerate unknown fields, because clients send the lexicon's
//!   optional inputs (`inviteCode`, `verificationCode`, ...) that a minimal
//!   PDS does not use.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{AccessDid, RefreshToken};
use super::{xrpc, PdsState};
use crate::http::basic_auth::{admin_disabled, AdminAuthError, ADMIN_USER};
use crate::http::{PeerAddr, XrpcError};
use crate::pds::config::PDS_ADMIN_PASSWORD_VAR;
use crate::pds::service::{Pds, PdsError, Session};
use crate::pds::store::AccountRecord;
use crate::wire::frame::AccountStatus;
use crate::wire::syntax::{parse_datetime, validate_did};

/// This namespace's routes.
pub fn routes() -> Router<PdsState> {
    Router::new()
        .route(
            "/xrpc/com.atproto.server.describeServer",
            get(describe_server),
        )
        .route(
            "/xrpc/com.atproto.server.createAccount",
            post(create_account),
        )
        .route(
            "/xrpc/com.atproto.server.createSession",
            post(create_session),
        )
        .route(
            "/xrpc/com.atproto.server.refreshSession",
            post(refresh_session),
        )
        .route(
            "/xrpc/com.atproto.server.deleteSession",
            post(delete_session),
        )
        .route("/xrpc/com.atproto.server.getSession", get(get_session))
        .route(
            "/xrpc/com.atproto.server.activateAccount",
            post(activate_account),
        )
        .route(
            "/xrpc/com.atproto.server.deactivateAccount",
            post(deactivate_account),
        )
        .route(
            "/xrpc/com.atproto.admin.deleteAccount",
            post(admin_delete_account),
        )
        .route("/.well-known/did.json", get(did_document))
}

/// A JSON body, or 400 `InvalidRequest` saying what is wrong with it (bad
/// syntax, a missing or mistyped field, a missing `Content-Type`).
pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, XrpcError> {
    b.map(|Json(t)| t)
        .map_err(|e| XrpcError::invalid(format!("bad JSON body: {}", e.body_text())))
}

/// Sends a handler's outcome: a JSON object, or an empty 200 for procedures
/// without output. Every 401 carries `WWW-Authenticate` (digest §9), so
/// clients and proxies see which scheme to retry with.
pub(super) fn reply(result: Result<Option<Value>, XrpcError>) -> Response {
    match result {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => {
            let unauthorized = e.status == StatusCode::UNAUTHORIZED;
            let mut res = e.into_response();
            if unauthorized {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            res
        }
    }
}

/// Refuses calls from a taken-down account: only an admin lifts a takedown.
pub(super) fn not_taken_down(pds: &Pds, did: &str) -> Result<AccountRecord, XrpcError> {
    let account = pds.account(did).map_err(xrpc)?;
    if account.is_taken_down() {
        return Err(xrpc(PdsError::taken_down()));
    }
    Ok(account)
}

/// A refresh-token failure: 401 for a bad, expired or revoked token (log in
/// again), the usual mapping otherwise.
fn session_error(e: PdsError) -> XrpcError {
    match e.name() {
        name @ ("InvalidToken" | "ExpiredToken") => {
            XrpcError::named(StatusCode::UNAUTHORIZED, name, e.to_string())
        }
        _ => xrpc(e),
    }
}

/// `{accessJwt, refreshJwt, handle, did}`, the part every login returns.
fn session_json(s: &Session) -> Value {
    json!({
        "accessJwt": s.access_jwt,
        "refreshJwt": s.refresh_jwt,
        "handle": s.handle,
        "did": s.did,
    })
}

/// Adds what `createSession`, `refreshSession` and `getSession` say about
/// the account: `email?`, `active`, `status?`.
fn with_account(mut v: Value, account: &AccountRecord) -> Value {
    if let Some(email) = &account.email {
        v["email"] = json!(email);
    }
    v["active"] = json!(account.is_active());
    if let Some(status) = &account.status {
        v["status"] = json!(status);
    }
    v
}

async fn describe_server(State(st): State<PdsState>) -> Response {
    reply(Ok(Some(json!({
        "did": st.pds.service_did(),
        "availableUserDomains": st.pds.config().user_domains(),
        "inviteCodeRequired": false,
        "links": {},
    }))))
}

/// `createAccount` input. `did` and `plcOp` (importing an existing
/// identity) are read only to refuse them clearly.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateAccountInput {
    handle: String,
    email: Option<String>,
    password: Option<String>,
    did: Option<String>,
    plc_op: Option<Value>,
}

async fn create_account(
    State(st): State<PdsState>,
    input: Result<Json<CreateAccountInput>, JsonRejection>,
) -> Response {
    reply(
        async {
            let input = body(input)?;
            if input.did.is_some() || input.plc_op.is_some() {
                return Err(XrpcError::invalid(
                    "importing an existing DID (did, plcOp) is not supported: omit them to get a new did:plc",
                ));
            }
            let password = input
                .password
                .ok_or_else(|| XrpcError::invalid("password is required"))?;
            let session = st
                .pds
                .create_account(&input.handle, input.email.as_deref(), &password)
                .await
                .map_err(xrpc)?;
            tracing::info!(did = %session.did, handle = %session.handle, "account created");
            Ok(Some(session_json(&session)))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct CreateSessionInput {
    identifier: String,
    password: String,
}

/// Logs in. Failed logins are limited per client address and per account
/// ([`crate::http::auth_limit`]): past either limit the answer is 429
/// `RateLimitExceeded` with `Retry-After`, before any password is checked,
/// so a guesser cannot queue password checks ahead of everyone else's
/// logins. A login counts as failed from the moment it starts (thirty
/// concurrent guesses are thirty attempts, not zero until the first check
/// ends) and is given back when the password was right.
async fn create_session(
    State(st): State<PdsState>,
    PeerAddr(peer): PeerAddr,
    input: Result<Json<CreateSessionInput>, JsonRejection>,
) -> Response {
    let input = match body(input) {
        Ok(input) => input,
        Err(e) => return reply(Err(e)),
    };
    let key = match st.pds.login_key(&input.identifier) {
        Ok(key) => key,
        Err(e) => return reply(Err(xrpc(e))),
    };
    let attempt = match st.logins.begin(peer.map(|p| p.ip()), &key) {
        Ok(attempt) => attempt,
        Err(refused) => {
            if refused.first() {
                tracing::warn!(peer = ?peer.map(|p| p.ip()), account = %key, ?refused, "logins refused: too many failures");
            }
            return refused.response();
        }
    };
    match st
        .pds
        .create_session(&input.identifier, &input.password)
        .await
    {
        Ok((session, account)) => {
            attempt.succeeded();
            reply(Ok(Some(with_account(session_json(&session), &account))))
        }
        // A wrong identifier or password: the attempt stays counted.
        Err(e @ PdsError::Auth(_)) => reply(Err(xrpc(e))),
        // The password was right (a taken-down account), or the check
        // failed on this side: not a guess.
        Err(e) => {
            attempt.succeeded();
            reply(Err(xrpc(e)))
        }
    }
}

async fn refresh_session(
    State(st): State<PdsState>,
    RefreshToken(token): RefreshToken,
) -> Response {
    reply(
        st.pds
            .refresh_session(&token)
            .map(|(session, account)| Some(with_account(session_json(&session), &account)))
            .map_err(session_error),
    )
}

async fn delete_session(State(st): State<PdsState>, RefreshToken(token): RefreshToken) -> Response {
    reply(
        st.pds
            .delete_session(&token)
            .map(|()| None)
            .map_err(session_error),
    )
}

async fn get_session(State(st): State<PdsState>, AccessDid(did): AccessDid) -> Response {
    reply(st.pds.account(&did).map_err(xrpc).map(|account| {
        let v = json!({ "handle": account.handle, "did": account.did });
        Some(with_account(v, &account))
    }))
}

async fn activate_account(State(st): State<PdsState>, AccessDid(did): AccessDid) -> Response {
    reply(
        async {
            not_taken_down(&st.pds, &did)?;
            st.pds.set_status(&did, None).await.map_err(xrpc)?;
            tracing::info!(%did, "account activated");
            Ok(None)
        }
        .await,
    )
}

/// `deactivateAccount` input. `deleteAfter` is checked but not acted on:
/// this PDS keeps a deactivated account until an admin deletes it.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeactivateInput {
    delete_after: Option<String>,
}

async fn deactivate_account(
    State(st): State<PdsState>,
    AccessDid(did): AccessDid,
    raw: axum::body::Bytes,
) -> Response {
    reply(
        async {
            // The input is optional: clients send `{}`, nothing, or
            // `{deleteAfter}`.
            let input: DeactivateInput = if raw.iter().all(u8::is_ascii_whitespace) {
                DeactivateInput::default()
            } else {
                serde_json::from_slice(&raw)
                    .map_err(|e| XrpcError::invalid(format!("bad JSON body: {e}")))?
            };
            if let Some(when) = &input.delete_after {
                parse_datetime(when)
                    .map_err(|e| XrpcError::invalid(format!("deleteAfter: {e}")))?;
            }
            not_taken_down(&st.pds, &did)?;
            st.pds
                .set_status(&did, Some(AccountStatus::Deactivated))
                .await
                .map_err(xrpc)?;
            tracing::info!(%did, "account deactivated");
            Ok(None)
        }
        .await,
    )
}

#[derive(Deserialize)]
struct AdminDeleteInput {
    did: String,
}

/// Deletes an account for the operator. Credentials are checked before the
/// body is looked at, so an unauthenticated caller learns nothing from it.
async fn admin_delete_account(
    State(st): State<PdsState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    input: Result<Json<AdminDeleteInput>, JsonRejection>,
) -> Response {
    if let Err(refused) = check_admin(&st, peer, &headers) {
        return refused.into_response();
    }
    reply(
        async {
            let input = body(input)?;
            validate_did(&input.did).map_err(|e| XrpcError::invalid(format!("did: {e}")))?;
            st.pds.delete_account(&input.did).map_err(xrpc)?;
            tracing::info!(target: "atrelay::admin", did = %input.did, "account deleted by admin");
            Ok(None)
        }
        .await,
    )
}

/// Why an admin call was refused.
enum AdminRefused {
    /// No admin password configured: 404 `AdminDisabled`.
    Disabled,
    /// Missing or wrong credentials (401), or too many wrong ones from the
    /// client's address (429).
    Auth(AdminAuthError),
}

impl IntoResponse for AdminRefused {
    fn into_response(self) -> Response {
        match self {
            AdminRefused::Disabled => admin_disabled(format!(
                "admin calls are disabled: start the PDS with {PDS_ADMIN_PASSWORD_VAR} set"
            ))
            .into_response(),
            AdminRefused::Auth(e) => e.response("atrelay pds admin"),
        }
    }
}

/// HTTP Basic `admin:<ATRELAY_PDS_ADMIN_PASSWORD>`. Without a configured
/// password the admin calls answer 404 `AdminDisabled`: an admin API that
/// cannot be secured is not served (as the relay's `/admin`). Wrong
/// credentials are limited per client address as the relay's are
/// ([`check_admin`](crate::http::basic_auth::check_admin)).
fn check_admin(
    st: &PdsState,
    peer: Option<std::net::SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), AdminRefused> {
    let Some(password) = st.pds.config().admin_password.as_ref() else {
        return Err(AdminRefused::Disabled);
    };
    let client = peer.map(|p| p.ip());
    crate::http::basic_auth::check_admin(headers, ADMIN_USER, &password.0, client, &st.admin_failures)
        .map_err(|e| {
            match e {
                AdminAuthError::TooMany(r) if r.first => tracing::warn!(target: "atrelay::admin", ?client, "PDS admin requests refused: too many wrong credentials from this address"),
                AdminAuthError::Wrong => tracing::warn!(target: "atrelay::admin", ?client, "PDS admin request refused: wrong credentials"),
                _ => {}
            }
            AdminRefused::Auth(e)
        })
}

/// The service's `did:web` document: what a client resolving the PDS's own
/// DID (the `aud` of its tokens, `describeServer`'s `did`) finds.
async fn did_document(State(st): State<PdsState>) -> Response {
    Json(did_web_document(st.pds.service_did(), st.pds.endpoint())).into_response()
}

fn did_web_document(did: &str, endpoint: &str) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "service": [{
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": endpoint,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_document_names_the_endpoint() {
        let doc = did_web_document("did:web:pds.example.com", "https://pds.example.com");
        assert_eq!(doc["id"], "did:web:pds.example.com");
        assert_eq!(doc["service"][0]["id"], "#atproto_pds");
        assert_eq!(
            doc["service"][0]["serviceEndpoint"],
            "https://pds.example.com"
        );
    }
}
