//! PDS mode's configuration: built-in defaults, then a `config/pds.toml`-style
//! file, then `ATRELAY_PDS_<SECTION>_<KEY>` variables, then `atrelay pds`
//! flags — the same layering as the relay's ([`crate::config::load_layers`]).
//! Secrets (the admin password) come only from `ATRELAY_PDS_ADMIN_PASSWORD`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{
    check_admin_password, load_layers, server_limits, take_secret, validate_server_timeouts,
    ConfigError, Secret, PDS_ENV_PREFIX,
};
use crate::net::normalize_domain;

/// The admin password's variable (for `deleteAccount` and other admin calls).
pub const PDS_ADMIN_PASSWORD_VAR: &str = "ATRELAY_PDS_ADMIN_PASSWORD";

/// The whole PDS configuration; see `config/pds.toml` for each key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PdsConfig {
    pub server: PdsServerConfig,
    pub identity: PdsIdentityConfig,
    pub crawl: PdsCrawlConfig,
    pub limits: PdsLimits,
    /// From `ATRELAY_PDS_ADMIN_PASSWORD` only; `None` disables admin calls.
    #[serde(skip)]
    pub admin_password: Option<Secret>,
}

/// Listener, public name and storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PdsServerConfig {
    /// HTTP + websocket listener.
    pub listen: SocketAddr,
    /// The name relays and clients reach this PDS by (`host[:port]`); the
    /// service DID is `did:web:<host>` and DID documents point at
    /// `https://<hostname>` (`http://` for loopback names). Empty: the
    /// listen address.
    pub hostname: String,
    /// Where the PDS keeps its databases and blobs.
    pub data_dir: PathBuf,
    /// Seconds a connection may take to send a complete request head.
    pub header_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may stay idle between requests.
    pub idle_timeout_secs: u64,
    /// Most open inbound connections (websockets included); 0 = derived
    /// from the open-file limit.
    pub max_connections: usize,
}

impl PdsServerConfig {
    /// The HTTP server's limits (`max_connections` 0 still means derived).
    pub fn limits(&self) -> crate::net::http_server::ServerLimits {
        server_limits(
            self.header_read_timeout_secs,
            self.idle_timeout_secs,
            self.max_connections,
        )
    }
}

/// DIDs and handles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PdsIdentityConfig {
    /// PLC directory where new accounts' DIDs are registered.
    pub plc_url: String,
    /// Handle suffixes offered to new accounts (e.g. `.pds.example.com`);
    /// empty: `.` + the hostname without its port.
    pub user_domains: Vec<String>,
}

/// Asking relays to crawl this PDS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PdsCrawlConfig {
    /// Relay base URLs (`https://relay.example.com`) sent `requestCrawl`
    /// after the first event and then periodically.
    pub crawlers: Vec<String>,
    /// Seconds between repeated `requestCrawl`s.
    pub request_interval_secs: u64,
}

/// Size limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PdsLimits {
    /// Largest blob accepted by `uploadBlob`, in bytes.
    pub blob_max_bytes: u64,
    /// Most writes in one `applyWrites` (the firehose allows 200 ops).
    pub max_writes: usize,
}

impl Default for PdsServerConfig {
    fn default() -> PdsServerConfig {
        PdsServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2583)),
            hostname: String::new(),
            data_dir: PathBuf::from("./data/pds"),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 0,
        }
    }
}

impl Default for PdsIdentityConfig {
    fn default() -> PdsIdentityConfig {
        PdsIdentityConfig {
            plc_url: "https://plc.directory".into(),
            user_domains: Vec::new(),
        }
    }
}

impl Default for PdsCrawlConfig {
    fn default() -> PdsCrawlConfig {
        PdsCrawlConfig {
            crawlers: Vec::new(),
            request_interval_secs: 600,
        }
    }
}

impl Default for PdsLimits {
    fn default() -> PdsLimits {
        PdsLimits {
            blob_max_bytes: 5 * 1024 * 1024,
            max_writes: 200,
        }
    }
}

