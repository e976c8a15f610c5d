//! Loading the relay's config: the secret taken out, the shared layers
//! applied with the relay's prefix, the enumerations refused by name, then
//! the checks serde cannot make. Separate from the schema (`relay`) because
//! these are the rules about values, not the keys themselves.

use std::net::SocketAddr;
use std::path::Path;

use super::layers::{check_choice, from_table, layer_table};
use super::{
    check_admin_password, take_secret, validate_server_timeouts, ConfigError, CrawlMode,
    RelayConfig, ADMIN_PASSWORD_VAR, MIN_ACCOUNT_CACHE_CAPACITY, PDS_ENV_PREFIX,
};
use crate::log::Durability;

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{BudgetConfig, Secret};

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
