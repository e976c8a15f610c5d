//! Bearer tokens: `Authorization: Bearer <access JWT>` to the account's DID.
//!
//! [`AccessDid`] is the extractor write endpoints take: no or bad token is
//! `AuthenticationRequired` (401), an expired one `ExpiredToken`, a refresh
//! token where an access token belongs `InvalidToken`. [`RefreshToken`]
//! only lifts the raw bearer string for `refreshSession` / `deleteSession`,
//! which check it themselves.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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

/// A 401 with the `WWW-Authenticate` challenge XRPC clients expect (§9).
fn challenge(e: XrpcError) -> Response {
    let mut res = e.into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"atrelay pds\""),
    );
    res
}

impl FromRequestParts<PdsState> for AccessDid {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &PdsState) -> Result<Self, Response> {
        let token = bearer(parts).map_err(challenge)?;
        state.pds.authenticate(&token).map(AccessDid).map_err(|e| {
            let name = e.name();
            challenge(XrpcError::named(
                StatusCode::UNAUTHORIZED,
                name,
                e.to_string(),
            ))
        })
    }
}

impl FromRequestParts<PdsState> for RefreshToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &PdsState) -> Result<Self, Response> {
        bearer(parts).map(RefreshToken).map_err(challenge)
    }
}
