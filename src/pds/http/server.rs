//! `com.atproto.server.*` for PDS mode. (Routes are added by the PDS XRPC work.)

use axum::Router;

use super::PdsState;

/// This namespace's routes.
pub fn routes() -> Router<PdsState> {
    Router::new()
}
