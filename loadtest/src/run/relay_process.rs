//! The relay under test: the real `atrelay` binary, started with a config
//! generated for the scenario in a fresh data directory, watched through
//! `/proc` (CPU, RSS) and its Prometheus endpoint, and stopped with SIGTERM.
//! A tier's mirrors are the same binary started the same way with a mirror's
//! config (`[mirror] upstream`), so one type runs both.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atrelay::net::metrics::{MAX_CONNECTIONS, SERVER_RELAY};

use super::scenario::RelaySettings;
use crate::thread_cpu::TICKS_PER_SECOND;
use atrelay::http::basic_auth::ADMIN_USER;

/// A running relay (or mirror) process; killed when dropped, so an early
/// return leaves no process behind.
pub struct RelayProcess {
    child: Child,
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    admin_password: String,
    pub log_path: PathBuf,
    http: reqwest::blocking::Client,
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The config file for `settings`, crawling `hosts` and resolving DIDs at
/// `plc_url`.
pub fn config_toml(
    settings: &RelaySettings,
    listen: SocketAddr,
    metrics: SocketAddr,
    data_dir: &Path,
    plc_url: &str,
    hosts: &[String],
) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    let budget = match settings.budget.as_str() {
        // Measure the relay, not the hosts' budgets.
        "unlimited" => "[budget]\naccounts = 0\nper_second = 0\nper_hour = 0\nper_hour_per_account = 0\nper_day = 0\nper_day_per_account = 0\n".to_owned(),
        "early-access" => {
            let profile = include_str!("../../../config/budget-early-access.toml");
            profile
                .split_once("[budget]")
                .map(|(_, b)| format!("[budget]{b}"))
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    let extra = memory_sections(settings);
    format!(
        "[server]\nlisten = \"{listen}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = {data:?}\n\
         max_connections = {max_connections}\n\n\
         [identity]\nplc_url = \"{plc_url}\"\n{identity}\n\
         [crawl]\nallow_private_hosts = true\nnew_hosts_per_day = 0\nhosts = [{hosts}]\n\n\
         [verify]\nworkers = {workers}\n{verify}\n[log]\ndurability = \"{durability}\"\n{log}\n\
         [fanout]\n{fanout}\n{budget}",
        data = data_dir.display().to_string(),
        max_connections = settings.max_connections,
        identity = extra("identity"),
        hosts = hosts.join(", "),
        workers = settings.verify_workers,
        verify = extra("verify"),
        durability = settings.durability,
        log = extra("log"),
        fanout = fanout_keys(settings, &extra),
    )
}

/// The memory keys of `settings` by section, each written as `key = value`
/// lines to merge into the section a config writes (one section may appear
/// only once in a TOML file).
fn memory_sections(settings: &RelaySettings) -> impl Fn(&str) -> String {
    let memory = match settings.memory.as_str() {
        "512mb" => include_str!("../../../config/memory-512mb.toml").to_owned(),
        _ => format!(
            "[identity]\ncache_capacity = {}\n\n[fanout]\nring_capacity = {}\n",
            settings.identity_cache_capacity, settings.ring_capacity
        ),
    };
    let memory: toml::Table = memory.parse().unwrap_or_default();
    move |section: &str| -> String {
        memory
            .get(section)
            .and_then(|t| t.as_table())
            .map(|t| t.iter().map(|(k, v)| format!("{k} = {v}\n")).collect())
            .unwrap_or_default()
    }
}

/// The `[fanout]` keys: the memory profile's and the subscriber cap.
fn fanout_keys(settings: &RelaySettings, extra: &impl Fn(&str) -> String) -> String {
    let mut keys = extra("fanout");
    if settings.max_subscribers > 0 {
        keys += &format!("max_subscribers = {}\n", settings.max_subscribers);
    }
    keys
}

/// The config file of a mirror following the relay at `upstream`: the
/// scenario's durability, ring and caps, and the relay's whole window on
/// its first start (`backfill`), so it holds whatever the relay already
/// had. Reconnects back off at most a second: a run is short.
pub fn mirror_config_toml(
    settings: &RelaySettings,
    listen: SocketAddr,
    metrics: SocketAddr,
    data_dir: &Path,
    upstream: SocketAddr,
) -> String {
    let extra = memory_sections(settings);
    format!(
        "[server]\nlisten = \"{listen}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = {data:?}\n\
         max_connections = {max_connections}\n\n\
         [log]\ndurability = \"{durability}\"\n{log}\n\
         [fanout]\n{fanout}\n\
         [mirror]\nupstream = \"ws://{upstream}\"\nbackfill = true\nmax_backoff_secs = 1\n",
        data = data_dir.display().to_string(),
        max_connections = settings.max_connections,
        durability = settings.durability,
        log = extra("log"),
        fanout = fanout_keys(settings, &extra),
    )
}

/// Why a relay (or mirror) process could not be started or read; each
/// message says where to look.
#[derive(Debug, thiserror::Error)]
pub enum RelayProcessError {
    #[error(transparent)]
    Io(std::io::Error),
    #[error("{}: {err}", path.display())]
    WriteConfig { path: PathBuf, err: std::io::Error },
    #[error("starting {}: {err}", bin.display())]
    Spawn { bin: PathBuf, err: std::io::Error },
    #[error(transparent)]
    Http(reqwest::Error),
    #[error("the {name} exited at start ({status}); see {}", log.display())]
    ExitedAtStart {
        name: String,
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("the {name} was not ready on /xrpc/_health within 60 s; see {}", log.display())]
    NotReady { name: String, log: PathBuf },
    #[error("scraping metrics: {0}")]
    Scrape(reqwest::Error),
    #[error(
        "the relay accepts at most {cap} connections, fewer than {subscribers} subscribers + {own}: \
         set [relay] max_connections = {} in the scenario, and make sure the relay's \
         open-file hard limit allows it (see {})",
        subscribers + own,
        log.display()
    )]
    ConnectionCap {
        cap: usize,
        subscribers: usize,
        own: usize,
        log: PathBuf,
    },
    #[error("admin hosts: {0}")]
    AdminHosts(reqwest::Error),
}

