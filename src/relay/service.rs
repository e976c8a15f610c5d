//! Starting and stopping a relay: wires the log, ring, resolver, sequencer,
//! verifier pool, crawlers, HTTP server and retention together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::crawler::{CrawlerConfig, Crawlers};
use super::dns::Dns;
use super::hosts::Hosts;
use super::pool::{Pool, PoolConfig, MAX_DISPATCH};
use super::sequencer;
use crate::config::RelayConfig;
use crate::control::{Clock, Policy};
use crate::fanout::{Ring, SessionConfig};
use crate::http::{router, AppState};
use crate::identity::{Resolver, ResolverConfig};
use crate::log::{Durability, EventLog, LogMemory, LogOptions};
use crate::net::fd_limit::Reserve;
use crate::net::http_server;
use crate::repo::verify::now_micros;

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {err}")]
    DataDir { path: String, err: std::io::Error },
    #[error("opening the log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("binding {addr}: {err}")]
    Bind {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("starting threads: {0}")]
    Threads(std::io::Error),
    #[error("loading the crawl policy: {0}")]
    Policy(#[from] crate::control::PolicyError),
}

/// What tests may replace when starting a relay.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The clock budgets read (tests advance it to reset budget windows).
    pub clock: Clock,
    /// Name resolution for upstream hosts (tests pin names to addresses).
    pub dns: Dns,
}

/// A running relay.
pub struct Relay {
    /// Where the HTTP/websocket server listens.
    pub addr: SocketAddr,
    pub log: EventLog,
    pub ring: Ring,
    pub hosts: Hosts,
    pub crawlers: Crawlers,
    pub resolver: Resolver,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    sequencer: std::thread::JoinHandle<()>,
    /// "Shutdown complete" channel (as in mini-redis): every task that holds
    /// the log holds a sender; `stop` drops its own and waits for the rest.
    tasks_tx: tokio::sync::mpsc::Sender<()>,
    tasks_rx: tokio::sync::mpsc::Receiver<()>,
}

impl Relay {
    /// Starts a relay on the current tokio runtime.
    pub async fn start(cfg: &RelayConfig) -> Result<Relay, StartError> {
        Relay::start_with(cfg, StartOptions::default()).await
    }

