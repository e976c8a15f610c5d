//! `com.atproto.sync.*` for PDS mode (digest §7): what relays and other
//! consumers read to follow this PDS's repos: the firehose, heads and
//! statuses, whole repos, record proofs, blocks and blobs.
//!
//! All unauthenticated. Repos are named by DID only (the lexicons take no
//! handles). An inactive account's repo is not served (`RepoDeactivated`,
//! `RepoTakendown`, `RepoSuspended`); `getRepoStatus` and `listRepos` still
//! report it, with its status, so a consumer learns why.
//!
//! `getRepo?since=<rev>` answers with the whole current repo, as without
//! `since`: the block store does not record which commit wrote each block,
//! so the exact diff is not at hand. The whole repo is a superset of the
//! diff, which is what a consumer applying it needs (it walks the new tree
//! and finds every block it lacks); it only costs bytes.
//!
//! `sync.getRecord` answers with a proof CAR whether the record exists or
//! not (the lexicon's "existence or non-existence"); a consumer tells the
//! two apart by walking the proof.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::access::{find_account, repo_not_found, served_account};
use super::blobs;
use super::car_export::{blocks_car, car_response, record_proof_car, repo_car, ExportError};
use super::params::{parse_cid, Params};
use super::repo_read::{collection_param, rkey_param};
use super::{xrpc, PdsState};
use crate::http::{subscribe_repos, XrpcError};
use crate::pds::service::Pds;
use crate::pds::store::RepoHeadRecord;
use crate::wire::syntax::validate_tid;

/// Most CIDs one `getBlocks` call may ask for: bounds the response a single
/// request can make the server assemble in memory.
pub const MAX_GET_BLOCKS: usize = 1000;

/// This namespace's routes.
pub fn routes() -> Router<PdsState> {
    Router::new()
        .route(
            "/xrpc/com.atproto.sync.subscribeRepos",
            get(subscribe_repos),
        )
        .route("/xrpc/com.atproto.sync.getRepo", get(get_repo))
        .route(
            "/xrpc/com.atproto.sync.getLatestCommit",
            get(get_latest_commit),
        )
        .route("/xrpc/com.atproto.sync.getRepoStatus", get(get_repo_status))
        .route("/xrpc/com.atproto.sync.listRepos", get(list_repos))
        .route("/xrpc/com.atproto.sync.getRecord", get(get_record))
        .route("/xrpc/com.atproto.sync.getBlocks", get(get_blocks))
        .route("/xrpc/com.atproto.sync.getBlob", get(blobs::get_blob))
        .route("/xrpc/com.atproto.sync.listBlobs", get(blobs::list_blobs))
}

/// The head of a served repo; an account without a commit yet (only while
/// it is being created) has no repo to show.
fn served_head(pds: &Pds, did: &str) -> Result<RepoHeadRecord, XrpcError> {
    served_account(pds, did)?;
    pds.store()
        .head(did)
        .map_err(|e| xrpc(e.into()))?
        .ok_or_else(|| repo_not_found(did))
}

fn export_error(e: ExportError) -> XrpcError {
    match e {
        ExportError::MissingBlock(cid) => XrpcError::named(
            axum::http::StatusCode::BAD_REQUEST,
            "BlockNotFound",
            format!("no block {cid} in this repo"),
        ),
        e => XrpcError::internal(e),
    }
}

/// `getRepo`: the repo as a CAR, streamed (see the module docs on `since`).
async fn get_repo(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let did = p.did()?;
    if let Some(since) = p.get("since") {
        validate_tid(since).map_err(|e| XrpcError::invalid(format!("since: {e}")))?;
    }
    let head = served_head(&st.pds, did)?;
    Ok(car_response(repo_car(
        st.pds.store().clone(),
        did.to_owned(),
        head,
        st.firehose.tasks.clone(),
    )))
}

/// `getLatestCommit`: `{cid, rev}`.
async fn get_latest_commit(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let head = served_head(&st.pds, p.did()?)?;
    Ok(Json(json!({ "cid": head.commit.to_string(), "rev": head.rev })).into_response())
}

/// `getRepoStatus`: `{did, active, status?, rev?}`; `rev` only when active.
async fn get_repo_status(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let did = p.did()?;
    let account = find_account(&st.pds, did)?.ok_or_else(|| repo_not_found(did))?;
    let mut out = json!({ "did": did, "active": account.is_active() });
    match &account.status {
        Some(status) => out["status"] = json!(status),
        None => {
            if let Some(head) = st.pds.store().head(did).map_err(|e| xrpc(e.into()))? {
                out["rev"] = json!(head.rev);
            }
        }
    }
    Ok(Json(out).into_response())
}

/// `listRepos`: accounts in DID order with their heads, `limit` 1–1000
/// (default 500); the cursor is the last DID of a full page.
async fn list_repos(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let limit = p.int_in("limit", 1, 1000, 500)?;
    let store = st.pds.store();
    let page = store
        .list_accounts(p.get("cursor"), limit)
        .map_err(|e| xrpc(e.into()))?;
    let mut repos = Vec::with_capacity(page.len());
    for account in &page {
        // `head` and `rev` are required: an account still being created
        // (no commit yet) is left out.
        let Some(head) = store.head(&account.did).map_err(|e| xrpc(e.into()))? else {
            continue;
        };
        let mut repo = json!({
            "did": account.did,
            "head": head.commit.to_string(),
            "rev": head.rev,
            "active": account.is_active(),
        });
        if let Some(status) = &account.status {
            repo["status"] = json!(status);
        }
        repos.push(repo);
    }
    let mut out = json!({ "repos": repos });
    if page.len() == limit {
        if let Some(last) = page.last() {
            out["cursor"] = json!(last.did);
        }
    }
    Ok(Json(out).into_response())
}

/// `getRecord`: the record's proof CAR at the current head.
async fn get_record(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let did = p.did()?.to_owned();
    let collection = collection_param(&p)?.to_owned();
    let rkey = rkey_param(&p)?.to_owned();
    let head = served_head(&st.pds, &did)?;
    let store = st.pds.store().clone();
    let (car, _) = tokio::task::spawn_blocking(move || {
        record_proof_car(&store, &did, &head, &collection, &rkey)
    })
    .await
    .map_err(XrpcError::internal)?
    .map_err(XrpcError::internal)?;
    Ok(car_response(car))
}

/// `getBlocks`: a CAR of the named blocks (`cids` repeated, 1 to
/// [`MAX_GET_BLOCKS`]); any one missing is `BlockNotFound`.
async fn get_blocks(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let did = p.did()?.to_owned();
    let cids = p
        .all("cids")
        .map(|c| parse_cid("cids", c))
        .collect::<Result<Vec<_>, _>>()?;
    if cids.is_empty() || cids.len() > MAX_GET_BLOCKS {
        return Err(XrpcError::invalid(format!(
            "cids: give 1 to {MAX_GET_BLOCKS} CIDs (repeat the parameter)"
        )));
    }
    served_account(&st.pds, &did)?;
    let store = st.pds.store().clone();
    let car = tokio::task::spawn_blocking(move || blocks_car(&store, &did, &cids))
        .await
        .map_err(XrpcError::internal)?
        .map_err(export_error)?;
    Ok(car_response(car))
}
