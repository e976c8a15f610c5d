//! The relay's schema: its sections, their keys and their defaults (which
//! `config/relay.toml` documents). Separate from loading (`relay_load`) so
//! the keys and their meaning read on their own.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{server_limits, Secret};
use crate::log::Durability;

/// Which hosts `requestCrawl` admits (`crawl.mode`; the control plane's
/// policy holds the live mode, which the admin API changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrawlMode {
    /// Any host passing the public checks.
    Open,
    /// Only allowlisted hosts; others are recorded as pending.
    Allowlist,
}

impl CrawlMode {
    /// The config and admin API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CrawlMode::Open => "open",
            CrawlMode::Allowlist => "allowlist",
        }
    }

    /// Parses `open` / `allowlist`.
    pub fn parse(s: &str) -> Option<CrawlMode> {
        [CrawlMode::Open, CrawlMode::Allowlist]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The whole relay configuration. Every field has a default; see
/// `config/relay.toml` for each key's meaning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    pub server: ServerConfig,
    pub identity: IdentityConfig,
    pub crawl: CrawlConfig,
    pub verify: VerifyConfig,
    pub log: LogConfig,
    pub fanout: FanoutConfig,
    pub budget: BudgetConfig,
    pub mirror: MirrorConfig,
    /// The admin API's password, from `ATRELAY_ADMIN_PASSWORD` only (never a
    /// file: secrets stay out of config files). `None` disables `/admin`.
    #[serde(skip)]
    pub admin_password: Option<Secret>,
}

/// Listening sockets and storage location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTP + websocket listener (XRPC, subscribeRepos).
    pub listen: SocketAddr,
    /// Prometheus metrics listener; empty disables it.
    pub metrics_listen: String,
    /// Where the RocksDB log and state live.
    pub data_dir: PathBuf,
    /// Seconds a connection may take to send a complete request head.
    pub header_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may stay idle between requests.
    pub idle_timeout_secs: u64,
    /// Most open inbound connections (websockets included); 0 = derived
    /// from the open-file limit.
    pub max_connections: usize,
}

impl ServerConfig {
    /// The HTTP server's limits (`max_connections` 0 still means derived).
    pub fn limits(&self) -> crate::net::http_server::ServerLimits {
        server_limits(
            self.header_read_timeout_secs,
            self.idle_timeout_secs,
            self.max_connections,
        )
    }
}

/// DID resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// PLC directory base URL.
    pub plc_url: String,
    /// How long a resolved DID document is trusted, in seconds.
    pub cache_ttl_secs: u64,
    /// Most DID documents kept in memory.
    pub cache_capacity: usize,
    /// Per-request timeout, in seconds.
    pub timeout_secs: u64,
    /// Forced re-resolutions of one DID (after a signature or host
    /// mismatch, or an `#identity`): `refresh_burst_per_did` at once, then
    /// one per this many seconds.
    pub refresh_interval_secs: u64,
    /// See `refresh_interval_secs`.
    pub refresh_burst_per_did: u32,
    /// Forced re-resolutions made on one host's behalf, per second.
    pub refresh_per_host_per_sec: u32,
    /// How many forced re-resolutions one host may ask for at once.
    pub refresh_burst_per_host: u32,
}

/// Which hosts are crawled and how they are dialed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrawlConfig {
    /// Hostnames (optionally `host:port`) subscribed to at start.
    pub hosts: Vec<String>,
    /// Allow loopback/private upstreams, dialed over plain ws:// and http://
    /// (development and tests only).
    pub allow_private_hosts: bool,
    /// Longest wait between reconnection attempts, in seconds.
    pub max_backoff_secs: u64,
    /// Longest wait between reconnection attempts once a host is `offline`
    /// (three failures in a row), in seconds; a requestCrawl from the host
    /// cuts it short.
    pub offline_backoff_secs: u64,
    /// A connected host with no events for this long is reported `idle`, in
    /// seconds; its next event makes it `active` again.
    pub idle_after_secs: u64,
    /// `open` (any host passing the public checks is crawled) or `allowlist`
    /// (only listed hosts; other requests wait for the operator). Used until
    /// an operator sets the mode through the admin API (stored, wins after).
    pub mode: CrawlMode,
    /// Hostnames or domain suffixes crawled in `allowlist` mode (besides the
    /// ones the admin API adds).
    pub allowlist: Vec<String>,
    /// Domain suffixes never crawled (besides the admin API's bans).
    pub banned_domains: Vec<String>,
    /// Most new hosts `requestCrawl` admits per UTC day; 0 = no limit.
    pub new_hosts_per_day: u64,
}

