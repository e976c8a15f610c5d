//! What the long-running subcommands (`serve`, `plc`, `pds` and `devnet`)
//! share: logs on stderr, the open-file limit raised, a runtime, one
//! "listening" line on stdout, and running until SIGINT or SIGTERM.

use super::error::CliError;

/// What every long-running subcommand does first: logging (below), then
/// the soft open-file limit raised to the hard limit, with one INFO line
/// saying from what to what. Every connection, RocksDB table and WAL takes
/// a descriptor, and a common service default (1,024) is far too few.
pub fn init_process() {
    init_logging();
    atrelay::net::fd_limit::raise_and_log();
}

/// Logs go to stderr (colored only on a terminal), filtered by `ATRELAY_LOG`
/// (default `info`); stdout is kept for the "listening" line, which scripts
/// and tests wait for.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ATRELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// A multi-threaded runtime whose threads carry `name`.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
        .map_err(|e| fail("starting the runtime", e))
}

/// Prints the "listening" line and flushes it at once, so a supervisor (or
/// test) piping stdout sees it.
pub fn announce(line: &str) {
    use std::io::Write as _;
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// A failure with what was being done.
pub fn fail(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::new(e.to_string()).context(what)
}

/// Waits for SIGINT or (on Unix) SIGTERM.
pub async fn wait_for_signal() {
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
