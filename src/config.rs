//! Typed relay configuration: built-in defaults, then `config/relay.toml`-style
//! files, then `ATRELAY_<SECTION>_<KEY>` environment variables, then command-line
//! flags. Validated once at start so a bad value stops the relay with a message
//! naming the key, instead of failing later at run time.
//!
//! ```
//! use atrelay::config::RelayConfig;
//! let cfg = RelayConfig::load(None, std::iter::empty::<(String, String)>()).unwrap();
//! assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:2470");
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("config file {path}: {err}")]
    Parse { path: PathBuf, err: String },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("config key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
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

/// A secret string: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
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

/// [`crate::net::http_server::ServerLimits`] from the `[server]` keys every
/// config shares.
pub fn server_limits(
    header_read_timeout_secs: u64,
    idle_timeout_secs: u64,
    max_connections: usize,
) -> crate::net::http_server::ServerLimits {
    crate::net::http_server::ServerLimits {
        header_read_timeout: std::time::Duration::from_secs(header_read_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(idle_timeout_secs),
        max_connections,
    }
}

/// Checks the `[server]` timeouts every config shares: each must be
/// positive (and at most a day: a larger value is a unit mistake).
pub fn validate_server_timeouts(
    header_read_timeout_secs: u64,
    idle_timeout_secs: u64,
) -> Result<(), ConfigError> {
    for (key, secs) in [
        ("server.header_read_timeout_secs", header_read_timeout_secs),
        ("server.idle_timeout_secs", idle_timeout_secs),
    ] {
        if secs == 0 || secs > 86_400 {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be between 1 and 86400 seconds".into(),
            });
        }
    }
    Ok(())
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

impl RelayConfig {
    /// Defaults, overlaid by `file` (if given), then by `ATRELAY_*` variables
    /// from `env` (pass `std::env::vars()`), then validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RelayConfig, ConfigError> {
        let (admin_password, env) = take_secret(env, ADMIN_PASSWORD_VAR);
        if let Some(password) = &admin_password {
            check_admin_password(ADMIN_PASSWORD_VAR, password)?;
        }
        // PDS mode's variables are the PDS config's business.
        let env = env
            .into_iter()
            .filter(|(var, _)| !var.starts_with(PDS_ENV_PREFIX));
        let table = layer_table(RelayConfig::default(), file, env, "ATRELAY_")?;
        // The enumerations are parsed by serde, but a value out of the set
        // is refused first, with the message every other bad value gets.
        check_choice(
            &table,
            "log.durability",
            |s| Durability::parse(s).is_some(),
            "must be \"fsync\" or \"buffered\"",
        )?;
        check_choice(
            &table,
            "crawl.mode",
            |s| CrawlMode::parse(s).is_some(),
            "must be \"open\" or \"allowlist\"",
        )?;
        let mut cfg: RelayConfig = from_table(table, file)?;
        cfg.admin_password = admin_password;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values serde cannot: URLs, sizes, enumerations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        let url = &self.identity.plc_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("identity.plc_url", "must be an http(s) URL"));
        }
        if !self.server.metrics_listen.is_empty()
            && self.server.metrics_listen.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                "server.metrics_listen",
                "must be host:port (an IP address) or empty",
            ));
        }
        validate_server_timeouts(
            self.server.header_read_timeout_secs,
            self.server.idle_timeout_secs,
        )?;
        if self.log.memtable_mib < 4 || self.log.block_cache_mib < 8 {
            return Err(invalid(
                "log",
                "memtable_mib must be at least 4 and block_cache_mib at least 8",
            ));
        }
        if self.verify.account_cache_capacity < MIN_ACCOUNT_CACHE_CAPACITY {
            return Err(invalid(
                "verify.account_cache_capacity",
                &format!("must be at least {MIN_ACCOUNT_CACHE_CAPACITY}"),
            ));
        }
        let cap = self.fanout.ring_capacity;
        if cap < 16 || !cap.is_power_of_two() {
            return Err(invalid(
                "fanout.ring_capacity",
                "must be a power of two, at least 16",
            ));
        }
        if self.fanout.coalesce_max_ms > 100 {
            return Err(invalid(
                "fanout.coalesce_max_ms",
                "must be at most 100 (it is added latency)",
            ));
        }
        if self.fanout.too_slow_secs == 0 || self.fanout.ping_secs == 0 {
            return Err(invalid(
                "fanout",
                "too_slow_secs and ping_secs must be positive",
            ));
        }
        if self.mirror.enabled() {
            let scheme_ok = reqwest::Url::parse(&self.mirror.upstream).is_ok_and(|u| {
                matches!(u.scheme(), "ws" | "wss" | "http" | "https") && u.host_str().is_some()
            });
            if !scheme_ok {
                return Err(invalid(
                    "mirror.upstream",
                    "must be a ws://, wss://, http:// or https:// URL with a host, e.g. wss://relay.example",
                ));
            }
        }
        if self.mirror.max_backoff_secs == 0 || self.mirror.proxy_timeout_secs == 0 {
            return Err(invalid(
                "mirror",
                "max_backoff_secs and proxy_timeout_secs must be positive",
            ));
        }
        if self.identity.cache_capacity == 0 || self.identity.timeout_secs == 0 {
            return Err(invalid(
                "identity",
                "cache_capacity and timeout_secs must be positive",
            ));
        }
        if self.identity.refresh_per_host_per_sec == 0
            || self.identity.refresh_burst_per_host == 0
            || self.identity.refresh_burst_per_did == 0
        {
            return Err(invalid(
                "identity",
                "refresh_per_host_per_sec, refresh_burst_per_host and refresh_burst_per_did must be positive",
            ));
        }
        if let Some((bad, e)) = self
            .crawl
            .hosts
            .iter()
            .find_map(|h| crate::net::HostName::parse(h).err().map(|e| (h, e)))
        {
            return Err(invalid("crawl.hosts", &format!("{bad:?}: {e}")));
        }
        if self.crawl.idle_after_secs == 0 {
            return Err(invalid("crawl.idle_after_secs", "must be positive"));
        }
        if self.crawl.max_backoff_secs == 0 {
            return Err(invalid("crawl.max_backoff_secs", "must be positive"));
        }
        for (key, list) in [
            ("crawl.allowlist", &self.crawl.allowlist),
            ("crawl.banned_domains", &self.crawl.banned_domains),
            ("budget.trusted_suffixes", &self.budget.trusted_suffixes),
        ] {
            if let Some(bad) = list
                .iter()
                .find(|e| crate::net::normalize_domain(e).is_err())
            {
                return Err(invalid(
                    key,
                    &format!("{bad:?} is not a hostname or domain"),
                ));
            }
        }
        Ok(())
    }

    /// Verifier threads to run.
    pub fn verifier_threads(&self) -> usize {
        match self.verify.workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
    }
}

