//! Starting and stopping a mirror (the fan-out tier, [`crate::mirror`]):
//! wires the log (upstream seqs, gaps allowed), the ring, the writer thread,
//! the upstream follower, the HTTP server with the pass-through queries, and
//! retention.

use std::net::SocketAddr;
use std::time::Duration;

use super::mirror_routes::{router, MirrorState};
use super::shared::{
    bind, configured_firehose, firehose_ring, join_writer_and_flush, open_log, server_limits,
    spawn_log_writer, spawn_retention, spawn_server, stop_tasks, StartError,
};
use crate::config::RelayConfig;
use crate::fanout::Ring;
use crate::lifecycle::Shutdown;
use crate::log::{EventLog, SeqRule};
use crate::mirror::{Follower, FollowerConfig, Proxy, Upstream};
use crate::net::metrics::SERVER_RELAY;
use crate::net::{Dns, Outbound};

/// Batches of frames waiting for the writer: with [`crate::mirror::MAX_BATCH`]
/// frames each at most, a few group commits' worth.
const WRITER_QUEUE: usize = 8;

/// What tests may replace when starting a mirror.
#[derive(Clone, Debug, Default)]
pub struct MirrorStartOptions {
    /// Name resolution for the upstream (tests pin names to addresses).
    pub dns: Dns,
}

/// A running mirror.
pub struct Mirror {
    /// Where the HTTP/websocket server listens.
    pub addr: SocketAddr,
    pub log: EventLog,
    pub ring: Ring,
    /// The follower's progress.
    pub follower: Follower,
    /// Every task that holds the log holds one of its guards.
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
    following: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
}

impl Mirror {
    /// Starts a mirror of `cfg.mirror.upstream` on the current runtime.
    pub async fn start(cfg: &RelayConfig) -> Result<Mirror, StartError> {
        Mirror::start_with(cfg, MirrorStartOptions::default()).await
    }

    /// Starts a mirror with DNS pins.
    pub async fn start_with(
        cfg: &RelayConfig,
        opts: MirrorStartOptions,
    ) -> Result<Mirror, StartError> {
        let upstream = Upstream::parse(&cfg.mirror.upstream)
            .map_err(|e| StartError::Upstream(e.to_string()))?;
        let (listener, addr) = bind(cfg).await?;
        let log = open_log(cfg, SeqRule::Increasing)?;
        let ring = firehose_ring(cfg, log.last_seq());
        // The upstream is the operator's choice (as the PLC directory is
        // the relay's): exempt from the private-address rule, so a mirror
        // on the relay's own network or loopback works.
        let dns = opts
            .dns
            .with_policy(cfg.crawl.allow_private_hosts, [upstream.host().to_owned()]);

        let shutdown = Shutdown::new();
        let (frames_tx, frames_rx) = tokio::sync::mpsc::channel(WRITER_QUEUE);
        let writer = {
            // As the relay's sequencer: a restart resumes from the durable
            // head.
            let (log, ring, stop) = (log.clone(), ring.clone(), shutdown.signal());
            spawn_log_writer(
                "atrelay-mirror-writer",
                "the mirror's log cannot be written: stopping",
                move || crate::mirror::writer::run(log, ring, frames_rx, stop),
            )?
        };
        let follower = Follower::new();
        let following = tokio::spawn(follower.clone().run(
            FollowerConfig {
                upstream: upstream.clone(),
                dns: dns.clone(),
                max_backoff: Duration::from_secs(cfg.mirror.max_backoff_secs),
                idle_ping: Duration::from_secs(30),
                backfill: cfg.mirror.backfill,
            },
            log.last_seq(),
            frames_tx,
            shutdown.signal(),
        ));

        let state = MirrorState {
            firehose: configured_firehose(cfg, ring.clone(), log.clone(), &shutdown),
            proxy: Proxy::new(
                upstream.clone(),
                Outbound::new(
                    dns,
                    Duration::from_secs(cfg.mirror.proxy_timeout_secs),
                    "mirror",
                ),
            ),
            log: log.clone(),
            follower: follower.clone(),
            upstream: upstream.clone(),
        };
        let limits = server_limits(cfg);
        let server = spawn_server(&shutdown, listener, router(state), SERVER_RELAY, limits);
        spawn_retention(log.clone(), shutdown.signal(), shutdown.guard());
        ::metrics::gauge!(crate::mirror::metrics::HEAD_SEQ).set(log.last_seq() as f64);
        tracing::info!(
            %addr,
            %upstream,
            last_seq = log.last_seq(),
            max_connections = limits.max_connections,
            "mirror listening"
        );
        Ok(Mirror {
            addr,
            log,
            ring,
            follower,
            shutdown,
            server,
            following,
            writer,
        })
    }

    /// Stops following and serving. Frames read but not yet written are
    /// not lost: the log's head is behind them, and the next start asks
    /// the upstream for them again.
    ///
    /// Returns once the log is closed (sessions, server, follower and
    /// writer gone, memtables flushed), so the same data directory can be
    /// opened again at once.
    pub async fn stop(self) {
        let Mirror {
            log,
            shutdown,
            server,
            following,
            writer,
            ..
        } = self;
        // The follower ends on the signal and drops its sender; the writer
        // then writes what it has and exits.
        shutdown.begin();
        let _ = following.await;
        stop_tasks(shutdown, server, "some sessions").await;
        join_writer_and_flush(writer, log).await;
    }
}