impl RelayProcess {
    /// Writes the config into `dir`, starts `bin serve`, and waits (up to
    /// 60 s) until it answers `/xrpc/_health`.
    pub fn start(
        bin: &Path,
        dir: &Path,
        settings: &RelaySettings,
        plc_url: &str,
        hosts: &[String],
    ) -> Result<RelayProcess, RelayProcessError> {
        let listen = free_port().map_err(RelayProcessError::Io)?;
        let metrics = free_port().map_err(RelayProcessError::Io)?;
        let config = config_toml(
            settings,
            listen,
            metrics,
            &dir.join("relay-data"),
            plc_url,
            hosts,
        );
        RelayProcess::launch(bin, dir, "relay", &config, listen, metrics, |_| true)
    }

    /// Starts `bin serve` as the mirror `name` of the relay at `upstream`
    /// (config, log and data directory named after it in `dir`), and waits
    /// (up to 60 s) until its `/xrpc/_health` says it is connected upstream:
    /// only then does it receive every event the relay sequences next.
    pub fn start_mirror(
        bin: &Path,
        dir: &Path,
        name: &str,
        settings: &RelaySettings,
        upstream: SocketAddr,
    ) -> Result<RelayProcess, RelayProcessError> {
        let listen = free_port().map_err(RelayProcessError::Io)?;
        let metrics = free_port().map_err(RelayProcessError::Io)?;
        let data_dir = dir.join(format!("{name}-data"));
        let config = mirror_config_toml(settings, listen, metrics, &data_dir, upstream);
        RelayProcess::launch(bin, dir, name, &config, listen, metrics, |health| {
            health["mirror"]["connected"] == true
        })
    }

