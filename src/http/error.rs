//! XRPC errors: `{error, message}` JSON with the lexicon's error names and the
//! right HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::wire::frame::AccountStatus;

/// An XRPC error response.
#[derive(Debug)]
pub struct XrpcError {
    pub status: StatusCode,
    /// The lexicon error name (`InvalidRequest`, `RepoNotFound`, ...).
    pub error: &'static str,
    pub message: String,
}

impl XrpcError {
    /// 400 `InvalidRequest`.
    pub fn invalid(message: impl Into<String>) -> XrpcError {
        XrpcError::named(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// An error with an explicit status and name.
    pub fn named(status: StatusCode, error: &'static str, message: impl Into<String>) -> XrpcError {
        XrpcError {
            status,
            error,
            message: message.into(),
        }
    }

    /// 400 for a repo that exists but is not served because of `status` (kept
    /// as stored: the lexicon's values are open): the sync lexicons' name for
    /// a known status ([`AccountStatus::repo_error`]), `RepoNotFound` for any
    /// other. The relay's and the PDS's repo reads both answer with it.
    pub fn inactive_repo(did: &str, status: &str) -> XrpcError {
        let name = AccountStatus::parse(status)
            .and_then(AccountStatus::repo_error)
            .unwrap_or("RepoNotFound");
        XrpcError::named(
            StatusCode::BAD_REQUEST,
            name,
            format!("repo {did} is {status}"),
        )
    }

    /// 500 `InternalServerError`; the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> XrpcError {
        tracing::error!(error = %detail, "internal error serving a request");
        XrpcError::named(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "internal error",
        )
    }
}

impl IntoResponse for XrpcError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.error, "message": self.message })),
        )
            .into_response()
    }
}
