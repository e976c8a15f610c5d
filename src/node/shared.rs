//! Start-up and stop steps the nodes share: the listening socket, the data
//! directory and log, the log's one writer thread, the HTTP server task,
//! retention, the subscriber session settings, and waiting for every task
//! that holds the log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_micros;
use crate::config::RelayConfig;
use crate::fanout::{Coalescing, Ring, SessionConfig, Subscribers};
use crate::http::{Firehose, LogBackfill};
use crate::lifecycle::{Shutdown, StopSignal, TaskGuard};
use crate::log::{EventLog, LogError, LogMemory, LogOptions, SeqRule};
use crate::net::fd_limit::Reserve;
use crate::net::http_server::{self, ServerLimits};

/// How long a stop waits for sessions and requests in flight before the
/// server is aborted.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why a relay or a mirror could not start.
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
    #[error("mirror.upstream: {0}")]
    Upstream(String),
}

/// Binds the server socket. Done before anything else starts: a port in
/// use is the commonest start failure, and failing after threads are
/// running would leave them holding the log while the process exits
/// (RocksDB then crashes in its static destructors).
pub async fn bind(cfg: &RelayConfig) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let listen = cfg.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| StartError::Bind { addr: listen, err })?;
    let addr = listener
        .local_addr()
        .map_err(|err| StartError::Bind { addr: listen, err })?;
    Ok((listener, addr))
}

/// Creates the data directory and opens the log in it, with `seqs`: the
/// relay's own gap-free seqs, or a mirror's upstream ones.
pub fn open_log(cfg: &RelayConfig, seqs: SeqRule) -> Result<EventLog, StartError> {
    std::fs::create_dir_all(&cfg.server.data_dir).map_err(|err| StartError::DataDir {
        path: cfg.server.data_dir.display().to_string(),
        err,
    })?;
    Ok(EventLog::open(
        &cfg.server.data_dir.join("log"),
        LogOptions {
            durability: cfg.log.durability,
            retention_max_age: (cfg.log.retention_hours > 0)
                .then(|| Duration::from_secs(cfg.log.retention_hours * 3600)),
            retention_max_bytes: (cfg.log.retention_max_mib > 0)
                .then(|| cfg.log.retention_max_mib * 1024 * 1024),
            memory: LogMemory {
                memtable_bytes: cfg.log.memtable_mib << 20,
                block_cache_bytes: cfg.log.block_cache_mib << 20,
            },
            seqs,
        },
    )?)
}

/// The subscriber sessions' settings from `[fanout]`.
fn session_config(cfg: &RelayConfig) -> SessionConfig {
    SessionConfig {
        too_slow_after: Duration::from_secs(cfg.fanout.too_slow_secs),
        ping_interval: Duration::from_secs(cfg.fanout.ping_secs),
        ..SessionConfig::default()
    }
}

/// The firehose's ring from `[fanout]`, continuing a log whose last seq is
/// `last_seq`, with its wake-ups coalesced as configured.
pub fn firehose_ring(cfg: &RelayConfig, last_seq: u64) -> Ring {
    Ring::with_coalescing(
        cfg.fanout.ring_capacity,
        last_seq,
        Coalescing {
            max_delay: Duration::from_millis(cfg.fanout.coalesce_max_ms),
            writes_per_sec: cfg.fanout.coalesce_writes_per_sec,
        },
    )
}

/// A `subscribeRepos` endpoint over `ring` and `log`, its sessions (and
/// their log reads) holding `shutdown`'s guards so the stop waits for them.
pub fn firehose(
    ring: Ring,
    log: EventLog,
    session: SessionConfig,
    subscribers: Subscribers,
    shutdown: &Shutdown,
) -> Firehose {
    Firehose {
        ring,
        backfill: Arc::new(LogBackfill::new(log, shutdown.guard())),
        session,
        subscribers,
        shutdown: shutdown.signal(),
        tasks: shutdown.guard(),
    }
}

/// The `subscribeRepos` endpoint of a relay or a mirror, from `[fanout]`:
/// session settings, and the subscriber registry capped at
/// `fanout.max_subscribers` (the start warns when the server's connection
/// cap is lower: see [`warn_if_subscribers_do_not_fit`]).
pub fn configured_firehose(
    cfg: &RelayConfig,
    ring: Ring,
    log: EventLog,
    shutdown: &Shutdown,
) -> Firehose {
    firehose(
        ring,
        log,
        session_config(cfg),
        Subscribers::with_limit(cfg.fanout.max_subscribers),
        shutdown,
    )
}

