//! HTTP Basic credentials for the admin APIs (the relay's `/admin` and PDS
//! mode's `com.atproto.admin.*`), checked in constant time, with wrong ones
//! limited per client address ([`check_admin`]).
//!
//! Both sides are hashed and the digests compared without an early exit, so
//! neither the password's content nor its length leaks through timing; the
//! user and the password are both compared, always, so a wrong user costs
//! what a wrong password does.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::auth_limit::{client_key, too_many_attempts, AttemptLimiter, Refused};
use super::XrpcError;

/// The only admin user name, on the relay's `/admin` and PDS mode's admin
/// calls alike.
pub const ADMIN_USER: &str = "admin";

/// 404 `AdminDisabled`: what every admin call answers when no admin password
/// is configured (an admin API that cannot be secured is not served).
/// `message` tells the operator which variable to set.
pub fn admin_disabled(message: impl Into<String>) -> XrpcError {
    XrpcError::named(StatusCode::NOT_FOUND, "AdminDisabled", message)
}

/// What a request's `Authorization` header says, checked against one user
/// and password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BasicAuth {
    /// No `Basic` credentials at all (no header, another scheme, bad
    /// base64): not a guess, so not counted as a failed attempt.
    Missing,
    /// Credentials, but not these: a failed attempt.
    Wrong,
    /// The right user and password.
    Right,
}

/// Checks `headers` for `Authorization: Basic` with `user` / `password`.
pub fn check_basic(headers: &HeaderMap, user: &str, password: &str) -> BasicAuth {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials);
    match given {
        None => BasicAuth::Missing,
        Some((u, p)) => {
            let user_ok = constant_time_eq(u.as_bytes(), user.as_bytes());
            let pass_ok = constant_time_eq(p.as_bytes(), password.as_bytes());
            if user_ok & pass_ok {
                BasicAuth::Right
            } else {
                BasicAuth::Wrong
            }
        }
    }
}

/// Whether `headers` carry `Authorization: Basic` for `user` / `password`.
pub fn basic_auth_ok(headers: &HeaderMap, user: &str, password: &str) -> bool {
    check_basic(headers, user, password) == BasicAuth::Right
}

/// Why an admin request was not let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAuthError {
    /// No Basic credentials (not counted as a failed attempt).
    Missing,
    /// Wrong credentials (counted).
    Wrong,
    /// Too many wrong credentials from the client's address: refused
    /// before its credentials were compared.
    TooMany(Refused),
}

impl AdminAuthError {
    /// 401 `AuthenticationRequired` with a Basic challenge for `realm`, or
    /// 429 `RateLimitExceeded` with `Retry-After`.
    pub fn response(&self, realm: &str) -> Response {
        if let AdminAuthError::TooMany(refused) = self {
            return too_many_attempts(
                refused.wait,
                "too many failed admin authentications from this address",
            );
        }
        let mut res = XrpcError::named(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "admin credentials required (HTTP Basic, user admin)",
        )
        .into_response();
        if let Ok(challenge) =
            HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
        {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        res
    }
}

/// An admin API's check: Basic `user` / `password`, with wrong credentials
/// limited per client address by `failures` (when the address is known).
///
/// A blocked address is refused before its credentials' result is used, or
/// the answer would tell a guesser when it is right. Requests without Basic
/// credentials are not guesses and cost nothing; right credentials give
/// their attempt back and are never delayed.
pub fn check_admin(
    headers: &HeaderMap,
    user: &str,
    password: &str,
    client: Option<IpAddr>,
    failures: &AttemptLimiter<IpAddr>,
) -> Result<(), AdminAuthError> {
    let creds = check_basic(headers, user, password);
    let client = client.map(client_key);
    if let (Some(client), true) = (&client, creds != BasicAuth::Missing) {
        failures.take(client).map_err(AdminAuthError::TooMany)?;
    }
    match creds {
        BasicAuth::Right => {
            if let Some(client) = &client {
                failures.give_back(client);
            }
            Ok(())
        }
        BasicAuth::Wrong => Err(AdminAuthError::Wrong),
        BasicAuth::Missing => Err(AdminAuthError::Missing),
    }
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
    let (user, pass) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
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
        let mut headers = HeaderMap::new();
        assert!(!basic_auth_ok(&headers, "admin", "s3cret:with:colons"));
        assert_eq!(check_basic(&headers, "admin", "x"), BasicAuth::Missing);
        headers.insert(header::AUTHORIZATION, header.parse().unwrap());
        assert!(basic_auth_ok(&headers, "admin", "s3cret:with:colons"));
        assert!(!basic_auth_ok(&headers, "root", "s3cret:with:colons"));
        assert!(!basic_auth_ok(&headers, "admin", "s3cret"));
        assert_eq!(check_basic(&headers, "admin", "s3cret"), BasicAuth::Wrong);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(check_basic(&headers, "admin", "s3cret"), BasicAuth::Missing);
    }
}
