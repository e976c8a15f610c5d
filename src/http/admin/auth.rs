//! HTTP Basic authentication for `/admin`: user `admin`, the password from
//! `ATRELAY_ADMIN_PASSWORD`.
//!
//! The comparison is constant-time ([`crate::http::basic_auth`]). Without a configured password every admin route answers
//! 404 `AdminDisabled`: an admin API that cannot be secured is not served.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    let ok = crate::http::basic_auth::basic_auth_ok(req.headers(), ADMIN_USER, &password.0);
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
