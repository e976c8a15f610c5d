//! `com.atproto.repo.*` for PDS mode (digest §8.2): the record writes here,
//! the reads in `repo_read.rs`, `uploadBlob` in `blobs.rs`.
//!
//! Each write call is one signed commit and one `#commit` event
//! ([`Pds::write`](crate::pds::service::Pds::write) does the work under the
//! repo's lock, so `swapCommit` and `swapRecord` are checked against exactly
//! the state the commit builds on). The handlers only read the input, check
//! who may write ([`writable_repo`]) and shape the output.
//!
//! Choices worth knowing:
//! - `validate: true` is refused (`InvalidRequest`): this PDS knows no
//!   lexicons, and the flag asks for a validation it cannot do. Omitted or
//!   `false`, records get the data-model and `$type` checks of
//!   [`writes`](crate::pds::writes) and `validationStatus: "unknown"`.
//! - `deleteRecord` of a record that does not exist succeeds without a
//!   commit (`{}`), as the reference PDS does: deleting is idempotent. A
//!   `swapRecord` naming a CID still fails with `InvalidSwap` then.
//! - `applyWrites#update` is a put: it creates the record if it is missing.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::writable_repo;
use super::auth::AccessDid;
use super::params::{json_input, parse_opt_cid, present};
use super::{blobs, repo_read, xrpc, PdsState};
use crate::http::XrpcError;
use crate::pds::service::{PdsError, SwappedWrite, WriteOutcome};
use crate::pds::writes::{WriteError, WriteRequest};

/// The `$type`s of `applyWrites` operations and results.
const APPLY_CREATE: &str = "com.atproto.repo.applyWrites#create";
const APPLY_UPDATE: &str = "com.atproto.repo.applyWrites#update";
const APPLY_DELETE: &str = "com.atproto.repo.applyWrites#delete";

