//! `atrelay pds`: run PDS mode (accounts, repos, their firehose).
//!
//! Configuration comes from built-in defaults, then `--config FILE`, then
//! `ATRELAY_PDS_*` environment variables, then these flags (see
//! `config/pds.toml`); the admin password only from
//! `ATRELAY_PDS_ADMIN_PASSWORD`. Runs until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::daemon::{announce, fail, init_process, runtime, wait_for_signal};
use super::error::CliError;
use atrelay::node::PdsServer;
use atrelay::pds::config::PdsConfig;
use atrelay::pds::password::PasswordCost;
use atrelay::pds::service::Pds;

/// Flags for `pds`.
#[derive(Debug, Args)]
pub struct PdsArgs {
    /// TOML config file (every key optional; see config/pds.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP + websocket listen address [default: 127.0.0.1:2583].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data directory for accounts, repos, blobs and the event log
    /// [default: ./data/pds].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Public host[:port] clients and relays reach this PDS by; the service
    /// DID is did:web:<host> [default: the listen address].
    #[arg(long, value_name = "HOST")]
    pub hostname: Option<String>,
    /// PLC directory where new accounts' DIDs are registered
    /// [default: https://plc.directory].
    #[arg(long, value_name = "URL")]
    pub plc_url: Option<String>,
    /// Relays to ask to crawl this PDS (comma-separated base URLs; replaces
    /// the configured list).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub crawlers: Option<Vec<String>>,
    /// INSECURE: hash passwords with a tiny scrypt cost (about 1 ms instead
    /// of about 0.5 s). For tests and throwaway devnets only; a leaked
    /// database then gives up its passwords easily.
    #[arg(long, hide = true)]
    pub insecure_fast_passwords: bool,
}

/// Loads the configuration and runs the PDS until a signal.
pub fn run(args: &PdsArgs) -> Result<(), CliError> {
    let mut cfg = PdsConfig::load(args.config.as_deref(), std::env::vars())
        .map_err(|e| fail("configuration", e))?;
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        cfg.server.data_dir = dir.clone();
    }
    if let Some(host) = &args.hostname {
        cfg.server.hostname = host.clone();
    }
    if let Some(url) = &args.plc_url {
        cfg.identity.plc_url = url.clone();
    }
    if let Some(crawlers) = &args.crawlers {
        cfg.crawl.crawlers = crawlers
            .iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
    }
    cfg.validate().map_err(|e| fail("configuration", e))?;
    let cost = if args.insecure_fast_passwords {
        PasswordCost::FAST_INSECURE
    } else {
        PasswordCost::STANDARD
    };

    init_process();
    if args.insecure_fast_passwords {
        tracing::warn!("--insecure-fast-passwords: password hashes are cheap to crack; never use this for real accounts");
    }
    let runtime = runtime("atrelay-pds")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.server.listen)
            .await
            .map_err(|e| fail(&format!("listening on {}", cfg.server.listen), e))?;
        // Without a configured hostname the PDS names itself by its listen
        // address; with port 0 that must be the port actually bound, or DID
        // documents would point at `:0`.
        cfg.server.listen = listener
            .local_addr()
            .map_err(|e| fail("reading the listen address", e))?;
        let pds = Pds::open(&cfg, cost).map_err(|e| {
            // RocksDB locks its directory: the usual cause is a second PDS
            // started on the same data directory.
            let hint = if e.to_string().contains("LOCK") {
                " (is another `atrelay pds` using this --data-dir?)"
            } else {
                ""
            };
            fail(
                &format!("opening {}", cfg.server.data_dir.display()),
                format!("{e}{hint}"),
            )
        })?;
        let server = PdsServer::start(pds, listener)
            .await
            .map_err(|e| fail("starting the PDS", e))?;
        announce(&format!(
            "atrelay pds listening on http://{} (did: {})",
            server.addr,
            server.pds.service_did()
        ));

        wait_for_signal().await;
        tracing::info!("shutting down");
        server.stop().await;
        Ok(())
    })
}
