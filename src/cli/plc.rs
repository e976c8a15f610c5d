//! `atrelay plc`: run a minimal PLC directory (did:plc registry) for local
//! networks and tests. Runs until SIGINT or SIGTERM.
//!
//! The directory keeps its own RocksDB in `--data-dir` and serves the
//! `plc.directory` HTTP API (documents, logs, audit logs, export); point a
//! relay's `--plc-url` and a PDS at the printed URL.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::daemon::{announce, fail, init_process, runtime, wait_for_signal};
use super::error::CliError;

/// Flags for `plc`.
#[derive(Debug, Args)]
pub struct PlcArgs {
    /// HTTP listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2582")]
    pub listen: SocketAddr,
    /// Data directory for the directory's database.
    #[arg(long, value_name = "DIR", default_value = "./data/plc")]
    pub data_dir: PathBuf,
}

/// Opens the directory and serves it until a signal.
pub fn run(args: &PlcArgs) -> Result<(), CliError> {
    init_process();
    let runtime = runtime("atrelay-plc")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| fail(&format!("listening on {}", args.listen), e))?;
        let plc = atrelay::node::PlcServer::start(listener, &args.data_dir)
            .await
            .map_err(|e| {
                // RocksDB locks its directory: the usual cause is a second
                // directory started on the same --data-dir.
                let hint = if e.to_string().contains("LOCK") {
                    " (is another `atrelay plc` using this --data-dir?)"
                } else {
                    ""
                };
                fail(
                    &format!("opening {}", args.data_dir.display()),
                    format!("{e}{hint}"),
                )
            })?;
        announce(&format!("atrelay plc listening on {}", plc.url()));

        wait_for_signal().await;
        tracing::info!("shutting down");
        plc.stop().await;
        Ok(())
    })
}