/// Per-host event budgets and account limits. An hourly or daily budget
/// spent pauses the host (`throttled`) until the window resets at the top of
/// the UTC hour or day; nothing is dropped, the host's cursor resumes. The
/// hourly and daily budgets grow with the account limit N:
/// `per_hour + per_hour_per_account * N`, `per_day + per_day_per_account * N`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Accounts a host may have; events of accounts first seen beyond it are
    /// dropped until the limit rises or a slot frees. 0 = no limit.
    pub accounts: u64,
    /// Events per second (a smooth pace, not a pause); 0 = no limit.
    pub per_second: u64,
    /// Hourly budget base; with `per_hour_per_account` both 0, no limit.
    pub per_hour: u64,
    /// Hourly budget added per allowed account.
    pub per_hour_per_account: u64,
    /// Daily budget base; with `per_day_per_account` both 0, no limit.
    pub per_day: u64,
    /// Daily budget added per allowed account.
    pub per_day_per_account: u64,
    /// Domain suffixes of trusted hosts (large operators), which get the
    /// `trusted_*` account limit and per-second rate instead.
    pub trusted_suffixes: Vec<String>,
    /// Account limit of trusted hosts (their budgets follow the formulas).
    pub trusted_accounts: u64,
    /// Events per second of trusted hosts; 0 = no limit.
    pub trusted_per_second: u64,
}

/// Event verification (defaults: strict, one thread per core).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Accept pre-Sync-1.1 commits whose ops lack `prev`, without inversion.
    pub lenient: bool,
    /// Verifier threads; 0 means one per core.
    pub workers: usize,
    /// Accounts whose state (host, status, rev, commit, data) the verifier
    /// threads keep in memory, all threads together; the rest is read from
    /// the log on demand. About 350 bytes each.
    pub account_cache_capacity: usize,
}

/// The default `verify.account_cache_capacity`: 131,072 accounts, about
/// 45 MB. A miss costs one read of the accounts column family (a few
/// microseconds), so the cache need only hold the active accounts, not all
/// of them.
pub const DEFAULT_ACCOUNT_CACHE_CAPACITY: usize = 131_072;

/// The smallest `verify.account_cache_capacity` accepted.
pub const MIN_ACCOUNT_CACHE_CAPACITY: usize = 1_024;

impl Default for VerifyConfig {
    fn default() -> VerifyConfig {
        VerifyConfig {
            lenient: false,
            workers: 0,
            account_cache_capacity: DEFAULT_ACCOUNT_CACHE_CAPACITY,
        }
    }
}

/// The sequenced log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `fsync` (WAL synced per group commit) or `buffered` (survives a process
    /// crash, not a power loss).
    pub durability: Durability,
    /// Events older than this are dropped, in hours; 0 keeps them by age.
    pub retention_hours: u64,
    /// Events beyond this total size are dropped, in MiB; 0 means no size limit.
    pub retention_max_mib: u64,
    /// One memtable of the events and accounts column families, in MiB (the
    /// memtables hold at most five times this plus 16 MiB).
    pub memtable_mib: usize,
    /// RocksDB's block caches together, in MiB.
    pub block_cache_mib: usize,
}

