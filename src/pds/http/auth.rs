//! Bearer tokens: `Authorization: Bearer <access JWT>` to the account's DID.
//!
//! [`AccessDid`] is the extractor write endpoints take: no or bad token is
//! `AuthenticationRequired` (401), an expired one `ExpiredToken`, a refresh
//! token where an access token belongs `InvalidToken`. [`RefreshToken`]
//! only lifts the raw bearer string for `refreshSession` / `deleteSession`,
//! which check it themselves.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::PdsState;
use crate::http::XrpcError;

/// The DID an access token speaks for.
pub struct AccessDid(pub String);

/// The raw bearer token (refresh endpoints).
pub struct RefreshToken(pub String);

fn bearer(parts: &Parts) -> Result<String, XrpcError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            XrpcError::named(
                StatusCode::UNAUTHORIZED,
                "AuthenticationRequired",
                "send Authorization: Bearer <token>",
            )
        })?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or(("", ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(XrpcError::named(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "send Authorization: Bearer <token>",
        ));
    }
    Ok(token.trim().to_owned())
}

impl FromRequestParts<PdsState> for AccessDid {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &PdsState) -> Result<Self, XrpcError> {
        let token = bearer(parts)?;
        state.pds.authenticate(&token).map(AccessDid).map_err(|e| {
            let name = e.name();
            XrpcError::named(StatusCode::UNAUTHORIZED, name, e.to_string())
        })
    }
}

impl FromRequestParts<PdsState> for RefreshToken {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, _: &PdsState) -> Result<Self, XrpcError> {
        bearer(parts).map(RefreshToken)
    }
}
