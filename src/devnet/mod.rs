//! A whole local AT Protocol network in one process: a PLC directory, N PDSes
//! and a relay crawling them, all on loopback. `atrelay devnet` runs it with
//! background traffic; tests drive it directly.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use atrelay::devnet::{Devnet, DevnetConfig};
//! let dir = std::env::temp_dir().join("my-devnet");
//! let net = Devnet::start(DevnetConfig::new(&dir)).await?;
//! println!("firehose: {}", net.firehose_url());
//! let mut traffic = net.traffic(42);
//! traffic.step().await?;
//! drop(traffic); // it holds the PDSes open
//! net.stop().await;
//! # Ok(()) }
//! ```
//!
//! [`Devnet::start`] starts the relay with every PDS in its crawl list and
//! waits until each crawler is connected before it creates the accounts and
//! returns: when the URLs are printed, the network is live. (The relay reads
//! a new host from `cursor=0`, so events emitted before the connection would
//! not be lost either; the wait is what makes "started" mean "crawling", and
//! keeps the devnet correct should a relay start new hosts live again.)
//!
//! What `atrelay devnet` reads from its config file ([`DevnetSettings`]) is
//! in `settings`; this module starts and stops the network.

pub mod progress;
mod settings;
pub mod traffic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::clock::now_micros;
use crate::config::{BudgetConfig, RelayConfig, Secret};
use crate::http::basic_auth::ADMIN_USER;
use crate::node::PdsServer;
use crate::node::PlcServer;
use crate::node::Relay;
use crate::pds::config::PdsConfig;
use crate::pds::password::PasswordCost;
use crate::pds::service::{Pds, PdsError};

pub use settings::DevnetSettings;
pub use traffic::{Kind, Traffic};

/// Why a devnet could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
    #[error("starting the PLC directory: {0}")]
    Plc(String),
    #[error("starting the relay: {0}")]
    Relay(#[from] crate::node::StartError),
    #[error("PDS {index}: {err}")]
    Pds { index: usize, err: PdsError },
    #[error("the relay did not connect to {0} within {1:?}")]
    NotConnected(String, Duration),
}

/// What to start.
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    /// How many PDSes.
    pub pds_count: usize,
    /// Accounts created on each PDS once the relay is connected.
    pub accounts_per_pds: usize,
    /// Everything lives under here: `plc/`, `pds-N/`, `relay/`.
    pub data_dir: PathBuf,
    /// The relay's HTTP + firehose address (PLC and PDSes take free ports).
    pub relay_listen: SocketAddr,
    /// The relay's admin password; a random one when `None`. The admin API
    /// is always on in a devnet: it is how the live line counts subscribers.
    pub admin_password: Option<String>,
    /// Longest wait for the relay to connect to every PDS.
    pub connect_timeout: Duration,
}

impl DevnetConfig {
    /// Two PDSes with three accounts each, the relay on a free port.
    pub fn new(data_dir: &Path) -> DevnetConfig {
        DevnetConfig {
            pds_count: 2,
            accounts_per_pds: 3,
            data_dir: data_dir.to_owned(),
            relay_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_password: None,
            connect_timeout: Duration::from_secs(20),
        }
    }
}

/// An account created by the devnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevAccount {
    /// Index into [`Devnet::pds`].
    pub pds: usize,
    pub did: String,
    pub handle: String,
}

/// A running devnet.
pub struct Devnet {
    pub plc: PlcServer,
    pub plc_url: String,
    pub pds: Vec<PdsServer>,
    pub relay: Relay,
    /// The accounts [`Devnet::start`] created, PDS by PDS.
    pub accounts: Vec<DevAccount>,
    admin_password: String,
    http: reqwest::Client,
}

/// Handles are `NAME.test` (what a PDS on a loopback address accepts),
/// readable, and unique across the whole network.
const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda",
];

/// The `i`-th account's base name: `alice`, …, then `alice1`, `bob1`, ….
pub fn account_name(i: usize) -> String {
    let name = NAMES[i % NAMES.len()];
    match i / NAMES.len() {
        0 => name.to_owned(),
        n => format!("{name}{n}"),
    }
}

impl Devnet {
    /// Starts PLC, the PDSes and the relay, waits until the relay is
    /// subscribed to every PDS, then creates the accounts.
    pub async fn start(cfg: DevnetConfig) -> Result<Devnet, DevnetError> {
        let io = |what: String| move |err| DevnetError::Io { what, err };
        let dir = &cfg.data_dir;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;

        let plc_listener = bind_loopback().await?;
        let plc = PlcServer::start(plc_listener, &dir.join("plc"))
            .await
            .map_err(|e| DevnetError::Plc(e.to_string()))?;
        Self::start_around(cfg, plc).await
    }

