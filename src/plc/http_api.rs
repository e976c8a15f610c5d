//! The directory's HTTP API (digest §6.2): its routes over a [`Directory`].
//! [`crate::node::PlcServer`] serves them.
//!
//! | method | path | success | errors |
//! |---|---|---|---|
//! | POST | `/{did}` | 200, empty body | 400 bad DID or refused op, 413 body over 16 KiB |
//! | GET | `/{did}` | 200 DID document (`application/did+ld+json`) | 400, 404 unknown, 410 tombstoned |
//! | GET | `/{did}/data` | 200 `{did, rotationKeys, verificationMethods, alsoKnownAs, services}` | 400, 404, 410 |
//! | GET | `/{did}/log` | 200 array of the valid ops | 400, 404 |
//! | GET | `/{did}/log/audit` | 200 array of `{did, operation, cid, nullified, createdAt}` | 400, 404 |
//! | GET | `/{did}/log/last` | 200 the latest valid op (a tombstone included) | 400, 404 |
//! | GET | `/export?count=N&after=SEQ` | 200 JSON lines `{type: "sequenced_op", operation, did, cid, createdAt, seq}` | 400 |
//! | GET | `/export?count=N[&after=DATETIME]` | 200 JSON lines `{did, operation, cid, nullified, createdAt}` by time (legacy) | 400 |
//! | GET | `/_health` | 200 `{version}` | |
//!
//! `count` is 1–1000 (default 10). Errors are JSON `{error, message}`; the
//! reference directory's clients read `message`. Not served: the websocket
//! `/export/stream` (a local directory's consumers poll `/export`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::directory::{Directory, Resolution, MAX_EXPORT_COUNT};
use super::error::{quote, StoreError};
use super::logged_op::LoggedOp;
use crate::clock::now_micros;
use crate::identity::validate_plc_did;
use crate::wire::syntax::parse_datetime;

/// Largest request body: an op is at most 4000 bytes of DAG-CBOR, and its JSON
/// is a little larger; anything bigger is refused before it is parsed.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `/export` page size when `count` is absent.
const DEFAULT_EXPORT_COUNT: usize = 10;

/// The routes, over a shared directory.
pub fn router(directory: Arc<Directory>) -> Router {
    Router::new()
        .route("/_health", get(health))
        .route("/export", get(export))
        .route("/{did}", get(document).post(submit))
        .route("/{did}/data", get(data))
        .route("/{did}/log", get(log))
        .route("/{did}/log/audit", get(audit_log))
        .route("/{did}/log/last", get(last_op))
        .fallback(not_found_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(directory)
}

/// An error answer: `{error, message}` with its status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "InvalidRequest",
            message: message.into(),
        }
    }

    fn not_registered(did: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "NotFound",
            message: format!("DID not registered: {did}"),
        }
    }

    fn tombstoned(did: &str) -> ApiError {
        ApiError {
            status: StatusCode::GONE,
            error: "Gone",
            message: format!("DID not available: {did}"),
        }
    }

    /// 500; the detail is logged, not sent.
    fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "PLC directory internal error");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "InternalServerError",
            message: "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            "application/json",
            &json!({"error": self.error, "message": self.message}),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

fn json_response(status: StatusCode, content_type: &'static str, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response()
}

fn ok_json(body: &Json) -> Response {
    json_response(StatusCode::OK, "application/json", body)
}

/// Runs a directory call on the blocking pool (RocksDB reads and fsyncs must
/// not stall the async workers).
async fn blocking<T: Send + 'static>(
    directory: &Arc<Directory>,
    f: impl FnOnce(&Directory) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let directory = directory.clone();
    tokio::task::spawn_blocking(move || f(&directory))
        .await
        .map_err(ApiError::internal)
}

fn check_did(did: &str) -> Result<(), ApiError> {
    validate_plc_did(did)
        .map_err(|e| ApiError::bad_request(format!("invalid DID {}: {e}", quote(did))))
}

async fn health() -> Response {
    ok_json(&json!({"version": env!("CARGO_PKG_VERSION")}))
}

async fn not_found_route() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: "NotFound",
        message: "no such endpoint".into(),
    }
}