/// Subscriber fan-out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FanoutConfig {
    /// Frames kept in memory for live subscribers (a power of two).
    pub ring_capacity: usize,
    /// A subscriber that consumes nothing for this long (while there is
    /// something to send it) is dropped with `ConsumerTooSlow`, in seconds;
    /// see `fanout::session` for how that is measured.
    pub too_slow_secs: u64,
    /// Idle ping interval, in seconds.
    pub ping_secs: u64,
    /// Longest a caught-up subscriber's wake-up may be deferred so that one
    /// wake and one socket write carry several events, in milliseconds; 0 =
    /// wake on every publish. See `fanout::Coalescing`.
    pub coalesce_max_ms: u64,
    /// Socket writes per second the caught-up subscribers together aim to
    /// stay near: wakes are `waiting / coalesce_writes_per_sec` apart, at
    /// most `coalesce_max_ms`; 0 = always `coalesce_max_ms`.
    pub coalesce_writes_per_sec: u64,
    /// Most concurrent `subscribeRepos` subscribers; beyond it the upgrade
    /// is answered 503 with a clear error. 0 = no cap of its own (the
    /// server's connection cap still applies).
    pub max_subscribers: usize,
}

/// The fan-out tier: following one relay's firehose instead of crawling
/// hosts (`crate::mirror`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorConfig {
    /// The relay to mirror (`wss://relay.example`; `ws`, `wss`, `http`,
    /// `https`); empty runs a relay.
    pub upstream: String,
    /// On the first start (an empty log), replay the upstream's whole window
    /// (`cursor=0`) rather than start at its live head.
    pub backfill: bool,
    /// Longest wait between reconnects to the upstream, in seconds.
    pub max_backoff_secs: u64,
    /// Longest a passed-through query may take upstream, in seconds.
    pub proxy_timeout_secs: u64,
}

impl MirrorConfig {
    /// Whether this process is a mirror.
    pub fn enabled(&self) -> bool {
        !self.upstream.is_empty()
    }
}

impl Default for MirrorConfig {
    fn default() -> MirrorConfig {
        MirrorConfig {
            upstream: String::new(),
            backfill: false,
            max_backoff_secs: 60,
            proxy_timeout_secs: 30,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2470)),
            metrics_listen: "127.0.0.1:2471".into(),
            data_dir: PathBuf::from("./data/relay"),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 0,
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        IdentityConfig {
            plc_url: "https://plc.directory".into(),
            cache_ttl_secs: 3600,
            cache_capacity: 1_000_000,
            timeout_secs: 10,
            refresh_interval_secs: 30,
            refresh_burst_per_did: 3,
            refresh_per_host_per_sec: 10,
            refresh_burst_per_host: 100,
        }
    }
}

impl Default for CrawlConfig {
    fn default() -> CrawlConfig {
        CrawlConfig {
            hosts: Vec::new(),
            allow_private_hosts: false,
            max_backoff_secs: 60,
            offline_backoff_secs: 600,
            idle_after_secs: 3600,
            mode: CrawlMode::Open,
            allowlist: Vec::new(),
            banned_domains: Vec::new(),
            new_hosts_per_day: 50,
        }
    }
}

impl BudgetConfig {
    /// No limits at all: benchmarks and load tests, where the relay itself
    /// is what is measured.
    pub fn unlimited() -> BudgetConfig {
        BudgetConfig {
            accounts: 0,
            per_second: 0,
            per_hour: 0,
            per_hour_per_account: 0,
            per_day: 0,
            per_day_per_account: 0,
            trusted_suffixes: Vec::new(),
            trusted_accounts: 0,
            trusted_per_second: 0,
        }
    }
}

impl Default for BudgetConfig {
    /// The current network's limits (digest §2.8).
    fn default() -> BudgetConfig {
        BudgetConfig {
            accounts: 100,
            per_second: 50,
            per_hour: 2_500,
            per_hour_per_account: 1,
            per_day: 20_000,
            per_day_per_account: 10,
            trusted_suffixes: Vec::new(),
            trusted_accounts: 100_000,
            trusted_per_second: 5_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            durability: Durability::Fsync,
            retention_hours: 72,
            retention_max_mib: 0,
            memtable_mib: 64,
            block_cache_mib: 192,
        }
    }
}

impl Default for FanoutConfig {
    fn default() -> FanoutConfig {
        let default_coalescing = crate::fanout::Coalescing::default();
        FanoutConfig {
            ring_capacity: 65_536,
            too_slow_secs: 30,
            ping_secs: 30,
            coalesce_max_ms: default_coalescing.max_delay.as_millis() as u64,
            coalesce_writes_per_sec: default_coalescing.writes_per_sec,
            max_subscribers: 10_000,
        }
    }
}