/// This namespace's routes.
pub fn routes() -> Router<PdsState> {
    Router::new()
        .route("/xrpc/com.atproto.repo.createRecord", post(create_record))
        .route("/xrpc/com.atproto.repo.putRecord", post(put_record))
        .route("/xrpc/com.atproto.repo.deleteRecord", post(delete_record))
        .route("/xrpc/com.atproto.repo.applyWrites", post(apply_writes))
        .route(
            "/xrpc/com.atproto.repo.getRecord",
            get(repo_read::get_record),
        )
        .route(
            "/xrpc/com.atproto.repo.listRecords",
            get(repo_read::list_records),
        )
        .route(
            "/xrpc/com.atproto.repo.describeRepo",
            get(repo_read::describe_repo),
        )
        .route(
            "/xrpc/com.atproto.repo.uploadBlob",
            post(blobs::upload_blob),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRecordInput {
    repo: String,
    collection: String,
    rkey: Option<String>,
    validate: Option<bool>,
    record: Value,
    swap_commit: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRecordInput {
    repo: String,
    collection: String,
    rkey: String,
    validate: Option<bool>,
    record: Value,
    /// Absent: no check; `null`: must not exist; a CID: must be it.
    #[serde(default, deserialize_with = "present")]
    swap_record: Option<Option<String>>,
    swap_commit: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteRecordInput {
    repo: String,
    collection: String,
    rkey: String,
    swap_record: Option<String>,
    swap_commit: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyWritesInput {
    repo: String,
    validate: Option<bool>,
    writes: Vec<ApplyWrite>,
    swap_commit: Option<String>,
}

/// One member of the `applyWrites` union; which fields it needs depends on
/// `$type`, checked in [`ApplyWrite::into_request`].
#[derive(Deserialize)]
struct ApplyWrite {
    #[serde(rename = "$type")]
    kind: Option<String>,
    collection: String,
    rkey: Option<String>,
    value: Option<Value>,
}

impl ApplyWrite {
    fn into_request(self, i: usize) -> Result<WriteRequest, XrpcError> {
        let need = |what: &str| XrpcError::invalid(format!("writes[{i}]: {what} is required"));
        let ApplyWrite {
            kind,
            collection,
            rkey,
            value,
        } = self;
        match kind.as_deref() {
            Some(APPLY_CREATE) => Ok(WriteRequest::Create {
                collection,
                rkey,
                record: value.ok_or_else(|| need("value"))?,
            }),
            Some(APPLY_UPDATE) => Ok(WriteRequest::Put {
                collection,
                rkey: rkey.ok_or_else(|| need("rkey"))?,
                record: value.ok_or_else(|| need("value"))?,
            }),
            Some(APPLY_DELETE) => Ok(WriteRequest::Delete {
                collection,
                rkey: rkey.ok_or_else(|| need("rkey"))?,
            }),
            Some(other) => Err(XrpcError::invalid(format!(
                "writes[{i}]: unknown $type {other:?} (expected {APPLY_CREATE}, {APPLY_UPDATE} or {APPLY_DELETE})"
            ))),
            None => Err(need("$type")),
        }
    }
}

/// Refuses `validate: true` (see the module docs).
fn check_validate(validate: Option<bool>) -> Result<(), XrpcError> {
    if validate == Some(true) {
        return Err(XrpcError::invalid(
            "this PDS does not validate records against lexicons; omit validate or set it to false",
        ));
    }
    Ok(())
}

/// `commitMeta`: `{cid, rev}`.
fn commit_meta(outcome: &WriteOutcome) -> Value {
    json!({ "cid": outcome.commit.to_string(), "rev": outcome.rev })
}

/// The `(uri, cid)` of the single record a create or put wrote.
fn single_result(outcome: &WriteOutcome) -> Result<(String, String), XrpcError> {
    match outcome.results.first() {
        Some(Some((uri, cid))) => Ok((uri.clone(), cid.to_string())),
        _ => Err(XrpcError::internal("a record write returned no record")),
    }
}

/// `createRecord`: `{uri, cid, commit, validationStatus}`.
async fn create_record(
    State(st): State<PdsState>,
    AccessDid(auth): AccessDid,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let input: CreateRecordInput = json_input(&body)?;
    let did = writable_repo(&st.pds, &auth, &input.repo)?;
    check_validate(input.validate)?;
    let swap_commit = parse_opt_cid("swapCommit", input.swap_commit.as_deref())?;
    let write = WriteRequest::Create {
        collection: input.collection,
        rkey: input.rkey,
        record: input.record,
    };
    let outcome = st
        .pds
        .write(&did, vec![write.into()], swap_commit)
        .await
        .map_err(xrpc)?;
    record_written(&outcome)
}

/// `{uri, cid, commit, validationStatus}` for a one-record write.
fn record_written(outcome: &WriteOutcome) -> Result<Response, XrpcError> {
    let (uri, cid) = single_result(outcome)?;
    Ok(Json(json!({
        "uri": uri,
        "cid": cid,
        "commit": commit_meta(outcome),
        "validationStatus": "unknown",
    }))
    .into_response())
}

/// `putRecord`: create or replace; `{uri, cid, commit, validationStatus}`.
async fn put_record(
    State(st): State<PdsState>,
    AccessDid(auth): AccessDid,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let input: PutRecordInput = json_input(&body)?;
    let did = writable_repo(&st.pds, &auth, &input.repo)?;
    check_validate(input.validate)?;
    let swap_commit = parse_opt_cid("swapCommit", input.swap_commit.as_deref())?;
    let swap_record = match input.swap_record {
        None => None,
        Some(expected) => Some(parse_opt_cid("swapRecord", expected.as_deref())?),
    };
    let write = SwappedWrite {
        write: WriteRequest::Put {
            collection: input.collection,
            rkey: input.rkey,
            record: input.record,
        },
        swap_record,
    };
    let outcome = st
        .pds
        .write(&did, vec![write], swap_commit)
        .await
        .map_err(xrpc)?;
    record_written(&outcome)
}

/// `deleteRecord`: `{commit}`, or `{}` when there was nothing to delete.
async fn delete_record(
    State(st): State<PdsState>,
    AccessDid(auth): AccessDid,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let input: DeleteRecordInput = json_input(&body)?;
    let did = writable_repo(&st.pds, &auth, &input.repo)?;
    let swap_commit = parse_opt_cid("swapCommit", input.swap_commit.as_deref())?;
    let swap_record = parse_opt_cid("swapRecord", input.swap_record.as_deref())?;
    let write = SwappedWrite {
        write: WriteRequest::Delete {
            collection: input.collection,
            rkey: input.rkey,
        },
        swap_record: swap_record.map(Some),
    };
    match st.pds.write(&did, vec![write], swap_commit).await {
        Ok(outcome) => Ok(Json(json!({ "commit": commit_meta(&outcome) })).into_response()),
        // Checked under the repo lock after the swaps: a record that is
        // already gone is a successful no-op.
        Err(PdsError::Write(WriteError::RecordNotFound(_))) => Ok(Json(json!({})).into_response()),
        Err(e) => Err(xrpc(e)),
    }
}

/// `applyWrites`: all writes in one commit; `{commit, results}` with one
/// result per write, in order.
async fn apply_writes(
    State(st): State<PdsState>,
    AccessDid(auth): AccessDid,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let input: ApplyWritesInput = json_input(&body)?;
    let did = writable_repo(&st.pds, &auth, &input.repo)?;
    check_validate(input.validate)?;
    let swap_commit = parse_opt_cid("swapCommit", input.swap_commit.as_deref())?;
    let writes = input
        .writes
        .into_iter()
        .enumerate()
        .map(|(i, w)| w.into_request(i))
        .collect::<Result<Vec<_>, _>>()?;
    let kinds: Vec<&'static str> = writes
        .iter()
        .map(|w| match w {
            WriteRequest::Create { .. } => "com.atproto.repo.applyWrites#createResult",
            WriteRequest::Put { .. } => "com.atproto.repo.applyWrites#updateResult",
            WriteRequest::Delete { .. } => "com.atproto.repo.applyWrites#deleteResult",
        })
        .collect();
    let outcome = st
        .pds
        .write(
            &did,
            writes.into_iter().map(Into::into).collect(),
            swap_commit,
        )
        .await
        .map_err(xrpc)?;
    let results: Vec<Value> = kinds
        .iter()
        .zip(&outcome.results)
        .map(|(kind, result)| match result {
            Some((uri, cid)) => json!({
                "$type": kind,
                "uri": uri,
                "cid": cid.to_string(),
                "validationStatus": "unknown",
            }),
            None => json!({ "$type": kind }),
        })
        .collect();
    Ok(Json(json!({ "commit": commit_meta(&outcome), "results": results })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(v: Value) -> Result<WriteRequest, XrpcError> {
        serde_json::from_value::<ApplyWrite>(v)
            .unwrap()
            .into_request(0)
    }

    #[test]
    fn apply_writes_union_members() {
        let c = write(json!({"$type": APPLY_CREATE, "collection": "a.b.c", "value": {}})).unwrap();
        assert!(matches!(c, WriteRequest::Create { rkey: None, .. }));
        let u =
            write(json!({"$type": APPLY_UPDATE, "collection": "a.b.c", "rkey": "k", "value": {}}))
                .unwrap();
        assert!(matches!(u, WriteRequest::Put { .. }));
        let d = write(json!({"$type": APPLY_DELETE, "collection": "a.b.c", "rkey": "k"})).unwrap();
        assert!(matches!(d, WriteRequest::Delete { .. }));
        for bad in [
            json!({"collection": "a.b.c", "value": {}}),
            json!({"$type": "com.atproto.repo.applyWrites#upsert", "collection": "a.b.c"}),
            json!({"$type": APPLY_UPDATE, "collection": "a.b.c", "value": {}}),
            json!({"$type": APPLY_CREATE, "collection": "a.b.c"}),
            json!({"$type": APPLY_DELETE, "collection": "a.b.c"}),
        ] {
            assert_eq!(
                write(bad.clone()).unwrap_err().error,
                "InvalidRequest",
                "{bad}"
            );
        }
    }

    #[test]
    fn validate_true_is_refused() {
        assert!(check_validate(None).is_ok());
        assert!(check_validate(Some(false)).is_ok());
        assert!(check_validate(Some(true)).is_err());
    }
}
