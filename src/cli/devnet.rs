//! `atrelay devnet`: a whole local network in one process — a PLC
//! directory, N PDSes and a relay crawling them — with generated traffic, a
//! live status line and a summary at the end.
//!
//! stdout carries only what scripts read: the URLs (the first line is
//! `atrelay devnet relay listening on http://ADDR`), the accounts, and the
//! summary. The live line and logs go to stderr; logs default to `warn`
//! (`ATRELAY_LOG` overrides) so the live line stays readable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::daemon::{announce, fail, init_logging, runtime, wait_for_signal};
use super::error::CliError;
use atrelay::devnet::progress::{LiveLine, Snapshot};
use atrelay::devnet::{Devnet, DevnetConfig, Kind};

/// Flags for `devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Number of PDSes.
    #[arg(long = "pds", value_name = "N", default_value_t = 2)]
    pub pds: usize,
    /// Accounts created on each PDS.
    #[arg(long, value_name = "M", default_value_t = 3)]
    pub accounts: usize,
    /// Traffic operations per second across the network; 0 = no traffic.
    /// A ceiling: operations run one at a time.
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = 5.0)]
    pub rate: f64,
    /// Stop after this many seconds; 0 = run until Ctrl-C.
    #[arg(long, value_name = "S", default_value_t = 0.0)]
    pub duration: f64,
    /// Keep the network's data here [default: a fresh temporary directory,
    /// deleted on exit].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The relay's HTTP + firehose listen address (PLC and the PDSes take
    /// free loopback ports).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2470")]
    pub listen: SocketAddr,
    /// Seed of the traffic's random choices [default: random].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// Starts the network, runs traffic until the duration ends or a signal,
/// prints the summary and stops.
pub fn run(args: &DevnetArgs) -> Result<(), CliError> {
    if !args.rate.is_finite() || args.rate < 0.0 {
        return Err(CliError::new("--rate must be 0 or more"));
    }
    if !args.duration.is_finite() || args.duration < 0.0 {
        return Err(CliError::new("--duration must be 0 or more"));
    }
    if args.pds == 0 {
        return Err(CliError::new("--pds must be at least 1"));
    }
    if std::env::var_os("ATRELAY_LOG").is_none() {
        // Still single-threaded: no other thread reads the environment.
        std::env::set_var("ATRELAY_LOG", "warn");
    }
    init_logging();
    let (data_dir, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "atrelay-devnet-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            )),
            true,
        ),
    };
    let result = runtime("atrelay-devnet").and_then(|rt| rt.block_on(run_network(args, &data_dir)));
    if temporary {
        if let Err(e) = std::fs::remove_dir_all(&data_dir) {
            tracing::warn!(dir = %data_dir.display(), error = %e, "could not delete the devnet's data");
        }
    }
    result
}

async fn run_network(args: &DevnetArgs, data_dir: &std::path::Path) -> Result<(), CliError> {
    let mut cfg = DevnetConfig::new(data_dir);
    cfg.pds_count = args.pds;
    cfg.accounts_per_pds = args.accounts;
    cfg.relay_listen = args.listen;
    let password_from_env = std::env::var("ATRELAY_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    cfg.admin_password = password_from_env.clone();
    let net = Devnet::start(cfg)
        .await
        .map_err(|e| fail("starting the devnet", e))?;

    announce(&format!(
        "atrelay devnet relay listening on {}",
        net.relay_url()
    ));
    announce(&format!("firehose: {}", net.firehose_url()));
    announce(&format!("plc: {}", net.plc_url));
    for (i, server) in net.pds.iter().enumerate() {
        announce(&format!("pds {i}: http://{}", server.addr));
    }
    let password = match &password_from_env {
        Some(_) => "$ATRELAY_ADMIN_PASSWORD".to_owned(),
        None => net.admin_password().to_owned(),
    };
    announce(&format!(
        "admin: {}/admin (user admin, password {password})",
        net.relay_url()
    ));
    for a in &net.accounts {
        announce(&format!(
            "account: {} {} on pds {} (password {}-devnet)",
            a.handle,
            a.did,
            a.pds,
            a.handle.trim_end_matches(".test")
        ));
    }
    if args.data_dir.is_some() {
        announce(&format!("data: {}", data_dir.display()));
    }

    let mut traffic = net.traffic(args.seed.unwrap_or_else(rand::random));
    let started = Instant::now();
    let mut line = LiveLine::stderr();
    let traffic_on = args.rate > 0.0;
    let period = if traffic_on {
        Duration::from_secs_f64(1.0 / args.rate)
    } else {
        Duration::from_secs(3600)
    };
    let mut ops = tokio::time::interval(period);
    // Operations run one at a time: when one is slow, the next starts at
    // once rather than a burst catching up.
    ops.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut redraw = tokio::time::interval(Duration::from_millis(500));
    let stop_after = async {
        if args.duration > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stop_after);
    let signal = wait_for_signal();
    tokio::pin!(signal);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            biased;
            _ = &mut signal => break,
            _ = &mut stop_after => break,
            _ = redraw.tick() => {
                let subscribers = net.subscriber_count().await;
                line.update(&Snapshot {
                    written: traffic.total(),
                    errors: traffic.errors(),
                    relay_head: net.relay.ring.head(),
                    subscribers,
                    elapsed: started.elapsed(),
                });
            }
            _ = ops.tick(), if traffic_on => {
                if let Err(e) = traffic.step().await {
                    // Once per distinct error, so a persistent failure
                    // does not flood the terminal.
                    let e = e.to_string();
                    if last_error.as_deref() != Some(&e) {
                        tracing::warn!(error = %e, "traffic operation failed");
                        last_error = Some(e);
                    }
                }
            }
        }
    }
    line.finish();
    let elapsed = started.elapsed().as_secs_f64();
    // Give the relay a moment to sequence the last writes, so the head in
    // the summary covers them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = traffic.total();
    announce(&format!(
        "atrelay devnet summary: {total} events written in {elapsed:.1}s ({:.1}/s), {} errors, relay head {}",
        if elapsed > 0.0 { total as f64 / elapsed } else { 0.0 },
        traffic.errors(),
        net.relay.ring.head()
    ));
    for kind in Kind::ALL {
        let n = traffic.counts().get(&kind).copied().unwrap_or(0);
        announce(&format!("  {:<10} {n}", kind.name()));
    }
    // The generator holds the PDSes: drop it so stopping closes them.
    drop(traffic);
    net.stop().await;
    Ok(())
}