/// Shortest admin password (`ATRELAY_ADMIN_PASSWORD`,
/// `ATRELAY_PDS_ADMIN_PASSWORD`) accepted, in characters: the admin APIs
/// face the network, and the README's `head -c 24 /dev/urandom | base64`
/// gives 32.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 16;

/// Checks the admin password taken from `var`: a set variable enables an
/// admin API, so it must hold a real password. Blank (empty or only white
/// space) or shorter than [`MIN_ADMIN_PASSWORD_CHARS`] is a configuration
/// error, never a silently open or silently disabled admin API.
pub fn check_admin_password(var: &str, password: &Secret) -> Result<(), ConfigError> {
    let fix = format!(
        "set a password of at least {MIN_ADMIN_PASSWORD_CHARS} characters (e.g. from `head -c 24 /dev/urandom | base64`), or unset {var} to run without the admin API"
    );
    let reason = if password.0.trim().is_empty() {
        format!("blank (empty or only white space): {fix}")
    } else if password.0.chars().count() < MIN_ADMIN_PASSWORD_CHARS {
        format!("too short: {fix}")
    } else {
        return Ok(());
    };
    Err(ConfigError::Env {
        var: var.to_owned(),
        reason,
    })
}

/// Splits the secret `var` from the other variables, so it never passes
/// through the config layers (or their error messages). Set but empty is
/// still set (`Some("")`): [`check_admin_password`] refuses it.
pub fn take_secret(
    env: impl IntoIterator<Item = (String, String)>,
    var: &str,
) -> (Option<Secret>, Vec<(String, String)>) {
    let mut secret = None;
    let rest = env
        .into_iter()
        .filter_map(|(name, value)| {
            if name == var {
                secret = Some(Secret(value));
                None
            } else {
                Some((name, value))
            }
        })
        .collect();
    (secret, rest)
}

