//! HTTP Basic authentication for `/admin`: user `admin`, the password from
//! `ATRELAY_ADMIN_PASSWORD`.
//!
//! The comparison is constant-time ([`crate::http::basic_auth`]). Without a configured password every admin route answers
//! 404 `AdminDisabled`: an admin API that cannot be secured is not served.
//! Failed attempts are limited per client address
//! ([`crate::http::auth_limit`]).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::basic_auth::{admin_disabled, check_admin, AdminAuthError, ADMIN_USER};
use crate::http::metrics::{ADMIN_AUTH_FAILURES, ADMIN_AUTH_RATE_LIMITED};
use crate::http::AppState;

/// Lets a request through only with the right credentials.
///
/// A client address that sent [`ADMIN_FAILURE_BURST`](crate::http::auth_limit::ADMIN_FAILURE_BURST)
/// wrong credentials gets 429 `RateLimitExceeded` (and `Retry-After`) for
/// everything until it regains an attempt, two a minute
/// ([`check_admin`]).
pub async fn require_admin(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(password) = app.admin_password.as_ref() else {
        return admin_disabled(
            "the admin API is disabled: start the relay with ATRELAY_ADMIN_PASSWORD set",
        )
        .into_response();
    };
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let checked = check_admin(
        req.headers(),
        ADMIN_USER,
        &password.0,
        peer.map(|p| p.ip()),
        &app.admin_failures,
    );
    let refused = match checked {
        Ok(()) => return next.run(req).await,
        Err(refused) => refused,
    };
    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
    let path = req.uri().path();
    match refused {
        AdminAuthError::TooMany(r) => {
            metrics::counter!(ADMIN_AUTH_RATE_LIMITED).increment(1);
            if r.first {
                tracing::warn!(target: "atrelay::admin", %peer, "admin requests refused: too many wrong credentials from this address");
            }
        }
        // Bounded by the limit.
        AdminAuthError::Wrong => {
            metrics::counter!(ADMIN_AUTH_FAILURES).increment(1);
            tracing::warn!(target: "atrelay::admin", %peer, %path, "admin request refused: wrong credentials");
        }
        AdminAuthError::Missing => {
            metrics::counter!(ADMIN_AUTH_FAILURES).increment(1);
            tracing::debug!(target: "atrelay::admin", %peer, %path, "admin request refused: no credentials");
        }
    }
    refused.response("atrelay admin")
}
