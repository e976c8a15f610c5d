//! Start-up and stop steps a relay and a mirror share: the listening
//! socket, the data directory and log, retention, the subscriber session
//! settings, and waiting for every task that holds the log.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::RelayConfig;
use crate::fanout::{Coalescing, Ring, SessionConfig, Subscribers};
use crate::lifecycle::{Shutdown, StopSignal, TaskGuard};
use crate::log::{Durability, EventLog, LogMemory, LogOptions, SeqRule};
use crate::repo::verify::now_micros;

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
            seqs,
        },
    )?)
}

/// The subscriber sessions' settings from `[fanout]`.
pub fn session_config(cfg: &RelayConfig) -> SessionConfig {
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

/// The firehose's subscriber registry, capped at `fanout.max_subscribers`;
/// warns at start when the server's connection cap is lower (see
/// [`warn_if_subscribers_do_not_fit`]).
pub fn firehose_subscribers(cfg: &RelayConfig) -> Subscribers {
    Subscribers::with_limit(cfg.fanout.max_subscribers)
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
/// (up to 10 s, then the server is aborted): after this, nothing but the
/// caller holds the log.
pub async fn stop_tasks(shutdown: Shutdown, server: tokio::task::JoinHandle<()>) {
    if shutdown.finish(STOP_GRACE).await.is_err() {
        tracing::warn!("some sessions did not end within 10 s; aborting the server");
        server.abort();
    }
}

/// Says so at start when the subscriber cap cannot be reached: the server's
/// connection cap (set by `server.max_connections`, or derived from the
/// open-file limit, which the process has already raised to its hard limit)
/// is below it, so subscribers past the connection cap would be refused
/// with a generic 503 before the firehose's own cap is.
pub fn warn_if_subscribers_do_not_fit(max_subscribers: usize, max_connections: usize) {
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
