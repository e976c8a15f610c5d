//! The `com.atproto.repo.*` queries: `getRecord`, `listRecords`,
//! `describeRepo`.
//!
//! They read the record index (kept in step with the MST by every commit),
//! not the tree, and render record blocks as data-model JSON. Unknown repos
//! and inactive accounts answer as in [`access`](super::access).
//!
//! `listRecords` orders as the reference PDS does: newest first (rkeys
//! descending, which for TID keys is time order) by default, oldest first
//! with `reverse=true`. The cursor is the last rkey of a full page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::access::{find_account, require_served};
use super::params::{parse_cid, Params};
use super::{xrpc, PdsState};
use crate::http::XrpcError;
use crate::identity::account_document;
use crate::pds::service::Pds;
use crate::pds::store::AccountRecord;
use crate::wire::cbor::Value as Cbor;
use crate::wire::cid::Cid;
use crate::wire::json::value_to_json;
use crate::wire::syntax::{validate_nsid, validate_record_key};

/// The account a read names: it must exist (`not_found` otherwise) and be
/// active.
fn read_account(
    pds: &Pds,
    repo: &str,
    not_found: impl FnOnce() -> XrpcError,
) -> Result<AccountRecord, XrpcError> {
    let account = find_account(pds, repo)?.ok_or_else(not_found)?;
    require_served(&account)?;
    Ok(account)
}

/// A `collection` parameter, checked as an NSID.
pub fn collection_param(p: &Params) -> Result<&str, XrpcError> {
    let collection = p.required("collection")?;
    validate_nsid(collection).map_err(|e| XrpcError::invalid(format!("collection: {e}")))?;
    Ok(collection)
}

/// An `rkey` parameter, checked as a record key.
pub fn rkey_param(p: &Params) -> Result<&str, XrpcError> {
    let rkey = p.required("rkey")?;
    validate_record_key(rkey).map_err(|e| XrpcError::invalid(format!("rkey: {e}")))?;
    Ok(rkey)
}

/// A record block of `did`'s repo as data-model JSON. The block must be
/// there: the index only names records whose blocks a commit stored.
fn record_json(pds: &Pds, did: &str, cid: &Cid) -> Result<Value, XrpcError> {
    let bytes = pds
        .store()
        .get_block(did, cid)
        .map_err(|e| xrpc(e.into()))?
        .ok_or_else(|| XrpcError::internal(format!("record block {cid} of {did} is missing")))?;
    let value = Cbor::decode(&bytes)
        .map_err(|e| XrpcError::internal(format!("record block {cid} of {did}: {e}")))?;
    Ok(value_to_json(&value))
}

fn record_not_found(what: &str) -> XrpcError {
    XrpcError::named(
        StatusCode::BAD_REQUEST,
        "RecordNotFound",
        format!("could not locate record {what}"),
    )
}

/// `getRecord`: `{uri, cid, value}` of the current version; with `cid`,
/// only if the current version is that one.
pub async fn get_record(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let repo = p.required("repo")?;
    let collection = collection_param(&p)?;
    let rkey = rkey_param(&p)?;
    let want = p.get("cid").map(|c| parse_cid("cid", c)).transpose()?;
    let path = format!("{repo}/{collection}/{rkey}");
    let account = read_account(&st.pds, repo, || record_not_found(&path))?;
    let did = &account.did;
    let cid = st
        .pds
        .store()
        .record_cid(did, collection, rkey)
        .map_err(|e| xrpc(e.into()))?
        .filter(|cid| want.map_or(true, |w| w == *cid))
        .ok_or_else(|| record_not_found(&path))?;
    Ok(Json(json!({
        "uri": format!("at://{did}/{collection}/{rkey}"),
        "cid": cid.to_string(),
        "value": record_json(&st.pds, did, &cid)?,
    }))
    .into_response())
}

/// `listRecords`: one page of a collection, `limit` 1–100 (default 50).
pub async fn list_records(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let repo = p.required("repo")?;
    let collection = collection_param(&p)?;
    let limit = p.int_in("limit", 1, 100, 50)?;
    let reverse = p.flag("reverse")?;
    let account = read_account(&st.pds, repo, || {
        XrpcError::invalid(format!("could not find repo {repo}"))
    })?;
    let did = &account.did;
    // The store lists ascending unless told otherwise; the lexicon's
    // default is descending.
    let page = st
        .pds
        .store()
        .list_records(did, collection, limit, p.get("cursor"), !reverse)
        .map_err(|e| xrpc(e.into()))?;
    let records = page
        .iter()
        .map(|(rkey, cid)| {
            Ok(json!({
                "uri": format!("at://{did}/{collection}/{rkey}"),
                "cid": cid.to_string(),
                "value": record_json(&st.pds, did, cid)?,
            }))
        })
        .collect::<Result<Vec<_>, XrpcError>>()?;
    let mut out = json!({ "records": records });
    if page.len() == limit {
        if let Some((rkey, _)) = page.last() {
            out["cursor"] = json!(rkey);
        }
    }
    Ok(Json(out).into_response())
}

/// `describeRepo`: `{handle, did, didDoc, collections, handleIsCorrect}`.
///
/// The DID document is the one this PDS registered for the account (its
/// handle, signing key and this PDS as the service), built from the stored
/// account rather than fetched from the directory, so the answer never
/// waits on the network. `handleIsCorrect` is true: the handle is one this
/// PDS assigned under its own domains.
pub async fn describe_repo(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let repo = p.required("repo")?;
    let account = read_account(&st.pds, repo, || {
        XrpcError::invalid(format!("could not find repo {repo}"))
    })?;
    let collections = st
        .pds
        .store()
        .collections(&account.did)
        .map_err(|e| xrpc(e.into()))?;
    let key = account
        .signing_key()
        .map_err(|e| XrpcError::internal(format!("stored signing key: {e}")))?
        .public_key();
    let did = &account.did;
    let did_doc = account_document(did, &account.handle, &key, st.pds.endpoint());
    Ok(Json(json!({
        "handle": account.handle,
        "did": did,
        "didDoc": did_doc,
        "collections": collections,
        "handleIsCorrect": true,
    }))
    .into_response())
}
