//! `atrelay serve`: run the relay, or with `--upstream` (`mirror.upstream`)
//! a mirror of another relay (the fan-out tier, `atrelay::mirror`).
//!
//! Configuration comes from built-in defaults, then `--config FILE`, then
//! `ATRELAY_*` environment variables, then these flags (see
//! `config/relay.toml`). Runs until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::daemon::{announce, fail, init_process, runtime, wait_for_signal};
use super::error::CliError;
use atrelay::config::RelayConfig;
use atrelay::node::{Mirror, Relay};

/// Flags for `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (every key optional; see config/relay.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP + websocket listen address [default: 127.0.0.1:2470].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data directory for the log and state [default: ./data/relay].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PLC directory URL [default: https://plc.directory].
    #[arg(long, value_name = "URL")]
    pub plc_url: Option<String>,
    /// Prometheus metrics listen address; "" disables [default: 127.0.0.1:2471].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Allow loopback/private upstream hosts, dialed over ws:// and http://
    /// (development and tests only).
    #[arg(long)]
    pub allow_private_hosts: bool,
    /// Accept pre-Sync-1.1 commits whose ops lack `prev`, without inversion.
    #[arg(long)]
    pub lenient: bool,
    /// Also crawl these hosts at start (repeatable).
    #[arg(long = "crawl", value_name = "HOST")]
    pub crawl: Vec<String>,
    /// Run as a mirror of this relay instead of crawling hosts: keep its
    /// seqs and frames, serve them, pass sync queries through to it
    /// (e.g. wss://relay.example; the [mirror] config section).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
}

/// Loads the configuration and runs the relay until a signal.
pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    let mut cfg = RelayConfig::load(args.config.as_deref(), std::env::vars())
        .map_err(|e| fail("configuration", e))?;
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        cfg.server.data_dir = dir.clone();
    }
    if let Some(url) = &args.plc_url {
        cfg.identity.plc_url = url.clone();
    }
    if let Some(m) = &args.metrics_listen {
        cfg.server.metrics_listen = m.clone();
    }
    cfg.crawl.allow_private_hosts |= args.allow_private_hosts;
    cfg.verify.lenient |= args.lenient;
    cfg.crawl.hosts.extend(args.crawl.iter().cloned());
    if let Some(upstream) = &args.upstream {
        cfg.mirror.upstream = upstream.clone();
    }
    cfg.validate().map_err(|e| fail("configuration", e))?;

    init_process();
    let runtime = runtime("atrelay-io")?;
    runtime.block_on(async move {
        // Stops the metrics endpoint after the relay.
        let stop_metrics = atrelay::lifecycle::Shutdown::new();
        if !cfg.server.metrics_listen.is_empty() {
            let addr: SocketAddr = cfg
                .server
                .metrics_listen
                .parse()
                .map_err(|e| fail("server.metrics_listen", e))?;
            let handle = atrelay::node::metrics_exporter::install()
                .map_err(|e| fail("installing the metrics recorder", e))?;
            atrelay::node::metrics_exporter::serve(addr, handle, cfg.server.limits(), stop_metrics.signal())
                .await
                .map_err(|e| fail(&format!("metrics listener on {addr}"), e))?;
        }
        if cfg.mirror.enabled() {
            let mirror = Mirror::start(&cfg)
                .await
                .map_err(|e| fail("starting the mirror", e))?;
            announce(&format!(
                "atrelay mirror listening on http://{addr} (firehose: ws://{addr}/xrpc/com.atproto.sync.subscribeRepos; upstream: {upstream})",
                upstream = cfg.mirror.upstream,
                addr = mirror.addr
            ));
            wait_for_signal().await;
            tracing::info!("shutting down");
            mirror.stop().await;
        } else {
            let relay = Relay::start(&cfg)
                .await
                .map_err(|e| fail("starting the relay", e))?;
            announce(&format!(
                "atrelay relay listening on http://{addr} (firehose: ws://{addr}/xrpc/com.atproto.sync.subscribeRepos)",
                addr = relay.addr
            ));
            wait_for_signal().await;
            tracing::info!("shutting down");
            relay.stop().await;
        }
        stop_metrics.begin();
        Ok(())
    })
}
