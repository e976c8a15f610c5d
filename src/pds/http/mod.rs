//! PDS mode's XRPC surface (digest §8, §7): one file per namespace.
//!
//! - `accounts.rs`: `com.atproto.server.*` (accounts, sessions) and the
//!   service's `did:web` document;
//! - `identity.rs`: `com.atproto.identity.*`;
//! - `repo.rs`: `com.atproto.repo.*` (writes, reads, blobs);
//! - `sync.rs`: `com.atproto.sync.*` including `subscribeRepos`;
//! - `auth.rs`: bearer tokens to DIDs.
//!
//! Errors are XRPC JSON (`{error, message}`) through [`XrpcError`].

pub mod access;
pub mod accounts;
pub mod auth;
pub mod blobs;
pub mod car_export;
pub mod identity;
pub mod params;
pub mod repo;
pub mod repo_read;
pub mod sync;

use axum::extract::FromRef;
use axum::Router;

use crate::http::auth_limit::{
    AttemptLimiter, LoginLimits, ADMIN_FAILURE_BURST, ADMIN_FAILURE_PERIOD,
};
use crate::http::{Firehose, XrpcError};
use crate::pds::service::{Pds, PdsError};

/// What the handlers share.
#[derive(Clone)]
pub struct PdsState {
    pub pds: Pds,
    pub firehose: Firehose,
    /// Failed `createSession`s per client address and per account.
    pub logins: std::sync::Arc<LoginLimits>,
    /// Failed admin authentications per client address.
    pub admin_failures: std::sync::Arc<AttemptLimiter<std::net::IpAddr>>,
}

impl PdsState {
    /// The state for `pds` and its firehose, with the standard limits on
    /// failed logins and admin authentications.
    pub fn new(pds: Pds, firehose: Firehose) -> PdsState {
        PdsState {
            pds,
            firehose,
            logins: Default::default(),
            admin_failures: std::sync::Arc::new(AttemptLimiter::new(
                ADMIN_FAILURE_BURST,
                ADMIN_FAILURE_PERIOD,
            )),
        }
    }
}

/// PDS mode's `subscribeRepos`: the same fan-out sessions as the relay's,
/// over this PDS's log and ring.
impl FromRef<PdsState> for Firehose {
    fn from_ref(st: &PdsState) -> Firehose {
        st.firehose.clone()
    }
}

/// Every PDS route.
pub fn router(state: PdsState) -> Router {
    Router::new()
        .merge(accounts::routes())
        .merge(identity::routes())
        .merge(repo::routes())
        .merge(sync::routes())
        .route(
            "/xrpc/_health",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }))
            }),
        )
        .fallback(|| async {
            XrpcError::named(
                axum::http::StatusCode::NOT_FOUND,
                "MethodNotImplemented",
                "no such XRPC method on this PDS",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Largest request body: blobs are the big ones (their own, smaller, limit
/// is checked by `uploadBlob`).
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A [`PdsError`] as an XRPC error with its status.
pub fn xrpc(e: PdsError) -> XrpcError {
    use axum::http::StatusCode as S;
    let status = match &e {
        PdsError::Auth(_) => S::UNAUTHORIZED,
        PdsError::AccountNotFound(_) => S::BAD_REQUEST,
        PdsError::Plc(_) => S::BAD_GATEWAY,
        PdsError::Store(crate::pds::store::StoreError::Invalid(_))
        | PdsError::Store(crate::pds::store::StoreError::HandleTaken)
        | PdsError::Store(crate::pds::store::StoreError::EmailTaken)
        | PdsError::Store(crate::pds::store::StoreError::HeadChanged(_)) => S::BAD_REQUEST,
        PdsError::Store(_) | PdsError::Log(_) | PdsError::Internal(_) => {
            return XrpcError::internal(e);
        }
        _ => S::BAD_REQUEST,
    };
    XrpcError::named(status, e.name(), e.to_string())
}
