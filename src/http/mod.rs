//! The relay's HTTP surface: XRPC routing, the firehose websocket, sync
//! queries, `requestCrawl`, health.

mod admin;
pub mod auth_limit;
pub mod basic_auth;
mod crawl;
mod error;
mod hosts;
pub mod metrics;
mod subscribe;
mod sync;

pub use crawl::crawl_request_quota;
pub use error::XrpcError;
pub use subscribe::{serve_firehose, subscribe_repos, Firehose, LogBackfill};

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::log::EventLog;
use crate::relay::crawler::Crawlers;
use crate::relay::hosts::Hosts;

/// Part of every response's `Server` header. Relays refuse to crawl hosts
/// that send it (loop guard), as the reference relay does with the same mark.
pub const RELAY_SERVER_MARK: &str = "atproto-relay";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub log: EventLog,
    pub crawlers: Crawlers,
    pub hosts: Hosts,
    /// The verifier pool (operator takedowns go through the DID's shard).
    pub pool: crate::relay::pool::Pool,
    /// The admin API's password; `None` disables `/admin`.
    pub admin_password: Option<crate::config::Secret>,
    pub allow_private_hosts: bool,
    /// Resolves hosts for `requestCrawl`'s checks, with the SSRF rule.
    pub dns: crate::net::Dns,
    /// `requestCrawl` calls per client address: each may cost a DNS lookup,
    /// a probe and a database write, so one client cannot make them in bulk.
    pub crawl_requests: Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// Failed `/admin` authentications per client address
    /// ([`auth_limit::ADMIN_FAILURE_BURST`]).
    pub admin_failures: Arc<auth_limit::AttemptLimiter<std::net::IpAddr>>,
    /// For `describeServer` probes: the outbound client, with the SSRF rule.
    pub outbound: crate::net::Outbound,
    /// The `subscribeRepos` endpoint: the ring, the log as catch-up, the
    /// live sessions (admin listing, lag metrics) and the stop they obey.
    pub firehose: Firehose,
}

/// The client's address, when the server runs with connection info (it
/// always does in the relay; a router served without it gets `None`).
pub struct PeerAddr(pub Option<std::net::SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<PeerAddr, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The relay's routes.
pub fn router(app: AppState) -> Router {
    Router::new()
        .merge(admin::routes(app.clone()))
        .route(
            "/xrpc/com.atproto.sync.subscribeRepos",
            get(subscribe_repos),
        )
        .route(
            "/xrpc/com.atproto.sync.requestCrawl",
            post(crawl::request_crawl),
        )
        .route(
            "/xrpc/com.atproto.sync.notifyOfUpdate",
            post(crawl::request_crawl),
        )
        .route(
            "/xrpc/com.atproto.sync.getLatestCommit",
            get(sync::get_latest_commit),
        )
        .route(
            "/xrpc/com.atproto.sync.getRepoStatus",
            get(sync::get_repo_status),
        )
        .route("/xrpc/com.atproto.sync.listRepos", get(sync::list_repos))
        .route("/xrpc/com.atproto.sync.getRepo", get(sync::get_repo))
        .route("/xrpc/com.atproto.sync.listHosts", get(hosts::list_hosts))
        .route(
            "/xrpc/com.atproto.sync.getHostStatus",
            get(hosts::get_host_status),
        )
        .route("/xrpc/_health", get(sync::health))
        .fallback(|| async {
            XrpcError::named(
                axum::http::StatusCode::NOT_FOUND,
                "MethodNotImplemented",
                "no such XRPC method on this relay",
            )
        })
        .layer(axum::middleware::map_response(relay_server_header))
        .with_state(app)
}

/// Marks a response as a relay's ([`RELAY_SERVER_MARK`] in `Server`), for
/// the relay's routes and a mirror's alike: a mirror is a relay to whoever
/// would crawl it.
pub async fn relay_server_header(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut().insert(
        axum::http::header::SERVER,
        axum::http::HeaderValue::from_static(concat!(
            "atrelay/",
            env!("CARGO_PKG_VERSION"),
            " (atproto-relay)"
        )),
    );
    res
}
