//! HTTP Basic credentials for the admin APIs (the relay's `/admin` and PDS
//! mode's `com.atproto.admin.*`), checked in constant time.
//!
//! Both sides are hashed and the digests compared without an early exit, so
//! neither the password's content nor its length leaks through timing; the
//! user and the password are both compared, always, so a wrong user costs
//! what a wrong password does.

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use sha2::{Digest, Sha256};

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