    /// The rest of [`Devnet::start`], once PLC runs. Any failure stops what
    /// already started before returning: a relay, PDS or PLC left running
    /// would hold its RocksDB open while the process exits, and RocksDB
    /// aborts in its static destructors when that happens.
    async fn start_around(cfg: DevnetConfig, plc: PlcServer) -> Result<Devnet, DevnetError> {
        let io = |what: String| move |err| DevnetError::Io { what, err };
        let dir = &cfg.data_dir;
        let plc_url = plc.url();

        // Bind every PDS first: the relay needs their addresses to crawl
        // them, and the PDSes need the relay's URL for requestCrawl. A bound
        // listener queues the relay's connection until its server starts.
        //
        // A PDS's address is in its accounts' DID documents, and the relay
        // checks events against them: a reused data directory must get its
        // PDSes back on the same ports, so they are remembered.
        let ports_file = dir.join("pds-ports");
        let old_ports: Vec<u16> = std::fs::read_to_string(&ports_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let (listeners, hostnames) = match bind_pds_listeners(&old_ports, cfg.pds_count).await {
            Ok(bound) => bound,
            Err(e) => return Err(stop_started(plc, None, Vec::new(), e).await),
        };
        let ports: String = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| format!("{}\n", a.port()))
            .collect();
        if let Err(err) = std::fs::write(&ports_file, ports) {
            let e = io(format!("writing {}", ports_file.display()))(err);
            return Err(stop_started(plc, None, Vec::new(), e).await);
        }

        let admin_password = cfg
            .admin_password
            .clone()
            .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
        let mut relay_cfg = RelayConfig::default();
        relay_cfg.server.listen = cfg.relay_listen;
        relay_cfg.server.metrics_listen = String::new();
        relay_cfg.server.data_dir = dir.join("relay");
        relay_cfg.identity.plc_url = plc_url.clone();
        relay_cfg.crawl.allow_private_hosts = true;
        relay_cfg.crawl.hosts = hostnames.clone();
        relay_cfg.budget = BudgetConfig::unlimited();
        relay_cfg.admin_password = Some(Secret(admin_password.clone()));
        let started_micros = now_micros();
        let relay = match Relay::start(&relay_cfg).await {
            Ok(relay) => relay,
            Err(e) => return Err(stop_started(plc, None, Vec::new(), e.into()).await),
        };
        // Hosts a reused relay remembers but this devnet no longer runs
        // (fewer `--pds` than last time) would be retried forever.
        for host in relay.crawlers.running() {
            if !hostnames.contains(&host) {
                relay.crawlers.stop(&host).await;
            }
        }
        let relay_url = format!("http://{}", relay.addr);

        let mut pds = Vec::with_capacity(cfg.pds_count);
        for (index, (listener, hostname)) in listeners.into_iter().zip(&hostnames).enumerate() {
            match start_pds(index, listener, hostname, dir, &plc_url, &relay_url).await {
                Ok(server) => pds.push(server),
                Err(e) => return Err(stop_started(plc, Some(relay), pds, e).await),
            }
        }

        let mut net = Devnet {
            plc,
            plc_url,
            pds,
            relay,
            accounts: Vec::new(),
            admin_password,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
        };
        if let Err(e) = net
            .wait_connected(&hostnames, started_micros, cfg.connect_timeout)
            .await
        {
            net.stop().await;
            return Err(e);
        }
        for i in 0..cfg.pds_count * cfg.accounts_per_pds {
            let index = i % cfg.pds_count.max(1);
            let name = account_name(i);
            let handle = format!("{name}.test");
            let password = format!("{name}-devnet");
            match net.pds[index]
                .pds
                .create_account(&handle, None, &password)
                .await
            {
                Ok(s) => net.accounts.push(DevAccount {
                    pds: index,
                    did: s.did,
                    handle: s.handle,
                }),
                // A reused data directory already holds the account: keep
                // driving it.
                Err(e) if e.name() == "HandleNotAvailable" => {
                    let server = &net.pds[index].pds;
                    if let Ok(Some(did)) = server.store().did_for_handle(&handle) {
                        let active = server.account(&did).is_ok_and(|a| a.status.is_none());
                        if !active {
                            let _ = server.set_status(&did, None).await;
                        }
                        net.accounts.push(DevAccount {
                            pds: index,
                            did,
                            handle,
                        });
                    }
                }
                Err(err) => {
                    net.stop().await;
                    return Err(DevnetError::Pds { index, err });
                }
            }
        }
        Ok(net)
    }

