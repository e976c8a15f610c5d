//! The relay's HTTP surface: XRPC routing, the firehose websocket, sync
//! queries, `requestCrawl`, health.

mod crawl;
mod error;
mod subscribe;
mod sync;

pub use error::XrpcError;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::fanout::{Backfill, Ring, SessionConfig};
use crate::log::EventLog;
use crate::relay::crawler::Crawlers;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub log: EventLog,
    pub ring: Ring,
    pub backfill: Arc<dyn Backfill>,
    pub session: SessionConfig,
    pub crawlers: Crawlers,
    pub allow_private_hosts: bool,
    /// For `describeServer` probes.
    pub http: reqwest::Client,
    /// Flips to true when the relay stops: open subscriber sessions end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Held by every session task; the relay's stop waits until all clones
    /// are gone, i.e. every task holding the log has ended.
    pub tasks: tokio::sync::mpsc::Sender<()>,
}

/// The relay's routes.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route(
            "/xrpc/com.atproto.sync.subscribeRepos",
            get(subscribe::subscribe_repos),
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
        .route("/xrpc/_health", get(sync::health))
        .fallback(|| async {
            XrpcError::named(
                axum::http::StatusCode::NOT_FOUND,
                "MethodNotImplemented",
                "no such XRPC method on this relay",
            )
        })
        .with_state(app)
}
