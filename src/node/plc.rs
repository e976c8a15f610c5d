//! Starting and stopping a PLC directory ([`crate::plc`]): opens its
//! database and serves its HTTP API through the crate's one HTTP server,
//! with a clean stop.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::shared::STOP_GRACE;
use crate::lifecycle::Shutdown;
use crate::net::fd_limit::Reserve;
use crate::net::http_server::{self, ServerLimits};
use crate::plc::{Directory, StoreError};

/// A running directory server. Dropping it signals shutdown without waiting;
/// [`stop`](Self::stop) waits until the server is down and the database closed.
#[derive(Debug)]
pub struct PlcServer {
    addr: SocketAddr,
    directory: Arc<Directory>,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PlcServer {
    /// Opens the directory in `data_dir` and serves it on `listener` (already
    /// bound, so a caller can bind port 0 and learn the address first). Must be
    /// called inside a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let plc = atrelay::node::PlcServer::start(listener, std::path::Path::new("./data/plc")).await?;
    /// println!("PLC at {}", plc.url());
    /// plc.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(listener: TcpListener, data_dir: &Path) -> Result<PlcServer, StoreError> {
        let addr = listener
            .local_addr()
            .map_err(|e| StoreError::RocksDb(format!("listener address: {e}")))?;
        let path = data_dir.to_path_buf();
        let directory = tokio::task::spawn_blocking(move || Directory::open(&path))
            .await
            .map_err(|e| StoreError::RocksDb(format!("opening the directory: {e}")))??;
        let directory = Arc::new(directory);
        let shutdown = Shutdown::new();
        let app = crate::plc::http_api::router(directory.clone());
        let limits = ServerLimits::default().with_derived_cap(Reserve {
            databases: crate::plc::store::FILE_DESCRIPTORS,
        });
        let task = tokio::spawn(http_server::serve(
            listener,
            app,
            "plc",
            limits,
            shutdown.signal(),
        ));
        tracing::info!(%addr, "PLC directory listening");
        Ok(PlcServer {
            addr,
            directory,
            shutdown,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL for resolvers and clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory behind the server, for in-process callers. A clone held
    /// past [`stop`](Self::stop) keeps the database open.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.clone()
    }

    /// Stops accepting connections, lets requests in flight finish (for up to
    /// [`STOP_GRACE`]) and closes the database.
    pub async fn stop(mut self) {
        self.shutdown.begin();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                tracing::warn!("PLC server did not stop in time; aborting it");
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for PlcServer {
    fn drop(&mut self) {
        self.shutdown.begin();
    }
}
