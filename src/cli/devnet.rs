//! `atrelay devnet`: a whole local network in one process — a PLC
//! directory, N PDSes and a relay crawling them — with generated traffic, a
//! live status line and a summary at the end.
//!
//! stdout carries only what scripts read: the URLs (the first line is
//! `atrelay devnet relay listening on http://ADDR`), the accounts, and the
//! summary. The live line and logs go to stderr; logs default to `warn`
//! (`ATRELAY_LOG` overrides) so the live line stays readable.
//!
//! Settings come from built-in defaults, then `--config FILE`'s `[devnet]`
//! section (see `config/devnet.toml`), then these flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::daemon::{announce, fail, init_process, runtime, wait_for_signal};
use super::error::CliError;
use atrelay::config::{check_admin_password, Secret, ADMIN_PASSWORD_VAR};
use atrelay::devnet::progress::{LiveLine, Snapshot};
use atrelay::devnet::{Devnet, DevnetSettings, Kind};

/// Flags for `devnet`. Each one overrides the `[devnet]` key of the same
/// name in `--config`; the defaults shown are the built-in ones.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// TOML config file with a `[devnet]` section (every key optional; see
    /// config/devnet.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Number of PDSes [default: 2].
    #[arg(long = "pds", value_name = "N")]
    pub pds: Option<usize>,
    /// Accounts created on each PDS [default: 3].
    #[arg(long, value_name = "M")]
    pub accounts: Option<usize>,
    /// Traffic operations per second across the network; 0 = no traffic.
    /// A ceiling: operations run one at a time [default: 5].
    #[arg(long, value_name = "EVENTS_PER_S")]
    pub rate: Option<f64>,
    /// Stop after this many seconds; 0 = run until Ctrl-C [default: 0].
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Keep the network's data here [default: a fresh temporary directory,
    /// deleted on exit].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The relay's HTTP + firehose listen address (PLC and the PDSes take
    /// free loopback ports) [default: 127.0.0.1:2470].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Seed of the traffic's random choices [default: random].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl DevnetArgs {
    /// The defaults, overlaid by `--config`, then by the flags given.
    fn settings(&self) -> Result<DevnetSettings, CliError> {
        let mut s =
            DevnetSettings::load(self.config.as_deref()).map_err(|e| fail("configuration", e))?;
        if let Some(n) = self.pds {
            s.pds = n;
        }
        if let Some(n) = self.accounts {
            s.accounts = n;
        }
        if let Some(r) = self.rate {
            s.rate = r;
        }
        if let Some(d) = self.duration {
            s.duration = d;
        }
        if let Some(dir) = &self.data_dir {
            s.data_dir = dir.clone();
        }
        if let Some(addr) = self.listen {
            s.listen = addr;
        }
        if self.seed.is_some() {
            s.seed = self.seed;
        }
        s.validate().map_err(|e| fail("configuration", e))?;
        Ok(s)
    }
}

/// Starts the network, runs traffic until the duration ends or a signal,
/// prints the summary and stops.
pub fn run(args: &DevnetArgs) -> Result<(), CliError> {
    let settings = args.settings()?;
    if std::env::var_os("ATRELAY_LOG").is_none() {
        // Still single-threaded: no other thread reads the environment.
        std::env::set_var("ATRELAY_LOG", "warn");
    }
    init_process();
    let (data_dir, temporary) = match settings.data_dir() {
        Some(dir) => (dir.to_owned(), false),
        None => (
            std::env::temp_dir().join(format!(
                "atrelay-devnet-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            )),
            true,
        ),
    };
    let result = runtime("atrelay-devnet")
        .and_then(|rt| rt.block_on(run_network(&settings, &data_dir, temporary)));
    if temporary {
        if let Err(e) = std::fs::remove_dir_all(&data_dir) {
            tracing::warn!(dir = %data_dir.display(), error = %e, "could not delete the devnet's data");
        }
    }
    result
}

async fn run_network(
    args: &DevnetSettings,
    data_dir: &Path,
    temporary: bool,
) -> Result<(), CliError> {
    let mut cfg = args.config(data_dir);
    // Held to the same rule as `atrelay serve`'s: a set variable must hold a
    // real password (unset: the devnet makes a random one).
    let password_from_env = std::env::var(ADMIN_PASSWORD_VAR).ok();
    if let Some(pw) = &password_from_env {
        check_admin_password(ADMIN_PASSWORD_VAR, &Secret(pw.clone()))
            .map_err(|e| fail("configuration", e))?;
    }
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
    if !temporary {
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
