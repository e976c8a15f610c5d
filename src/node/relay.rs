//! Starting and stopping a relay: wires the log, ring, resolver, sequencer,
//! verifier pool, crawlers, HTTP server and retention together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::shared::{
    bind, configured_firehose, firehose_ring, join_writer_and_flush, open_log, server_limits,
    spawn_log_writer, spawn_retention, spawn_server, stop_tasks, StartError,
};
use crate::clock::now_micros;
use crate::config::RelayConfig;
use crate::control::{Clock, Policy};
use crate::fanout::Ring;
use crate::http::{router, AppState};
use crate::identity::{Resolver, ResolverConfig};
use crate::lifecycle::Shutdown;
use crate::log::{EventLog, HostStatus, SeqRule};
use crate::net::metrics::SERVER_RELAY;
use crate::net::{Dns, HostName, Outbound};
use crate::relay::crawler::{CrawlerConfig, Crawlers};
use crate::relay::hosts::{Hosts, RefreshBudget};
use crate::relay::pool::{Pool, PoolConfig, MAX_DISPATCH};
use crate::relay::sequencer;

/// What tests may replace when starting a relay.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The clock budgets read (tests advance it to reset budget windows).
    pub clock: Clock,
    /// Name resolution for every outbound connection (tests pin names to
    /// addresses; the SSRF policy is set from the config).
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
    /// Every task that holds the log holds one of its guards; `stop`
    /// signals them and waits for the rest.
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
    sequencer: std::thread::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay on the current tokio runtime.
    pub async fn start(cfg: &RelayConfig) -> Result<Relay, StartError> {
        Relay::start_with(cfg, StartOptions::default()).await
    }

    /// Starts a relay with a test clock or DNS pins.
    pub async fn start_with(cfg: &RelayConfig, opts: StartOptions) -> Result<Relay, StartError> {
        let StartOptions { clock, dns } = opts;
        // Bind before anything else starts (see `bind`).
        let (listener, addr) = bind(cfg).await?;
        let log = open_log(cfg, SeqRule::Contiguous)?;
        let ring = firehose_ring(cfg, log.last_seq());
        // One SSRF policy for every outbound connection: private answers
        // only when the operator allows private hosts; the PLC directory's
        // host is the operator's own choice and always allowed.
        let plc_host = reqwest::Url::parse(&cfg.identity.plc_url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()));
        let dns = dns.with_policy(cfg.crawl.allow_private_hosts, plc_host);
        let resolver = Resolver::with_dns(
            ResolverConfig {
                plc_url: cfg.identity.plc_url.clone(),
                allow_private: cfg.crawl.allow_private_hosts,
                ttl: Duration::from_secs(cfg.identity.cache_ttl_secs),
                capacity: cfg.identity.cache_capacity,
                timeout: Duration::from_secs(cfg.identity.timeout_secs),
                ..ResolverConfig::default()
            },
            dns.clone(),
        );
        let policy = Policy::load(&log, cfg)?;
        let hosts = Hosts::load(
            &log,
            policy.clone(),
            clock.clone(),
            RefreshBudget {
                per_second: cfg.identity.refresh_per_host_per_sec,
                burst: cfg.identity.refresh_burst_per_host,
            },
        )?;

        // Batches of up to MAX_DISPATCH events each: at most 8,192 accepted
        // events wait for the sequencer, as many as before batching.
        let (seq_tx, seq_rx) = crossbeam::channel::bounded(8192 / MAX_DISPATCH);
        let shutdown = Shutdown::new();
        let sequencer = {
            // Transient failures (descriptors, disk space) are retried
            // inside `run`; what comes out stops the relay, or verifier
            // state would run ahead of the log.
            let (log, ring, stop) = (log.clone(), ring.clone(), shutdown.signal());
            spawn_log_writer(
                "atrelay-sequencer",
                "the event log cannot be written: stopping the relay",
                move || sequencer::run(log, ring, seq_rx, stop),
            )?
        };
        let pool = Pool::start(
            &PoolConfig {
                threads: cfg.verifier_threads(),
                lenient: cfg.verify.lenient,
                account_cache_capacity: cfg.verify.account_cache_capacity,
                refresh_interval: Duration::from_secs(cfg.identity.refresh_interval_secs),
                refresh_burst: cfg.identity.refresh_burst_per_did,
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
            if host.status() != HostStatus::Banned {
                crawlers.ensure(&host.name);
            }
        }
        for host in &cfg.crawl.hosts {
            match HostName::parse(host) {
                Ok(name) => {
                    crawlers.ensure(&name);
                }
                // `validate` refuses these; a caller that skipped it is told.
                Err(e) => tracing::error!(%host, error = %e, "not crawling crawl.hosts entry"),
            }
        }

        let crawl_requests = Arc::new(governor::RateLimiter::keyed(
            crate::http::crawl_request_quota(),
        ));
        let admin_failures = Arc::new(crate::http::auth_limit::AttemptLimiter::new(
            crate::http::auth_limit::ADMIN_FAILURE_BURST,
            crate::http::auth_limit::ADMIN_FAILURE_PERIOD,
        ));
        let app = AppState {
            log: log.clone(),
            crawlers: crawlers.clone(),
            hosts: hosts.clone(),
            pool,
            admin_password: cfg.admin_password.clone(),
            allow_private_hosts: cfg.crawl.allow_private_hosts,
            dns: dns.clone(),
            crawl_requests: crawl_requests.clone(),
            admin_failures: admin_failures.clone(),
            outbound: Outbound::new(dns.clone(), Duration::from_secs(10), "relay"),
            firehose: configured_firehose(cfg, ring.clone(), log.clone(), &shutdown),
        };
        let limits = server_limits(cfg);
        let server = spawn_server(&shutdown, listener, router(app), SERVER_RELAY, limits);
        spawn_retention(log.clone(), shutdown.signal(), shutdown.guard());
        {
            let hosts = hosts.clone();
            let crawl_requests = crawl_requests.clone();
            let admin_failures = admin_failures.clone();
            let idle_after = Duration::from_secs(cfg.crawl.idle_after_secs);
            let every = (idle_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(10));
            let mut stop = shutdown.signal();
            // The hosts hold the log (for administrative writes): `stop`
            // waits for this task like the others.
            let guard = shutdown.guard();
            tokio::spawn(async move {
                let _guard = guard;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {
                            hosts.update_idle(idle_after, now_micros());
                            // Forget clients whose limit has refilled.
                            crawl_requests.retain_recent();
                            admin_failures.retain_recent();
                        }
                        _ = stop.stopping() => return,
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
            ..
        } = self;
        crawlers.shutdown().await;
        for host in hosts.all() {
            if let Err(e) = hosts.persist_budget(&host) {
                tracing::warn!(host = %host.hostname, error = %e, "could not save the budget");
            }
        }
        stop_tasks(shutdown, server, "some sessions").await;
        // The last handles on the verifier pool go with the crawlers; its
        // threads then exit, and with them the sequencer's inputs.
        drop(crawlers);
        join_writer_and_flush(sequencer, log).await;
    }
}