/// Prefix of PDS mode's environment variables (`ATRELAY_PDS_<SECTION>_<KEY>`).
pub const PDS_ENV_PREFIX: &str = "ATRELAY_PDS_";

/// `defaults`, overlaid by the TOML `file` (if given), then by
/// `<prefix><SECTION>_<KEY>` variables from `env`: the layering every
/// atrelay config shares. Unknown keys in either layer are errors.
pub fn load_layers<T: Serialize + serde::de::DeserializeOwned>(
    defaults: T,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
) -> Result<T, ConfigError> {
    from_table(layer_table(defaults, file, env, prefix)?, file)
}

/// The layers of [`load_layers`] merged into one table, before it is typed.
fn layer_table<T: Serialize>(
    defaults: T,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
) -> Result<toml::Table, ConfigError> {
    let mut table = toml::Table::try_from(defaults).map_err(|e| ConfigError::Parse {
        path: PathBuf::from("<defaults>"),
        err: e.to_string(),
    })?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_owned(),
            err,
        })?;
        let overlay: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    err: e.to_string(),
                })?;
        merge(&mut table, overlay, path)?;
    }
    for (var, value) in env {
        apply_env(&mut table, prefix, &var, &value)?;
    }
    Ok(table)
}

/// Types the merged `table`; an error names `file` (or the environment).
fn from_table<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: file.map_or_else(|| PathBuf::from("<environment>"), Path::to_owned),
            err: e.to_string(),
        })
}

/// Refuses `key` (`section.name`) in the merged `table` when it is text
/// that `known` rejects, as [`ConfigError::Invalid`] with `reason`. (A value
/// of another type is left to serde, which names the type it expected.)
fn check_choice(
    table: &toml::Table,
    key: &'static str,
    known: fn(&str) -> bool,
    reason: &str,
) -> Result<(), ConfigError> {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    let value = table
        .get(section)
        .and_then(|s| s.get(name))
        .and_then(toml::Value::as_str);
    match value {
        Some(v) if !known(v) => Err(ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Overlays `overlay` onto `base`, refusing keys the defaults do not have.
fn merge(base: &mut toml::Table, overlay: toml::Table, path: &Path) -> Result<(), ConfigError> {
    for (section, value) in overlay {
        let Some(toml::Value::Table(target)) = base.get_mut(&section) else {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                err: format!("unknown section [{section}]"),
            });
        };
        let toml::Value::Table(entries) = value else {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                err: format!("[{section}] must be a table"),
            });
        };
        for (key, v) in entries {
            if !target.contains_key(&key) {
                let hint = match (section.as_str(), key.as_str()) {
                    ("fanout", "linger_ms") => {
                        " (replaced by fanout.coalesce_max_ms: see config/relay.toml)"
                    }
                    _ => "",
                };
                return Err(ConfigError::Parse {
                    path: path.to_owned(),
                    err: format!("unknown key {section}.{key}{hint}"),
                });
            }
            target.insert(key, v);
        }
    }
    Ok(())
}

/// `ATRELAY_*` variables that are not config keys: the log filter (read by
/// `atrelay serve`), the test vectors' location (read by the test suite), and
/// the interop stage's install cache and binary (read by `tests/interop/run`,
/// whose relay inherits its environment).
pub const NOT_CONFIG: [&str; 4] = [
    "ATRELAY_LOG",
    "ATRELAY_VECTORS",
    "ATRELAY_INTEROP_CACHE",
    "ATRELAY_BIN",
];

