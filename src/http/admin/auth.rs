//! HTTP Basic authentication for `/admin`: user `admin`, the password from
//! `ATRELAY_ADMIN_PASSWORD`.
//!
//! The comparison hashes both sides and compares the digests in constant
//! time, so neither the password's content nor its length leaks through
//! response timing. Without a configured password every admin route answers
//! 404 `AdminDisabled`: an admin API that cannot be secured is not served.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::http::{AppState, XrpcError};

/// The only admin user name.
pub const ADMIN_USER: &str = "admin";

/// Lets a request through only with the right credentials.
pub async fn require_admin(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(password) = app.admin_password.as_ref() else {
        return XrpcError::named(
            StatusCode::NOT_FOUND,
            "AdminDisabled",
            "the admin API is disabled: start the relay with ATRELAY_ADMIN_PASSWORD set",
        )
        .into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials);
    let ok = given.is_some_and(|(user, pass)| {
        // Both compared, always, so a wrong user costs the same as a wrong
        // password.
        let user_ok = constant_time_eq(user.as_bytes(), ADMIN_USER.as_bytes());
        let pass_ok = constant_time_eq(pass.as_bytes(), password.0.as_bytes());
        user_ok & pass_ok
    });
    if !ok {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        tracing::warn!(target: "atrelay::admin", %peer, path = %req.uri().path(), "admin request refused: bad or missing credentials");
        metrics::counter!("atrelay_admin_auth_failures_total").increment(1);
        let mut res = XrpcError::named(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "admin credentials required (HTTP Basic, user admin)",
        )
        .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"atrelay admin\", charset=\"UTF-8\""),
        );
        return res;
    }
    next.run(req).await
}

/// `Basic base64(user:pass)` → `(user, pass)`.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Equality whose time depends on neither content nor length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_compare() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:s3cret:with:colons")
        );
        let (u, p) = basic_credentials(&header).unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("admin", "s3cret:with:colons"));
        assert!(basic_credentials("Bearer abc").is_none());
        assert!(basic_credentials("Basic !!!").is_none());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