impl PdsConfig {
    /// Defaults, overlaid by `file`, then by `ATRELAY_PDS_*` variables from
    /// `env`, then validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<PdsConfig, ConfigError> {
        let (admin_password, env) = take_secret(env, PDS_ADMIN_PASSWORD_VAR);
        if let Some(password) = &admin_password {
            check_admin_password(PDS_ADMIN_PASSWORD_VAR, password)?;
        }
        let mut cfg: PdsConfig = load_layers(PdsConfig::default(), file, env, PDS_ENV_PREFIX)?;
        cfg.admin_password = admin_password;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        let url = &self.identity.plc_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("identity.plc_url", "must be an http(s) URL".into()));
        }
        validate_server_timeouts(
            self.server.header_read_timeout_secs,
            self.server.idle_timeout_secs,
        )?;
        if !self.server.hostname.is_empty() {
            normalize_domain(&self.server.hostname)
                .map_err(|e| invalid("server.hostname", e.to_string()))?;
        }
        for d in &self.identity.user_domains {
            if !d.starts_with('.') || normalize_domain(&d[1..]).is_err() {
                return Err(invalid(
                    "identity.user_domains",
                    format!("{d:?} must be a domain starting with a dot"),
                ));
            }
        }
        for c in &self.crawl.crawlers {
            if !(c.starts_with("https://") || c.starts_with("http://")) {
                return Err(invalid(
                    "crawl.crawlers",
                    format!("{c:?} must be an http(s) URL"),
                ));
            }
        }
        if self.crawl.request_interval_secs == 0 || self.limits.max_writes == 0 {
            return Err(invalid(
                "crawl/limits",
                "request_interval_secs and max_writes must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The public `host[:port]`: the configured hostname, else the listen
    /// address.
    pub fn hostname(&self) -> String {
        if self.server.hostname.is_empty() {
            self.server.listen.to_string()
        } else {
            self.server.hostname.to_ascii_lowercase()
        }
    }

    /// The handle suffixes offered to new accounts.
    pub fn user_domains(&self) -> Vec<String> {
        if !self.identity.user_domains.is_empty() {
            return self.identity.user_domains.clone();
        }
        let host = self.hostname();
        let host = crate::net::host_part(&host);
        // An address or `localhost` cannot end a handle (a handle's last
        // label is a TLD that does not start with a digit): local networks
        // use `.test`, as the reference PDS's development mode does.
        if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
            return vec![".test".to_owned()];
        }
        vec![format!(".{host}")]
    }
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
    fn defaults_env_and_secrets() {
        let cfg = PdsConfig::load(None, env(&[])).unwrap();
        assert_eq!(cfg, PdsConfig::default());
        assert_eq!(cfg.hostname(), "127.0.0.1:2583");
        assert_eq!(
            cfg.user_domains(),
            [".test"],
            "no handle can end in an address"
        );
        let cfg = PdsConfig::load(
            None,
            env(&[
                ("ATRELAY_PDS_SERVER_HOSTNAME", "PDS.Example.com"),
                ("ATRELAY_PDS_CRAWL_CRAWLERS", "https://relay.example.com"),
                ("ATRELAY_PDS_ADMIN_PASSWORD", "pw-pw-pw-pw-pw-pw"),
                // The relay's own variables are not the PDS's business.
                ("ATRELAY_SERVER_LISTEN", "127.0.0.1:1"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.hostname(), "pds.example.com");
        assert_eq!(cfg.user_domains(), [".pds.example.com"]);
        assert_eq!(cfg.crawl.crawlers, ["https://relay.example.com"]);
        assert!(!format!("{cfg:?}").contains("pw-pw"));
        for blank in ["", "   "] {
            let e =
                PdsConfig::load(None, env(&[("ATRELAY_PDS_ADMIN_PASSWORD", blank)])).unwrap_err();
            let e = e.to_string();
            assert!(e.contains("ATRELAY_PDS_ADMIN_PASSWORD: blank"), "{e}");
        }
        let e = PdsConfig::load(None, env(&[("ATRELAY_PDS_NOPE", "1")])).unwrap_err();
        assert!(e.to_string().contains("no such config key"), "{e}");
        let e = PdsConfig::load(
            None,
            env(&[("ATRELAY_PDS_CRAWL_CRAWLERS", "relay.example.com")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("crawl.crawlers"), "{e}");
        let e = PdsConfig::load(None, env(&[("ATRELAY_PDS_SERVER_IDLE_TIMEOUT_SECS", "0")]))
            .unwrap_err();
        assert!(e.to_string().contains("server.idle_timeout_secs"), "{e}");
        let cfg =
            PdsConfig::load(None, env(&[("ATRELAY_PDS_SERVER_MAX_CONNECTIONS", "500")])).unwrap();
        assert_eq!(cfg.server.limits().max_connections, 500);
    }

    #[test]
    fn the_relay_ignores_pds_variables() {
        let cfg = crate::config::RelayConfig::load(
            None,
            env(&[("ATRELAY_PDS_SERVER_HOSTNAME", "pds.example.com")]),
        );
        assert!(cfg.is_ok(), "{cfg:?}");
    }

    #[test]
    fn shipped_pds_toml_matches_the_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/pds.toml");
        let cfg = PdsConfig::load(Some(&path), env(&[])).unwrap();
        assert_eq!(
            cfg,
            PdsConfig::default(),
            "config/pds.toml documents the defaults"
        );
    }
}