async fn submit(
    State(directory): State<Arc<Directory>>,
    UrlPath(did): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_did(&did)?;
    let body = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        error: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "PayloadTooLarge"
        } else {
            "InvalidRequest"
        },
        message: rejection.body_text(),
    })?;
    let result = blocking(&directory, move |d| {
        d.submit_json(&did, &body, now_micros())
    })
    .await?;
    match result {
        Ok(_) => Ok(StatusCode::OK.into_response()),
        Err(e) if e.is_client_error() => Err(ApiError::bad_request(e.to_string())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn document(
    State(directory): State<Arc<Directory>>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let data = active(&directory, did).await?;
    Ok(json_response(
        StatusCode::OK,
        "application/did+ld+json",
        &data.document(),
    ))
}

async fn data(
    State(directory): State<Arc<Directory>>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let data = active(&directory, did).await?;
    Ok(ok_json(&data.to_json()))
}

/// The DID's current state, or 404 / 410.
async fn active(
    directory: &Arc<Directory>,
    did: String,
) -> Result<super::state::PlcData, ApiError> {
    check_did(&did)?;
    let lookup = did.clone();
    match blocking(directory, move |d| d.resolve(&lookup)).await?? {
        Resolution::NotFound => Err(ApiError::not_registered(&did)),
        Resolution::Tombstoned => Err(ApiError::tombstoned(&did)),
        Resolution::Active(data) => Ok(data),
    }
}

/// The DID's ops (all, or only valid ones), or 404 when it has none.
async fn ops(
    directory: &Arc<Directory>,
    did: String,
    include_nullified: bool,
) -> Result<Vec<LoggedOp>, ApiError> {
    check_did(&did)?;
    let lookup = did.clone();
    let ops = blocking(directory, move |d| {
        if include_nullified {
            d.audit_log(&lookup)
        } else {
            d.log(&lookup)
        }
    })
    .await??;
    if ops.is_empty() {
        return Err(ApiError::not_registered(&did));
    }
    Ok(ops)
}

async fn log(
    State(directory): State<Arc<Directory>>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let ops = ops(&directory, did, false).await?;
    let body: Vec<Json> = ops.iter().map(|o| o.operation.to_json()).collect();
    Ok(ok_json(&Json::Array(body)))
}

async fn audit_log(
    State(directory): State<Arc<Directory>>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let ops = ops(&directory, did, true).await?;
    let body: Vec<Json> = ops.iter().map(LoggedOp::to_audit_json).collect();
    Ok(ok_json(&Json::Array(body)))
}

async fn last_op(
    State(directory): State<Arc<Directory>>,
    UrlPath(did): UrlPath<String>,
) -> Result<Response, ApiError> {
    let ops = ops(&directory, did, false).await?;
    match ops.last() {
        Some(last) => Ok(ok_json(&last.operation.to_json())),
        None => Err(ApiError::internal("empty log after a non-empty check")),
    }
}

/// `/export` parameters, as text so each gets a precise error.
#[derive(Debug, Deserialize)]
struct ExportParams {
    count: Option<String>,
    after: Option<String>,
}

/// Where an export page starts.
enum After {
    /// After this seq: the sequenced format.
    Seq(u64),
    /// After this time (or from the start): the legacy format.
    Time(Option<i64>),
}

async fn export(
    State(directory): State<Arc<Directory>>,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let count = match params.count.as_deref() {
        None => DEFAULT_EXPORT_COUNT,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if (1..=MAX_EXPORT_COUNT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "count must be an integer from 1 to {MAX_EXPORT_COUNT}"
                )))
            }
        },
    };
    let after = match params.after.as_deref() {
        None => After::Time(None),
        Some(a) => match a.parse::<u64>() {
            Ok(seq) => After::Seq(seq),
            Err(_) => match parse_datetime(a) {
                Ok(micros) => After::Time(Some(micros)),
                Err(_) => {
                    return Err(ApiError::bad_request(
                        "after must be a sequence number or an RFC 3339 datetime",
                    ))
                }
            },
        },
    };
    let lines = blocking(&directory, move |d| {
        let (ops, sequenced) = match after {
            After::Seq(seq) => (d.export_after_seq(seq, count)?, true),
            After::Time(t) => (d.export_after_time(t, count)?, false),
        };
        let lines: Vec<String> = ops
            .iter()
            .map(|o| {
                if sequenced {
                    o.to_export_json().to_string()
                } else {
                    o.to_audit_json().to_string()
                }
            })
            .collect();
        Ok::<_, StoreError>(lines)
    })
    .await??;
    // Joined without a trailing newline, as the reference directory does
    // (clients split on '\n' and parse every piece).
    let body = lines.join("\n");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/jsonlines")],
        body,
    )
        .into_response())
}
