//! Running PDS mode: the HTTP server over [`Pds`], its firehose, and the
//! crawl notifier, with a clean stop (as the relay's: every task holding the
//! log is waited for, so the data directory can be reopened at once).

use std::net::SocketAddr;
use std::time::Duration;

use super::shared::{firehose, spawn_server, stop_tasks};
use crate::fanout::{SessionConfig, Subscribers};
use crate::lifecycle::Shutdown;
use crate::net::fd_limit::Reserve;
use crate::pds::crawl_notifier::CrawlNotifier;
use crate::pds::http::{router, PdsState};
use crate::pds::service::Pds;

/// A running PDS.
pub struct PdsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    pub pds: Pds,
    /// Every task that holds the log holds one of its guards.
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
}

impl PdsServer {
    /// Serves `pds` on `listener` until [`PdsServer::stop`].
    pub async fn start(pds: Pds, listener: tokio::net::TcpListener) -> std::io::Result<PdsServer> {
        let addr = listener.local_addr()?;
        let shutdown = Shutdown::new();
        let firehose = firehose(
            pds.ring().clone(),
            pds.log().clone(),
            SessionConfig::default(),
            Subscribers::new(),
            &shutdown,
        );
        let app = router(PdsState::new(pds.clone(), firehose));
        let cfg = pds.config();
        let limits = cfg.server.limits().with_derived_cap(Reserve {
            databases: crate::log::FILE_DESCRIPTORS + crate::pds::store::FILE_DESCRIPTORS,
        });
        let server = spawn_server(&shutdown, listener, app, "pds", limits);
        let notifier = CrawlNotifier::new(
            cfg.crawl.crawlers.clone(),
            cfg.hostname(),
            Duration::from_secs(cfg.crawl.request_interval_secs),
        );
        tokio::spawn(notifier.run(pds.last_seq(), shutdown.signal()));
        tracing::info!(
            %addr,
            did = pds.service_did(),
            max_connections = limits.max_connections,
            "PDS listening"
        );
        Ok(PdsServer {
            addr,
            pds,
            shutdown,
            server,
        })
    }

    /// Stops serving and waits until every task holding the log is gone.
    pub async fn stop(self) {
        let PdsServer {
            shutdown,
            server,
            pds,
            ..
        } = self;
        stop_tasks(shutdown, server, "PDS sessions").await;
        drop(pds);
    }
}
