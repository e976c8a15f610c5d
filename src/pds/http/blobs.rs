//! Blobs: `com.atproto.repo.uploadBlob`, `com.atproto.sync.getBlob` and
//! `com.atproto.sync.listBlobs`.
//!
//! - An upload is read with the size limit (`limits.blob_max_bytes`)
//!   enforced while reading, so an oversized body costs at most the limit in
//!   memory, not the server-wide body limit; a declared `Content-Length`
//!   over the limit is refused before anything is read. Over the limit:
//!   400 `BlobTooLarge`. `Content-Type` is required: it is what `getBlob`
//!   will serve the bytes as.
//! - The CID is CIDv1, raw codec, sha2-256 of the bytes, as records
//!   reference blobs.
//! - Uploaded blobs are served at once, referenced by a record or not (the
//!   store does not track references, so there is no "temporary until
//!   referenced" state and no garbage collection yet). Inactive accounts'
//!   blobs are not served.
//! - `listBlobs` lists every blob the account has stored, in CID order;
//!   `since` is accepted (syntax-checked) but not used to narrow the list:
//!   the store does not record which commit first referenced a blob, and a
//!   superset only costs a consumer a few redundant fetches, where an
//!   approximation by upload time could silently omit a blob.
//! - `getBlob` answers with the stored MIME type and, as the sync spec
//!   asks, `Content-Security-Policy: default-src 'none'; sandbox` and
//!   `X-Content-Type-Options: nosniff`, so a blob cannot run as a page on
//!   this origin.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde_json::json;

use super::access::{require_served, served_account};
use super::auth::AccessDid;
use super::params::{parse_cid, Params};
use super::{xrpc, PdsState};
use crate::http::XrpcError;
use crate::wire::cid::Cid;
use crate::wire::syntax::validate_tid;

/// Longest `Content-Type` kept (it is stored and served back).
const MAX_MIME_LEN: usize = 255;

fn too_large(limit: u64) -> XrpcError {
    XrpcError::named(
        StatusCode::BAD_REQUEST,
        "BlobTooLarge",
        format!("blobs here are at most {limit} bytes"),
    )
}

/// The declared MIME type: present, printable ASCII, bounded.
fn mime_type(headers: &HeaderMap) -> Result<String, XrpcError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if mime.is_empty() || mime.len() > MAX_MIME_LEN || !mime.contains('/') {
        return Err(XrpcError::invalid(
            "uploadBlob needs a Content-Type naming the blob's MIME type",
        ));
    }
    Ok(mime.to_owned())
}

/// `uploadBlob`: stores the body for the token's account;
/// `{blob: {$type: "blob", ref: {$link}, mimeType, size}}`.
pub async fn upload_blob(
    State(st): State<PdsState>,
    AccessDid(did): AccessDid,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, XrpcError> {
    let account = st.pds.account(&did).map_err(xrpc)?;
    require_served(&account)?;
    let mime = mime_type(&headers)?;
    let limit = st.pds.config().limits.blob_max_bytes;
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| XrpcError::invalid("malformed Content-Length"))?,
        ),
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| XrpcError::invalid(format!("reading the body: {e}")))?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    if declared.is_some_and(|n| n != bytes.len() as u64) {
        return Err(XrpcError::invalid(
            "the body's length differs from its Content-Length",
        ));
    }
    let cid = Cid::for_raw(&bytes);
    let store = st.pds.store().clone();
    let meta = tokio::task::spawn_blocking(move || store.put_blob(&did, &cid, &mime, &bytes))
        .await
        .map_err(XrpcError::internal)?
        .map_err(|e| xrpc(e.into()))?;
    Ok(Json(json!({
        "blob": {
            "$type": "blob",
            "ref": { "$link": cid.to_string() },
            "mimeType": meta.mime,
            "size": meta.size,
        }
    }))
    .into_response())
}

/// `getBlob`: the bytes, with their MIME type.
pub async fn get_blob(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let did = p.did()?;
    let cid = parse_cid("cid", p.required("cid")?)?;
    let account = served_account(&st.pds, did)?;
    let store = st.pds.store().clone();
    let found = tokio::task::spawn_blocking(move || store.blob(&account.did, &cid))
        .await
        .map_err(XrpcError::internal)?
        .map_err(|e| xrpc(e.into()))?;
    let Some((meta, bytes)) = found else {
        return Err(XrpcError::named(
            StatusCode::BAD_REQUEST,
            "BlobNotFound",
            format!("no blob {cid} in {did}"),
        ));
    };
    let content_type = HeaderValue::from_str(&meta.mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `listBlobs`: `{cids, cursor?}`, `limit` 1–1000 (default 500), in CID
/// order; the cursor is the last CID of a full page.
pub async fn list_blobs(State(st): State<PdsState>, p: Params) -> Result<Response, XrpcError> {
    let did = p.did()?;
    if let Some(since) = p.get("since") {
        validate_tid(since).map_err(|e| XrpcError::invalid(format!("since: {e}")))?;
    }
    let limit = p.int_in("limit", 1, 1000, 500)?;
    let after = p
        .get("cursor")
        .map(|c| parse_cid("cursor", c))
        .transpose()?;
    let account = served_account(&st.pds, did)?;
    let page = st
        .pds
        .store()
        .list_blobs(&account.did, after.as_ref(), limit)
        .map_err(|e| xrpc(e.into()))?;
    let cids: Vec<String> = page.iter().map(|(cid, _)| cid.to_string()).collect();
    let mut out = json!({ "cids": cids });
    if page.len() == limit {
        if let Some(last) = cids.last() {
            out["cursor"] = json!(last);
        }
    }
    Ok(Json(out).into_response())
}