/// Enforces retention once a minute until `stop`, holding `guard` (the
/// "every task gone" channel) meanwhile.
pub fn spawn_retention(log: EventLog, mut stop: StopSignal, guard: TaskGuard) {
    tokio::spawn(async move {
        let _guard = guard;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stop.stopping() => return,
            }
            let log = log.clone();
            match tokio::task::spawn_blocking(move || log.enforce_retention(now_micros())).await {
                Ok(Ok(report)) => tracing::debug!(?report, "retention"),
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                Err(_) => {}
            }
        }
    });
}

/// Tells every task to stop and waits until each has dropped its guard
/// (up to [`STOP_GRACE`], then the server is aborted and `lingering`, what
/// was still running, is named in the warning): after this, nothing but
/// the caller holds the log.
pub async fn stop_tasks(
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
    lingering: &'static str,
) {
    if shutdown.finish(STOP_GRACE).await.is_err() {
        tracing::warn!(
            "{lingering} did not end within {} s; aborting the server",
            STOP_GRACE.as_secs()
        );
        server.abort();
    }
}

/// Runs `router` on `listener` until `shutdown` begins, holding one of its
/// guards, so the stop waits for the server (and with it every connection)
/// to be gone. `server` names it in metrics and logs.
pub fn spawn_server(
    shutdown: &Shutdown,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    server: &'static str,
    limits: ServerLimits,
) -> tokio::task::JoinHandle<()> {
    let (guard, stop) = (shutdown.guard(), shutdown.signal());
    tokio::spawn(async move {
        let _guard = guard;
        http_server::serve(listener, router, server, limits, stop).await;
    })
}

/// The relay's or mirror's server limits from `[server]`, the connection
/// cap derived with the log's descriptors set aside; warns when the
/// subscriber cap does not fit under it.
pub fn server_limits(cfg: &RelayConfig) -> ServerLimits {
    let limits = cfg.server.limits().with_derived_cap(Reserve {
        databases: crate::log::FILE_DESCRIPTORS,
    });
    warn_if_subscribers_do_not_fit(cfg.fanout.max_subscribers, limits.max_connections);
    limits
}

/// Starts the log's one writer (the relay's sequencer, the mirror's
/// writer) on its own thread named `name`. What `run` returns is not
/// retryable (transient failures are retried inside it): corruption or a
/// bug. Continuing would let the state run ahead of the log, so the
/// process stops, saying `fatal` and what to do; a restart resumes from
/// the durable state.
pub fn spawn_log_writer(
    name: &str,
    fatal: &'static str,
    run: impl FnOnce() -> Result<(), LogError> + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Err(e) = run() {
                tracing::error!(error = %e, "{fatal}. {}", fatal_advice(&e));
                std::process::abort();
            }
        })
        .map_err(StartError::Threads)
}

/// What to do after the log's writer stopped the process.
fn fatal_advice(e: &LogError) -> &'static str {
    use crate::log::LogError as E;
    match e {
        E::Corrupt(_) | E::SchemaVersion { .. } => {
            "The data directory is damaged or from another version: restore it from a backup, or move it away and start with a fresh one (the relay then re-crawls its hosts from their current cursors)."
        }
        E::Gap { .. } | E::InvalidArgument(_) => {
            "This is a bug in the relay: please report it with this log. Nothing acknowledged is lost; restarting resumes from the durable state."
        }
        _ => "Restarting resumes from the durable state; if it happens again, check the disk holding the data directory.",
    }
}

/// Waits for the log's writer thread to write what it has and exit, then
/// flushes the memtables, so the next start does not replay the WAL
/// (restart-to-serving grows with the WAL left unflushed, not with the
/// log). Returns once the log is closed but for the caller's handle.
pub async fn join_writer_and_flush(writer: std::thread::JoinHandle<()>, log: EventLog) {
    let flushed = tokio::task::spawn_blocking(move || {
        let _ = writer.join();
        log.flush()
    })
    .await;
    if let Ok(Err(e)) = flushed {
        tracing::warn!(error = %e, "could not flush the log at stop; the next start replays its WAL");
    }
}

/// Says so at start when the subscriber cap cannot be reached: the server's
/// connection cap (set by `server.max_connections`, or derived from the
/// open-file limit, which the process has already raised to its hard limit)
/// is below it, so subscribers past the connection cap would be refused
/// with a generic 503 before the firehose's own cap is.
fn warn_if_subscribers_do_not_fit(max_subscribers: usize, max_connections: usize) {
    if max_subscribers == 0 || max_subscribers <= max_connections {
        return;
    }
    let limit = crate::net::fd_limit::soft_limit().ok();
    tracing::warn!(
        max_subscribers,
        max_connections,
        open_file_limit = limit,
        "fanout.max_subscribers is above what the server can hold: raise the hard open-file \
         limit (e.g. systemd LimitNOFILE, ulimit -Hn) to about max_subscribers * 1.4 + 1000, \
         or lower fanout.max_subscribers"
    );
}