    /// Writes `config` to `dir/<name>.toml`, starts `bin serve` on it
    /// (output to `dir/<name>.log`), and waits up to 60 s until its
    /// `/xrpc/_health` answers a document `ready` accepts.
    fn launch(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &str,
        listen: SocketAddr,
        metrics: SocketAddr,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<RelayProcess, RelayProcessError> {
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).map_err(|err| RelayProcessError::WriteConfig {
            path: config_path.clone(),
            err,
        })?;
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).map_err(RelayProcessError::Io)?;
        let admin_password = format!("loadtest-{:032x}", rand::random::<u128>());
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("ATRELAY_ADMIN_PASSWORD", &admin_password)
            .env(
                "ATRELAY_LOG",
                std::env::var("ATRELAY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(RelayProcessError::Io)?)
            .stderr(log)
            .spawn()
            .map_err(|err| RelayProcessError::Spawn {
                bin: bin.to_owned(),
                err,
            })?;
        let mut relay = RelayProcess {
            child,
            listen,
            metrics,
            admin_password,
            log_path,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(RelayProcessError::Http)?,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = relay.child.try_wait() {
                return Err(RelayProcessError::ExitedAtStart {
                    name: name.to_owned(),
                    status,
                    log: relay.log_path.clone(),
                });
            }
            if relay.health().is_some_and(|h| ready(&h)) {
                return Ok(relay);
            }
            if Instant::now() > deadline {
                relay.stop();
                return Err(RelayProcessError::NotReady {
                    name: name.to_owned(),
                    log: relay.log_path.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/xrpc/_health`'s document, when it answers with success.
    pub fn health(&self) -> Option<serde_json::Value> {
        self.http
            .get(format!("http://{}/xrpc/_health", self.listen))
            .send()
            .ok()
            .filter(|r| r.status().is_success())?
            .json()
            .ok()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ws://…/xrpc/com.atproto.sync.subscribeRepos`.
    pub fn firehose_url(&self) -> String {
        format!("ws://{}/xrpc/com.atproto.sync.subscribeRepos", self.listen)
    }

    /// Every sample of the Prometheus endpoint, keyed `name{labels}` as
    /// exposed (labels sorted as the exporter writes them).
    pub fn scrape(&self) -> Result<BTreeMap<String, f64>, RelayProcessError> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .and_then(|r| r.text())
            .map_err(RelayProcessError::Scrape)?;
        Ok(parse_exposition(&text))
    }

    /// Fails, saying what to set, when the relay's connection cap (its
    /// `[server] max_connections`, as it reports it) leaves no room for
    /// `subscribers` websockets beside the run's own requests: past the cap
    /// the relay would evict subscribers, and the run would measure that.
    pub fn check_connection_cap(&self, subscribers: usize) -> Result<(), RelayProcessError> {
        /// The run's health, metrics-free admin and spare connections.
        const OWN: usize = 16;
        let cap = sum(&self.scrape()?, MAX_CONNECTIONS, "server", SERVER_RELAY) as usize;
        if cap > 0 && cap < subscribers + OWN {
            return Err(RelayProcessError::ConnectionCap {
                cap,
                subscribers,
                own: OWN,
                log: self.log_path.clone(),
            });
        }
        Ok(())
    }

    /// The admin API's host list.
    pub fn admin_hosts(&self) -> Result<serde_json::Value, RelayProcessError> {
        self.http
            .get(format!("http://{}/admin/hosts", self.listen))
            .basic_auth(ADMIN_USER, Some(&self.admin_password))
            .send()
            .and_then(|r| r.json())
            .map_err(RelayProcessError::AdminHosts)
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses Prometheus text exposition into `name{labels} → value`.
pub fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((key, value)) = line.rsplit_once(' ') {
            if let Ok(v) = value.parse::<f64>() {
                out.insert(key.to_owned(), v);
            }
        }
    }
    out
}

/// Sum of every sample of `name` whose labels contain `label="value"`
/// (all samples when `label` is empty).
pub fn sum(metrics: &BTreeMap<String, f64>, name: &str, label: &str, value: &str) -> f64 {
    let want = format!("{label}=\"{value}\"");
    metrics
        .iter()
        .filter(|(k, _)| {
            let (n, labels) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && (label.is_empty() || labels.contains(&want))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Every label value of `label` on `name`, with its sample.
pub fn by_label(metrics: &BTreeMap<String, f64>, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let prefix = format!("{label}=\"");
    for (k, v) in metrics {
        let Some((n, labels)) = k.split_once('{') else {
            continue;
        };
        if n != name {
            continue;
        }
        if let Some(rest) = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix(&prefix))
        {
            let value = rest.trim_end_matches('}').trim_end_matches('"');
            *out.entry(value.to_owned()).or_default() += v;
        }
    }
    out
}

/// CPU seconds (user + system) and resident bytes of process `pid`.
pub fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(((utime + stime) / TICKS_PER_SECOND, rss_kb * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_sums_and_labels() {
        let text = "# HELP a x\n# TYPE a counter\n\
                    atrelay_relay_events_accepted_total{type=\"commit\"} 10\n\
                    atrelay_relay_events_accepted_total{type=\"identity\"} 2\n\
                    atrelay_relay_events_dropped_total{reason=\"bad_signature\"} 3\n\
                    atrelay_log_last_seq 12\n";
        let m = parse_exposition(text);
        assert_eq!(sum(&m, "atrelay_relay_events_accepted_total", "", ""), 12.0);
        assert_eq!(
            sum(
                &m,
                "atrelay_relay_events_accepted_total",
                "type",
                "identity"
            ),
            2.0
        );
        assert_eq!(sum(&m, "atrelay_log_last_seq", "", ""), 12.0);
        let drops = by_label(&m, "atrelay_relay_events_dropped_total", "reason");
        assert_eq!(drops.get("bad_signature"), Some(&3.0));
    }

    #[test]
    fn own_process_usage_is_readable() {
        let (cpu, rss) = proc_usage(std::process::id()).unwrap();
        assert!(cpu >= 0.0);
        assert!(rss > 1_000_000);
    }

    /// The generated config loads as the relay would load it, with the
    /// scenario's sizes, or the memory profile's whole.
    #[test]
    fn generated_configs_load_with_their_memory_sizes() {
        use atrelay::config::RelayConfig;
        let load = |settings: &RelaySettings| -> RelayConfig {
            let dir = tempfile::tempdir().unwrap();
            let text = config_toml(
                settings,
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
                dir.path(),
                "http://127.0.0.1:3",
                &["127.0.0.1:4".to_owned()],
            );
            let path = dir.path().join("relay.toml");
            std::fs::write(&path, &text).unwrap();
            let cfg = RelayConfig::load(Some(&path), std::iter::empty::<(String, String)>())
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            cfg.validate().unwrap();
            cfg
        };
        let mut settings = RelaySettings {
            ring_capacity: 1024,
            identity_cache_capacity: 77,
            ..RelaySettings::default()
        };
        let cfg = load(&settings);
        assert_eq!(cfg.fanout.ring_capacity, 1024);
        assert_eq!(cfg.identity.cache_capacity, 77);
        assert_eq!(
            cfg.log.memtable_mib,
            RelayConfig::default().log.memtable_mib
        );

        settings.memory = "512mb".into();
        let cfg = load(&settings);
        let profile =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/memory-512mb.toml");
        let want =
            RelayConfig::load(Some(&profile), std::iter::empty::<(String, String)>()).unwrap();
        assert_eq!(cfg.identity.cache_capacity, want.identity.cache_capacity);
        assert_eq!(
            cfg.verify.account_cache_capacity,
            want.verify.account_cache_capacity
        );
        assert_eq!(cfg.log.memtable_mib, want.log.memtable_mib);
        assert_eq!(cfg.log.block_cache_mib, want.log.block_cache_mib);
        assert_eq!(cfg.fanout.ring_capacity, want.fanout.ring_capacity);
        assert_ne!(
            cfg.fanout.ring_capacity,
            RelayConfig::default().fanout.ring_capacity
        );
        assert_eq!(cfg.identity.plc_url, "http://127.0.0.1:3");
        assert_eq!(cfg.server.max_connections, 0, "derived by the relay");
        settings.max_connections = 10_100;
        assert_eq!(load(&settings).server.max_connections, 10_100);
        assert_eq!(
            load(&settings).fanout.max_subscribers,
            10_000,
            "the relay's default"
        );
        settings.max_subscribers = 10_050;
        assert_eq!(load(&settings).fanout.max_subscribers, 10_050);
    }

    /// A mirror's generated config loads as a mirror of the given relay,
    /// with the scenario's ring and caps.
    #[test]
    fn generated_mirror_config_loads_as_a_mirror() {
        use atrelay::config::RelayConfig;
        let dir = tempfile::tempdir().unwrap();
        let settings = RelaySettings {
            ring_capacity: 2048,
            max_subscribers: 600,
            max_connections: 700,
            durability: "buffered".into(),
            ..RelaySettings::default()
        };
        let text = mirror_config_toml(
            &settings,
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            dir.path(),
            "127.0.0.1:5".parse().unwrap(),
        );
        let path = dir.path().join("mirror.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = RelayConfig::load(Some(&path), std::iter::empty::<(String, String)>())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        cfg.validate().unwrap();
        assert!(cfg.mirror.enabled());
        assert_eq!(cfg.mirror.upstream, "ws://127.0.0.1:5");
        assert!(cfg.mirror.backfill);
        assert_eq!(cfg.fanout.ring_capacity, 2048);
        assert_eq!(cfg.fanout.max_subscribers, 600);
        assert_eq!(cfg.server.max_connections, 700);
        assert_eq!(cfg.log.durability, atrelay::log::Durability::Buffered);
    }
}
