//! The embedded DID directory: answers `GET /{did}` with a DID document, as
//! a PLC directory does, for the accounts of a fleet or the DIDs captured in
//! a recording.
//!
//! It is read-only and takes documents as given: a load test needs the
//! relay's resolver to find each account's key and PDS, not PLC's operation
//! log. (A fleet that must register through real PLC operations can point
//! at `atrelay plc` instead; see the README.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dashmap::DashMap;
use serde_json::{json, Value};

pub use atrelay::identity::account_document as document;

#[derive(Default)]
struct Docs {
    docs: DashMap<String, Arc<str>>,
    requests: AtomicU64,
}

/// A running directory.
pub struct Directory {
    pub addr: SocketAddr,
    docs: Arc<Docs>,
    task: tokio::task::JoinHandle<()>,
}

impl Directory {
    /// Listens on `listen` (port 0 for any).
    pub async fn start(listen: SocketAddr) -> std::io::Result<Directory> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let docs = Arc::new(Docs::default());
        let app = Router::new()
            .route("/_health", get(|| async { "ok" }))
            .route("/{did}", get(resolve))
            .with_state(docs.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Directory { addr, docs, task })
    }

    /// The URL to give the relay as `--plc-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn insert(&self, did: &str, doc: &Value) {
        self.docs
            .docs
            .insert(did.to_owned(), doc.to_string().into());
    }

    /// Documents served so far (how often the relay resolved).
    pub fn requests(&self) -> u64 {
        self.docs.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn resolve(State(docs): State<Arc<Docs>>, Path(did): Path<String>) -> Response {
    docs.requests.fetch_add(1, Ordering::Relaxed);
    match docs.docs.get(&did) {
        Some(doc) => (
            StatusCode::OK,
            [("content-type", "application/did+ld+json")],
            doc.to_string(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            json!({"message": format!("DID not registered: {did}")}).to_string(),
        )
            .into_response(),
    }
}