/// The admin API password's variable (kept out of config files).
pub const ADMIN_PASSWORD_VAR: &str = "ATRELAY_ADMIN_PASSWORD";

/// Applies one `ATRELAY_<SECTION>_<KEY>` variable, typed by the default's type.
/// Lists are comma-separated. Other `ATRELAY_*` names are errors (a typo should
/// not be silently ignored); unrelated variables are skipped.
fn apply_env(
    table: &mut toml::Table,
    prefix: &str,
    var: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let Some(name) = var.strip_prefix(prefix) else {
        return Ok(());
    };
    if NOT_CONFIG.contains(&var) {
        return Ok(());
    }
    let name = name.to_ascii_lowercase();
    let env_err = |reason: String| ConfigError::Env {
        var: var.to_owned(),
        reason,
    };
    for (section, entries) in table.iter_mut() {
        let Some(key) = name.strip_prefix(&format!("{section}_")) else {
            continue;
        };
        let toml::Value::Table(entries) = entries else {
            continue;
        };
        let Some(current) = entries.get(key) else {
            continue;
        };
        let parsed = match current {
            toml::Value::String(_) => toml::Value::String(value.to_owned()),
            toml::Value::Integer(_) => toml::Value::Integer(
                value
                    .parse()
                    .map_err(|_| env_err(format!("{value:?} is not an integer")))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(match value {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(env_err(format!("{value:?} is not true/false"))),
            }),
            toml::Value::Array(_) => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => {
                return Err(env_err(
                    "this key cannot be set from the environment".into(),
                ))
            }
        };
        entries.insert(key.to_owned(), parsed);
        return Ok(());
    }
    Err(env_err("no such config key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_work_without_a_file() {
        let cfg = RelayConfig::load(None, env(&[])).unwrap();
        assert_eq!(cfg, RelayConfig::default());
        assert_eq!(cfg.server.data_dir, PathBuf::from("./data/relay"));
        assert_eq!(cfg.identity.plc_url, "https://plc.directory");
    }

    #[test]
    fn env_overrides_each_type() {
        let cfg = RelayConfig::load(
            None,
            env(&[
                ("ATRELAY_SERVER_LISTEN", "127.0.0.1:9999"),
                ("ATRELAY_CRAWL_HOSTS", "a.example, 127.0.0.1:2583"),
                ("ATRELAY_CRAWL_ALLOW_PRIVATE_HOSTS", "true"),
                ("ATRELAY_FANOUT_RING_CAPACITY", "1024"),
                ("PATH", "/usr/bin"),
                ("ATRELAY_LOG", "debug"),
                ("ATRELAY_VECTORS", "/vectors"),
                ("ATRELAY_INTEROP_CACHE", "/cache"),
                ("ATRELAY_BIN", "/bin/atrelay"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.server.listen.port(), 9999);
        assert_eq!(cfg.crawl.hosts, ["a.example", "127.0.0.1:2583"]);
        assert!(cfg.crawl.allow_private_hosts);
        assert_eq!(cfg.fanout.ring_capacity, 1024);
    }

    #[test]
    fn admin_password_comes_from_its_variable_and_never_prints() {
        let pw = "hunter2 hunter2 hunter2";
        let cfg = RelayConfig::load(None, env(&[("ATRELAY_ADMIN_PASSWORD", pw)])).unwrap();
        assert_eq!(cfg.admin_password, Some(Secret(pw.into())));
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let cfg = RelayConfig::load(None, env(&[])).unwrap();
        assert_eq!(cfg.admin_password, None, "unset means disabled");
    }

    #[test]
    fn blank_or_short_admin_passwords_refuse_to_start() {
        for (pw, what) in [
            ("", "blank"),
            (" ", "blank"),
            ("\t \n", "blank"),
            ("hunter2", "too short"),
            ("fifteen chars!!", "too short"),
        ] {
            let e = RelayConfig::load(None, env(&[("ATRELAY_ADMIN_PASSWORD", pw)])).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("ATRELAY_ADMIN_PASSWORD")
                    && msg.contains(what)
                    && msg.contains("at least 16 characters"),
                "{pw:?}: {msg}"
            );
            assert!(
                !msg.contains(pw) || pw.trim().is_empty(),
                "the password is not echoed: {msg}"
            );
        }
        let sixteen = "sixteen chars!!!";
        assert!(RelayConfig::load(None, env(&[("ATRELAY_ADMIN_PASSWORD", sixteen)])).is_ok());
    }

    #[test]
    fn shipped_budget_profiles_load() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let seed =
            RelayConfig::load(Some(&dir.join("budget-early-access.toml")), env(&[])).unwrap();
        assert_eq!(seed.budget.accounts, 10);
        assert_eq!(seed.budget.per_hour, 1_500);
        assert_eq!(seed.budget.per_day, 10_000);
        assert_eq!(seed.crawl.mode, CrawlMode::Allowlist);
        let net = RelayConfig::load(Some(&dir.join("budget-network.toml")), env(&[])).unwrap();
        assert_eq!(net.budget, BudgetConfig::default());
    }

    #[test]
    fn bad_values_name_the_key() {
        let e =
            RelayConfig::load(None, env(&[("ATRELAY_FANOUT_RING_CAPACITY", "1000")])).unwrap_err();
        assert!(e.to_string().contains("fanout.ring_capacity"), "{e}");
        let e =
            RelayConfig::load(None, env(&[("ATRELAY_FANOUT_RING_CAPACITY", "lots")])).unwrap_err();
        assert!(
            e.to_string().contains("ATRELAY_FANOUT_RING_CAPACITY"),
            "{e}"
        );
        let e = RelayConfig::load(None, env(&[("ATRELAY_NOPE", "1")])).unwrap_err();
        assert!(e.to_string().contains("no such config key"), "{e}");
        let e = RelayConfig::load(None, env(&[("ATRELAY_LOG_DURABILITY", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("log.durability"), "{e}");
        let e = RelayConfig::load(
            None,
            env(&[("ATRELAY_SERVER_HEADER_READ_TIMEOUT_SECS", "0")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("server.header_read_timeout_secs"),
            "{e}"
        );
        let e =
            RelayConfig::load(None, env(&[("ATRELAY_SERVER_IDLE_TIMEOUT_SECS", "0")])).unwrap_err();
        assert!(e.to_string().contains("server.idle_timeout_secs"), "{e}");
    }

    #[test]
    fn files_overlay_and_reject_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "[verify]\nlenient = true\n[crawl]\nhosts = [\"x.example\"]\n",
        )
        .unwrap();
        let cfg = RelayConfig::load(Some(&path), env(&[])).unwrap();
        assert!(cfg.verify.lenient);
        assert_eq!(cfg.crawl.hosts, ["x.example"]);
        std::fs::write(&path, "[verify]\nlenientt = true\n").unwrap();
        let e = RelayConfig::load(Some(&path), env(&[])).unwrap_err();
        assert!(e.to_string().contains("verify.lenientt"), "{e}");
        // A key that was replaced says by what.
        std::fs::write(&path, "[fanout]\nlinger_ms = 2\n").unwrap();
        let e = RelayConfig::load(Some(&path), env(&[])).unwrap_err();
        assert!(e.to_string().contains("fanout.coalesce_max_ms"), "{e}");
        std::fs::write(&path, "[verify\n").unwrap();
        assert!(matches!(
            RelayConfig::load(Some(&path), env(&[])),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn shipped_relay_toml_matches_the_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/relay.toml");
        let cfg = RelayConfig::load(Some(&path), env(&[])).unwrap();
        assert_eq!(
            cfg,
            RelayConfig::default(),
            "config/relay.toml documents the defaults"
        );
    }
}
