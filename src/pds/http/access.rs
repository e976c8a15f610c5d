//! Which hosted repo a request names, whether it is served, and whether the
//! caller may write to it.
//!
//! - `repo` parameters are at-identifiers (a DID or a handle); handles are
//!   looked up in this PDS's own handle index only (a repo hosted elsewhere
//!   is simply not found here).
//! - An account that exists but is not active (`deactivated`, `takendown`,
//!   `suspended`) is not served: reads answer the lexicon's
//!   `RepoDeactivated` / `RepoTakendown` / `RepoSuspended` (400), so a
//!   consumer can tell "gone for now" from "never here". Only
//!   `getRepoStatus` and `listRepos` report such accounts, with their
//!   status.
//! - Writes need an access token for the very repo written. A token for
//!   another account is 403 `Forbidden` rather than the reference PDS's 401
//!   `AuthenticationRequired`: the caller *is* authenticated, and a 401
//!   would send clients into a pointless token refresh.

use axum::http::StatusCode;

use super::xrpc;
use crate::http::XrpcError;
use crate::pds::service::Pds;
use crate::pds::store::AccountRecord;
use crate::wire::syntax::{normalize_handle, validate_at_identifier};

/// The account a DID or handle names, if hosted here. A malformed
/// identifier is `InvalidRequest`.
pub fn find_account(pds: &Pds, id: &str) -> Result<Option<AccountRecord>, XrpcError> {
    validate_at_identifier(id).map_err(|e| XrpcError::invalid(format!("repo: {e}")))?;
    let store = pds.store();
    let did = if id.starts_with("did:") {
        id.to_owned()
    } else {
        match store
            .did_for_handle(&normalize_handle(id))
            .map_err(|e| xrpc(e.into()))?
        {
            Some(did) => did,
            None => return Ok(None),
        }
    };
    store.account(&did).map_err(|e| xrpc(e.into()))
}

/// 400 `RepoNotFound` (the sync lexicons' name).
pub fn repo_not_found(id: &str) -> XrpcError {
    XrpcError::named(
        StatusCode::BAD_REQUEST,
        "RepoNotFound",
        format!("no repo for {id} on this PDS"),
    )
}

/// The account `id` names, which must exist (`RepoNotFound`) and be active
/// (see [`require_served`]).
pub fn served_account(pds: &Pds, id: &str) -> Result<AccountRecord, XrpcError> {
    let account = find_account(pds, id)?.ok_or_else(|| repo_not_found(id))?;
    require_served(&account)?;
    Ok(account)
}

/// Refuses an inactive account with the lexicon error for its status.
pub fn require_served(account: &AccountRecord) -> Result<(), XrpcError> {
    match account.status.as_deref() {
        None => Ok(()),
        Some(status) => Err(XrpcError::inactive_repo(&account.did, status)),
    }
}

/// The DID of the repo a write names, after checking the token's DID
/// (`auth`) owns it and the account is active. An unknown repo is
/// `InvalidRequest` (the repo lexicons declare no not-found error).
pub fn writable_repo(pds: &Pds, auth: &str, repo: &str) -> Result<String, XrpcError> {
    let account = find_account(pds, repo)?
        .ok_or_else(|| XrpcError::invalid(format!("could not find repo {repo}")))?;
    if account.did != auth {
        return Err(XrpcError::named(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("the access token is for {auth}, not for {repo}"),
        ));
    }
    require_served(&account)?;
    Ok(account.did)
}
