//! Typed configuration: built-in defaults, then `config/relay.toml`-style
//! files, then `ATRELAY_<SECTION>_<KEY>` environment variables, then command-line
//! flags. Validated once at start so a bad value stops the relay with a message
//! naming the key, instead of failing later at run time.
//!
//! The generic layering ([`load_layers`], in `layers`) is shared by the
//! relay's schema (`relay`, loaded and checked in `relay_load`), PDS mode's
//! (`crate::pds::config`) and the devnet's settings (`crate::devnet`); the
//! secrets (`secret`) and the `[server]` keys every config has
//! (`server_keys`) are shared the same way.
//!
//! ```
//! use atrelay::config::RelayConfig;
//! let cfg = RelayConfig::load(None, std::iter::empty::<(String, String)>()).unwrap();
//! assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:2470");
//! ```

use std::path::PathBuf;

mod layers;
mod relay;
mod relay_load;
mod secret;
mod server_keys;

pub use layers::{load_layers, NOT_CONFIG, PDS_ENV_PREFIX};
pub use relay::{
    BudgetConfig, CrawlConfig, CrawlMode, FanoutConfig, IdentityConfig, LogConfig, MirrorConfig,
    RelayConfig, ServerConfig, VerifyConfig, DEFAULT_ACCOUNT_CACHE_CAPACITY,
    MIN_ACCOUNT_CACHE_CAPACITY,
};
pub use secret::{
    check_admin_password, take_secret, Secret, ADMIN_PASSWORD_VAR, MIN_ADMIN_PASSWORD_CHARS,
};
pub use server_keys::{server_limits, validate_server_timeouts};

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
