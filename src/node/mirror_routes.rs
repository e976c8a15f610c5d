//! A mirror's HTTP surface: its own firehose (the relay's fan-out sessions
//! over the mirror's ring and log), `_health`, the sync queries and
//! `requestCrawl` passed through to the upstream ([`crate::mirror::proxy`]), and a
//! clear refusal for the admin API (a mirror has no hosts, accounts or crawl
//! policy to administer: the upstream does).

use axum::extract::{FromRef, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::http::{relay_server_header, subscribe_repos, Firehose, XrpcError};
use crate::log::EventLog;
use crate::mirror::proxy::{Proxy, MAX_REQUEST_BODY};
use crate::mirror::{Follower, Upstream};

/// The queries a mirror passes through with GET: the relay's own, and the
/// repo reads a relay may answer or redirect.
pub const PASSED_QUERIES: [&str; 10] = [
    "com.atproto.sync.getLatestCommit",
    "com.atproto.sync.getRepoStatus",
    "com.atproto.sync.listRepos",
    "com.atproto.sync.getRepo",
    "com.atproto.sync.listHosts",
    "com.atproto.sync.getHostStatus",
    "com.atproto.sync.getRecord",
    "com.atproto.sync.getBlob",
    "com.atproto.sync.getBlocks",
    "com.atproto.sync.listBlobs",
];

/// The procedures a mirror passes through with POST.
pub const PASSED_PROCEDURES: [&str; 2] = [
    "com.atproto.sync.requestCrawl",
    "com.atproto.sync.notifyOfUpdate",
];

/// What the mirror's handlers share.
#[derive(Clone)]
pub struct MirrorState {
    pub firehose: Firehose,
    pub proxy: Proxy,
    pub log: EventLog,
    pub follower: Follower,
    pub upstream: Upstream,
}

/// The mirror's `subscribeRepos` streams its own firehose.
impl FromRef<MirrorState> for Firehose {
    fn from_ref(st: &MirrorState) -> Firehose {
        st.firehose.clone()
    }
}

/// The mirror's routes.
pub fn router(st: MirrorState) -> Router {
    let mut router = Router::new()
        .route(
            "/xrpc/com.atproto.sync.subscribeRepos",
            get(subscribe_repos),
        )
        .route("/xrpc/_health", get(health))
        .route("/admin", any(no_admin))
        .route("/admin/{*rest}", any(no_admin));
    for method in PASSED_QUERIES {
        router = router.route(&format!("/xrpc/{method}"), get(pass));
    }
    for method in PASSED_PROCEDURES {
        router = router.route(&format!("/xrpc/{method}"), post(pass));
    }
    router
        .fallback(|| async {
            XrpcError::named(
                StatusCode::NOT_FOUND,
                "MethodNotImplemented",
                "no such XRPC method on this mirror",
            )
        })
        .layer(axum::middleware::map_response(relay_server_header))
        .with_state(st)
}

/// The relay's `_health` plus where this mirror stands against its upstream.
async fn health(State(st): State<MirrorState>) -> Response {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "seq": st.log.last_seq(),
        "mirror": {
            "upstream": st.upstream.to_string(),
            "connected": st.follower.connected(),
            "upstreamSeq": st.follower.upstream_seq(),
        },
    }))
    .into_response()
}

/// Any passed-through method: same method, path, query and body upstream.
async fn pass(State(st): State<MirrorState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BODY).await else {
        return XrpcError::named(
            StatusCode::PAYLOAD_TOO_LARGE,
            "InvalidRequest",
            format!("request body over {MAX_REQUEST_BODY} bytes"),
        )
        .into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    st.proxy
        .pass(parts.method.clone(), path, &parts.headers, body)
        .await
}

/// `/admin` on a mirror.
async fn no_admin(State(st): State<MirrorState>) -> XrpcError {
    XrpcError::named(
        StatusCode::NOT_IMPLEMENTED,
        "NotAvailableOnMirror",
        format!(
            "this atrelay is a mirror of {}: it has no hosts, accounts or crawl policy to administer; use the upstream relay's admin API",
            st.upstream
        ),
    )
}