    /// Starts a relay with a test clock or DNS pins.
    pub async fn start_with(cfg: &RelayConfig, opts: StartOptions) -> Result<Relay, StartError> {
        let StartOptions { clock, dns } = opts;
        // Bind before anything else starts: a port in use is the commonest
        // start failure, and failing after the verifier threads and crawlers
        // are running would leave them holding the log while the process
        // exits (RocksDB then crashes in its static destructors).
        let listener = tokio::net::TcpListener::bind(cfg.server.listen)
            .await
            .map_err(|err| StartError::Bind {
                addr: cfg.server.listen,
                err,
            })?;
        let addr = listener.local_addr().map_err(|err| StartError::Bind {
            addr: cfg.server.listen,
            err,
        })?;
        std::fs::create_dir_all(&cfg.server.data_dir).map_err(|err| StartError::DataDir {
            path: cfg.server.data_dir.display().to_string(),
            err,
        })?;
        let log = EventLog::open(
            &cfg.server.data_dir.join("log"),
            LogOptions {
                durability: if cfg.log.durability == "buffered" {
                    Durability::Buffered
                } else {
                    Durability::Fsync
                },
                retention_max_age: (cfg.log.retention_hours > 0)
                    .then(|| Duration::from_secs(cfg.log.retention_hours * 3600)),
                retention_max_bytes: (cfg.log.retention_max_mib > 0)
                    .then(|| cfg.log.retention_max_mib * 1024 * 1024),
                memory: LogMemory {
                    memtable_bytes: cfg.log.memtable_mib << 20,
                    block_cache_bytes: cfg.log.block_cache_mib << 20,
                },
            },
        )?;
        let ring = Ring::new(cfg.fanout.ring_capacity, log.last_seq());
        let resolver = Resolver::new(ResolverConfig {
            plc_url: cfg.identity.plc_url.clone(),
            allow_private: cfg.crawl.allow_private_hosts,
            ttl: Duration::from_secs(cfg.identity.cache_ttl_secs),
            capacity: cfg.identity.cache_capacity,
            timeout: Duration::from_secs(cfg.identity.timeout_secs),
            ..ResolverConfig::default()
        });
        let policy = Policy::load(&log, cfg)?;
        let hosts = Hosts::load(&log, policy.clone(), clock.clone())?;

        // Batches of up to MAX_DISPATCH events each: at most 8,192 accepted
        // events wait for the sequencer, as many as before batching.
        let (seq_tx, seq_rx) = crossbeam::channel::bounded(8192 / MAX_DISPATCH);
        let sequencer = {
            let (log, ring) = (log.clone(), ring.clone());
            std::thread::Builder::new()
                .name("atrelay-sequencer".into())
                .spawn(move || {
                    if let Err(e) = sequencer::run(log, ring, seq_rx) {
                        // Continuing would let verifier state run ahead of
                        // the log; a restart resumes from durable state.
                        tracing::error!(error = %e, "log write failed; stopping the relay");
                        std::process::abort();
                    }
                })
                .map_err(StartError::Threads)?
        };
        let (shutdown, stop) = tokio::sync::watch::channel(false);
        let (tasks_tx, tasks_rx) = tokio::sync::mpsc::channel::<()>(1);
        let pool = Pool::start(
            &PoolConfig {
                threads: cfg.verifier_threads(),
                lenient: cfg.verify.lenient,
                account_cache_capacity: cfg.verify.account_cache_capacity,
            },
            log.clone(),
            resolver.clone(),
            hosts.clone(),
            seq_tx,
            tokio::runtime::Handle::current(),
        )
        .map_err(StartError::Threads)?;
        let crawlers = Crawlers::new(
            CrawlerConfig {
                allow_private: cfg.crawl.allow_private_hosts,
                max_backoff: Duration::from_secs(cfg.crawl.max_backoff_secs),
                offline_backoff: Duration::from_secs(cfg.crawl.offline_backoff_secs),
                idle_ping: Duration::from_secs(30),
                dns: dns.clone(),
            },
            hosts.clone(),
            pool.clone(),
            resolver.clone(),
        );
        for host in hosts.all() {
            if host.status() != "banned" {
                crawlers.ensure(&host.hostname);
            }
        }
        for host in &cfg.crawl.hosts {
            crawlers.ensure(host);
        }

        let crawl_requests = Arc::new(governor::RateLimiter::keyed(
            crate::http::crawl_request_quota(),
        ));
        let app = AppState {
            log: log.clone(),
            ring: ring.clone(),
            backfill: Arc::new(crate::http::LogBackfill::new(log.clone(), tasks_tx.clone())),
            session: SessionConfig {
                too_slow_after: Duration::from_secs(cfg.fanout.too_slow_secs),
                ping_interval: Duration::from_secs(cfg.fanout.ping_secs),
                linger: Duration::from_millis(cfg.fanout.linger_ms),
                ..SessionConfig::default()
            },
            crawlers: crawlers.clone(),
            hosts: hosts.clone(),
            subscribers: crate::fanout::Subscribers::new(),
            pool,
            admin_password: cfg.admin_password.clone(),
            allow_private_hosts: cfg.crawl.allow_private_hosts,
            dns,
            crawl_requests: crawl_requests.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            shutdown: shutdown.subscribe(),
            tasks: tasks_tx.clone(),
        };
        let limits = cfg.server.limits().with_derived_cap(Reserve {
            databases: crate::log::FILE_DESCRIPTORS,
        });
        let server_guard = tasks_tx.clone();
        let server = tokio::spawn(async move {
            let _server_guard = server_guard;
            http_server::serve(listener, router(app), "relay", limits, stop).await;
        });
        {
            let log = log.clone();
            let mut stop = shutdown.subscribe();
            let guard = tasks_tx.clone();
            tokio::spawn(async move {
                let _guard = guard;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    let log = log.clone();
                    match tokio::task::spawn_blocking(move || log.enforce_retention(now_micros()))
                        .await
                    {
                        Ok(Ok(report)) => tracing::debug!(?report, "retention"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                        Err(_) => {}
                    }
                }
            });
        }
        {
            let hosts = hosts.clone();
            let crawl_requests = crawl_requests.clone();
            let idle_after = Duration::from_secs(cfg.crawl.idle_after_secs);
            let every = (idle_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(10));
            let mut stop = shutdown.subscribe();
            // The hosts hold the log (for administrative writes): `stop`
            // waits for this task like the others.
            let guard = tasks_tx.clone();
            tokio::spawn(async move {
                let _guard = guard;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {
                            hosts.update_idle(idle_after, now_micros());
                            // Forget clients whose limit has refilled.
                            crawl_requests.retain_recent();
                        }
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            });
        }
        tracing::info!(
            %addr,
            last_seq = log.last_seq(),
            max_connections = limits.max_connections,
            "relay listening"
        );
        if cfg.admin_password.is_some() {
            tracing::info!("admin API enabled at /admin (HTTP Basic, user admin)");
        } else {
            tracing::warn!("admin API disabled: set ATRELAY_ADMIN_PASSWORD to enable /admin");
        }
        Ok(Relay {
            addr,
            log,
            ring,
            hosts,
            crawlers,
            resolver,
            shutdown,
            server,
            sequencer,
            tasks_tx,
            tasks_rx,
        })
    }

    /// Stops crawling and serving. Events accepted but not yet sequenced are
    /// not acknowledged upstream (the cursor stays behind them), so nothing is
    /// lost: the next start resumes from the persisted cursors.
    ///
    /// Returns once the log is closed: crawlers, sessions and the HTTP server
    /// are gone, the verifier threads have exited, and the sequencer has
    /// written what it had and stopped — so the same data directory can be
    /// opened again at once. The memtables are flushed on the way out, so
    /// the next start does not replay the WAL (restart-to-serving grows with
    /// the WAL left unflushed, not with the log).
    pub async fn stop(self) {
        let Relay {
            log,
            crawlers,
            hosts,
            shutdown,
            server,
            sequencer,
            tasks_tx,
            mut tasks_rx,
            ..
        } = self;
        crawlers.shutdown().await;
        for host in hosts.all() {
            if let Err(e) = hosts.persist_budget(&host) {
                tracing::warn!(host = %host.hostname, error = %e, "could not save the budget");
            }
        }
        let _ = shutdown.send(true);
        drop(tasks_tx);
        let wait_tasks = async { while tasks_rx.recv().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), wait_tasks)
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not end within 10 s; aborting the server");
            server.abort();
        }
        // The last handles on the verifier pool go with the crawlers; its
        // threads then exit, and with them the sequencer's inputs.
        drop(crawlers);
        let flushed = tokio::task::spawn_blocking(move || {
            let _ = sequencer.join();
            log.flush()
        })
        .await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "could not flush the log at stop; the next start replays its WAL");
        }
    }
}
