//! `atrelay serve`: run the relay.
//!
//! Configuration comes from built-in defaults, then `--config FILE`, then
//! `ATRELAY_*` environment variables, then these flags (see
//! `config/relay.toml`). Runs until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::error::CliError;
use atrelay::config::RelayConfig;
use atrelay::relay::Relay;

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
    cfg.validate().map_err(|e| fail("configuration", e))?;

    // Logs go to stderr; stdout carries only the "listening" line, which
    // scripts and tests wait for.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ATRELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("atrelay-io")
        .build()
        .map_err(|e| fail("starting the runtime", e))?;
    runtime.block_on(async move {
        if !cfg.server.metrics_listen.is_empty() {
            let addr: SocketAddr = cfg
                .server
                .metrics_listen
                .parse()
                .map_err(|e| fail("server.metrics_listen", e))?;
            atrelay::metrics::exporter(addr)
                .install()
                .map_err(|e| fail("starting the metrics listener", e))?;
            atrelay::metrics::describe();
        }
        let relay = Relay::start(&cfg)
            .await
            .map_err(|e| fail("starting the relay", e))?;
        println!(
            "atrelay relay listening on http://{addr} (firehose: ws://{addr}/xrpc/com.atproto.sync.subscribeRepos)",
            addr = relay.addr
        );
        // Flushed at once so a supervisor (or test) piping stdout sees it.
        use std::io::Write as _;
        let _ = std::io::stdout().flush();

        wait_for_signal().await;
        tracing::info!("shutting down");
        relay.stop().await;
        Ok(())
    })
}

fn fail(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::new(e.to_string()).context(what)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
