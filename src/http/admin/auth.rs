//! HTTP Basic authentication for `/admin`: user `admin`, the password from
//! `ATRELAY_ADMIN_PASSWORD`.
//!
//! The comparison is constant-time ([`crate::http::basic_auth`]). Without a configured password every admin route answers
//! 404 `AdminDisabled`: an admin API that cannot be secured is not served.
//! Failed attempts are limited per client address
//! ([`crate::http::auth_limit`]).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::auth_limit::{client_key, too_many_attempts};
use crate::http::basic_auth::{check_basic, BasicAuth};
use crate::http::{AppState, XrpcError};

/// The only admin user name.
pub const ADMIN_USER: &str = "admin";

/// Lets a request through only with the right credentials.
///
/// A client address that sent [`ADMIN_FAILURE_BURST`](crate::http::auth_limit::ADMIN_FAILURE_BURST) wrong credentials is
/// refused with 429 `RateLimitExceeded` (and `Retry-After`) until it regains
/// an attempt, two a minute: before its credentials are even compared, or
/// the answer would tell a guesser when it is right. Requests without Basic
/// credentials are not guesses and do not count; right credentials give
/// their attempt back and are never delayed.
pub async fn require_admin(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(password) = app.admin_password.as_ref() else {
        return XrpcError::named(
            StatusCode::NOT_FOUND,
            "AdminDisabled",
            "the admin API is disabled: start the relay with ATRELAY_ADMIN_PASSWORD set",
        )
        .into_response();
    };
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let client = peer.map(|p| client_key(p.ip()));
    let creds = check_basic(req.headers(), ADMIN_USER, &password.0);
    if creds != BasicAuth::Missing {
        if let Some(client) = &client {
            if let Err(refused) = app.admin_failures.take(client) {
                metrics::counter!("atrelay_admin_auth_rate_limited_total").increment(1);
                if refused.first {
                    tracing::warn!(target: "atrelay::admin", %client, "admin authentication refused: too many failed attempts from this address");
                }
                return too_many_attempts(
                    refused.wait,
                    "too many failed admin authentications from this address",
                );
            }
        }
    }
    match creds {
        BasicAuth::Right => {
            if let Some(client) = &client {
                app.admin_failures.give_back(client);
            }
            next.run(req).await
        }
        BasicAuth::Wrong | BasicAuth::Missing => {
            let peer = peer.map(|p| p.to_string()).unwrap_or_default();
            if creds == BasicAuth::Wrong {
                // Bounded by the limit above.
                tracing::warn!(target: "atrelay::admin", %peer, path = %req.uri().path(), "admin request refused: wrong credentials");
            } else {
                tracing::debug!(target: "atrelay::admin", %peer, path = %req.uri().path(), "admin request refused: no credentials");
            }
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
            res
        }
    }
}