    /// Waits until the relay's crawler for each host has completed its
    /// websocket handshake (a fresh connection stamps the host's
    /// `last_event_micros`), then a short settle: the PDS registers the
    /// subscription just after the handshake, and with a live start an event
    /// emitted in that gap would be missed.
    async fn wait_connected(
        &self,
        hostnames: &[String],
        since_micros: u64,
        timeout: Duration,
    ) -> Result<(), DevnetError> {
        let deadline = Instant::now() + timeout;
        for host in hostnames {
            loop {
                let connected = self.relay.hosts.get(host).is_some_and(|h| {
                    h.last_event_micros
                        .load(std::sync::atomic::Ordering::Relaxed)
                        >= since_micros
                });
                if connected {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(DevnetError::NotConnected(host.clone(), timeout));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }

    /// The relay's base URL.
    pub fn relay_url(&self) -> String {
        format!("http://{}", self.relay.addr)
    }

    /// The relay's firehose.
    pub fn firehose_url(&self) -> String {
        format!(
            "ws://{}/xrpc/com.atproto.sync.subscribeRepos",
            self.relay.addr
        )
    }

    /// The relay's admin password (HTTP Basic, user `admin`).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// A traffic generator over this network's accounts, its choices drawn
    /// from an RNG seeded with `seed` (the same seed makes the same script).
    pub fn traffic(&self, seed: u64) -> Traffic {
        let pds = self.pds.iter().map(|s| s.pds.clone()).collect();
        Traffic::new(pds, self.accounts.clone(), seed)
    }

    /// How many firehose subscribers the relay has, from its admin API
    /// (`None` if that did not answer).
    pub async fn subscriber_count(&self) -> Option<u64> {
        let body: serde_json::Value = self
            .http
            .get(format!("{}/admin/subscribers", self.relay_url()))
            .basic_auth(ADMIN_USER, Some(&self.admin_password))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        body.get("count")?.as_u64()
    }

    /// Stops the relay first (so it does not log every PDS going away as an
    /// outage), then the PDSes, then PLC. Returns once every database is
    /// closed.
    pub async fn stop(self) {
        let Devnet {
            plc, pds, relay, ..
        } = self;
        stop_parts(plc, Some(relay), pds).await;
    }
}

/// Binds each PDS's listener, on its remembered port where there is one;
/// returns them with their `host:port` names.
async fn bind_pds_listeners(
    old_ports: &[u16],
    count: usize,
) -> Result<(Vec<tokio::net::TcpListener>, Vec<String>), DevnetError> {
    let mut listeners = Vec::with_capacity(count);
    let mut hostnames = Vec::with_capacity(count);
    for i in 0..count {
        let port = old_ports.get(i).copied().unwrap_or(0);
        let bound = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => listener.local_addr().map(|a| (listener, a.to_string())),
            Err(err) => Err(err),
        };
        let (listener, hostname) = bound.map_err(|err| DevnetError::Io {
            what: format!(
                "binding 127.0.0.1:{port} for PDS {i} (a reused data directory keeps its PDS ports)"
            ),
            err,
        })?;
        listeners.push(listener);
        hostnames.push(hostname);
    }
    Ok((listeners, hostnames))
}

/// Opens and serves PDS `index` of the network on its bound listener.
async fn start_pds(
    index: usize,
    listener: tokio::net::TcpListener,
    hostname: &str,
    dir: &Path,
    plc_url: &str,
    relay_url: &str,
) -> Result<PdsServer, DevnetError> {
    let mut pcfg = PdsConfig::default();
    pcfg.server.data_dir = dir.join(format!("pds-{index}"));
    pcfg.server.listen = listener.local_addr().map_err(|err| DevnetError::Io {
        what: "reading a PDS address".into(),
        err,
    })?;
    pcfg.server.hostname = hostname.to_owned();
    pcfg.identity.plc_url = plc_url.to_owned();
    pcfg.crawl.crawlers = vec![relay_url.to_owned()];
    // Devnet accounts are throwaway: hashing at the standard cost would make
    // account creation take seconds.
    let p = Pds::open(&pcfg, PasswordCost::FAST_INSECURE)
        .map_err(|err| DevnetError::Pds { index, err })?;
    PdsServer::start(p, listener)
        .await
        .map_err(|err| DevnetError::Io {
            what: format!("starting PDS {index}"),
            err,
        })
}

/// Stops the parts of a network, the relay first (so it does not log every
/// PDS going away as an outage), then the PDSes, then PLC: a whole network
/// or the parts a failed start had started.
async fn stop_parts(plc: PlcServer, relay: Option<Relay>, pds: Vec<PdsServer>) {
    if let Some(relay) = relay {
        relay.stop().await;
    }
    for server in pds {
        server.stop().await;
    }
    plc.stop().await;
}

/// [`stop_parts`] for a start that failed with `err`; hands `err` back.
async fn stop_started(
    plc: PlcServer,
    relay: Option<Relay>,
    pds: Vec<PdsServer>,
    err: DevnetError,
) -> DevnetError {
    stop_parts(plc, relay, pds).await;
    err
}

/// A listener on a free loopback port.
async fn bind_loopback() -> Result<tokio::net::TcpListener, DevnetError> {
    tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|err| DevnetError::Io {
            what: "binding a loopback port".into(),
            err,
        })
}
