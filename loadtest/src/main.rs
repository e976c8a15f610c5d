//! `atrelay-loadtest`: drive a relay to saturation with realistic,
//! verifiable traffic, and report what it did.
//!
//! - `fleet`: synthetic PDS hosts emitting signed commits at a target rate.
//! - `swarm`: firehose subscribers checking continuity and measuring latency.
//! - `record` / `replay`: capture a firehose; play it back as PDS hosts.
//! - `run SCENARIO`: the real relay binary, a fleet and a swarm together,
//!   ramping until the relay stops keeping up; a table, `report.json` and
//!   `plot.svg`.
//!
//! See loadtest/README.md.

mod directory;
mod fleet;
mod histogram;
mod open_files;
mod recording;
mod run;
mod swarm;
mod thread_cpu;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use atrelay::http::basic_auth::ADMIN_USER;
use atrelay::upstream_sim::emit_time;
use clap::{Parser, Subcommand};
use indicatif::ProgressBar;

use fleet::mix::{Attack, Mix};
use fleet::{Fleet, FleetConfig};
use swarm::{Swarm, SwarmClient, SwarmConfig};

#[derive(Parser)]
#[command(
    name = "atrelay-loadtest",
    version,
    about = "Load generator for atrelay: synthetic PDS fleets, subscriber swarms, record/replay, ramping scenarios"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run K synthetic PDS hosts with A accounts emitting signed commits at
    /// a target rate; optionally ask a relay to crawl them
    Fleet(FleetArgs),
    /// Subscribe S clients to a relay's firehose; count, check and time
    /// every frame
    Swarm(SwarmArgs),
    /// Record a firehose to a file (frames as received, plus DID documents)
    Record(RecordArgs),
    /// Replay a recording as one or many PDS hosts at 1×, N× or max speed
    Replay(ReplayArgs),
    /// Run a scenario: the real relay binary, a fleet and a swarm, ramping
    /// the offered rate; writes report.json and plot.svg
    Run(RunArgs),
}

#[derive(clap::Args)]
struct FleetArgs {
    /// Synthetic PDS hosts
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// Accounts in all (spread over the hosts)
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Total events per second; 0 = as fast as the sockets take them
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Events to emit
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Events signed ahead per batch (bounds memory)
    #[arg(long, default_value_t = 50_000)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Percent of events that are adversarial (forged signatures, broken
    /// proofs, rev rollbacks, oversize records)
    #[arg(long, default_value_t = 0.0)]
    adversarial_percent: f64,
    /// Where the DID directory listens; start the relay with
    /// `--plc-url http://<this>`
    #[arg(long, default_value = "127.0.0.1:2590")]
    directory_listen: SocketAddr,
    /// Register the accounts at this PLC directory (e.g. `atrelay plc`)
    /// instead of the embedded one; start the relay with this `--plc-url`
    #[arg(long)]
    plc_url: Option<String>,
    /// A relay to ask to crawl every host (http://host:port); uses the admin
    /// API when ATRELAY_ADMIN_PASSWORD is set, requestCrawl otherwise
    #[arg(long)]
    relay: Option<String>,
    /// Seconds to keep serving after the last event (so the relay can
    /// finish reading)
    #[arg(long, default_value_t = 10)]
    linger_secs: u64,
}

#[derive(clap::Args)]
struct SwarmArgs {
    /// The relay's firehose, e.g. ws://127.0.0.1:2470/xrpc/com.atproto.sync.subscribeRepos
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Start cursor (default: live)
    #[arg(long)]
    cursor: Option<u64>,
    /// Subscribers that decode every frame (latency, per-repo rev order)
    #[arg(long, default_value_t = 2)]
    check: usize,
    /// Frames per second each subscriber reads at most (slow-consumer mode); 0 = unlimited
    #[arg(long, default_value_t = 0.0)]
    max_rate: f64,
    /// Threads the subscribers are spread over
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `raw` (ws:// only, light) or `tungstenite` (also wss://)
    #[arg(long, value_enum, default_value = "raw")]
    client: SwarmClient,
    /// Raw client: least milliseconds between two reads of a non-checker's
    /// socket (frames gather meanwhile); 0 = read on every wake-up
    #[arg(long, default_value_t = swarm::DEFAULT_READ_INTERVAL_MS)]
    read_interval_ms: u64,
    /// Seconds to run
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

#[derive(clap::Args)]
struct RecordArgs {
    /// A firehose URL (ws:// or wss://…/xrpc/com.atproto.sync.subscribeRepos)
    #[arg(long)]
    from: String,
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    cursor: Option<u64>,
    /// Stop after this many frames
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Stop after this many seconds
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Also save each DID's document from this PLC directory, so a replay
    /// can keep the original signatures
    #[arg(long)]
    plc_url: Option<String>,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// A file written by `record`
    file: PathBuf,
    /// PDS hosts to spread the recording's DIDs over
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// `1` = recorded pace, `10` = ten times faster, `max` = as fast as possible
    #[arg(long, default_value = "max")]
    speed: String,
    /// `captured`: serve the recorded DID documents, keep signatures;
    /// `resign`: new keys per DID, re-sign every commit
    #[arg(long, value_enum, default_value = "resign")]
    identity: recording::IdentityMode,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "127.0.0.1:2590")]
    directory_listen: SocketAddr,
    /// A relay to ask to crawl the replay hosts (http://host:port)
    #[arg(long)]
    relay: Option<String>,
    #[arg(long, default_value_t = 10)]
    linger_secs: u64,
}

#[derive(clap::Args)]
struct RunArgs {
    /// A scenario file (loadtest/scenarios/*.toml)
    scenario: PathBuf,
    /// The relay binary (default: `atrelay` beside this binary)
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Where report.json, plot.svg and the relay's log go
    #[arg(long, default_value = "loadtest-out")]
    out: PathBuf,
    /// Keep the relay's data directory
    #[arg(long)]
    keep_data: bool,
    /// No progress bars
    #[arg(long)]
    quiet: bool,
    /// Override the scenario's prefill size (e.g. a 1M-event catch-up
    /// instead of 10M on a small disk)
    #[arg(long)]
    prefill_events: Option<usize>,
    /// Override the scenario's swarm client (A/B runs of the generator's
    /// own cost): `raw` or `tungstenite`
    #[arg(long, value_enum)]
    swarm_client: Option<SwarmClient>,
    /// Override the scenario's swarm threads
    #[arg(long)]
    swarm_threads: Option<usize>,
    /// Override the scenario's swarm read interval (ms; 0 = every wake-up)
    #[arg(long)]
    swarm_read_interval_ms: Option<u64>,
}

/// What a subcommand ends with: an exit code, or an error that `main`
/// prints as `error: …` (every module's own error type, or a message).
type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fleet(a) => cmd_fleet(a),
        Command::Swarm(a) => cmd_swarm(a),
        Command::Record(a) => cmd_record(a),
        Command::Replay(a) => cmd_replay(a),
        Command::Run(a) => cmd_run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Asks `relay` to crawl `hosts`: the admin API when a password is in the
/// environment (no per-client limit), requestCrawl otherwise.
fn request_crawls(relay: &str, hosts: &[String]) -> Result<(), CrawlRequestError> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(CrawlRequestError::Client)?;
    let relay = relay.trim_end_matches('/');
    let password = std::env::var("ATRELAY_ADMIN_PASSWORD").ok();
    for h in hosts {
        let body = serde_json::json!({ "hostname": h });
        let req = match &password {
            Some(p) => http
                .post(format!("{relay}/admin/hosts/add"))
                .basic_auth(ADMIN_USER, Some(p)),
            None => http.post(format!("{relay}/xrpc/com.atproto.sync.requestCrawl")),
        };
        let res = req
            .json(&body)
            .send()
            .map_err(|err| CrawlRequestError::Send {
                relay: relay.to_owned(),
                err,
            })?;
        if !res.status().is_success() {
            return Err(CrawlRequestError::Refused {
                relay: relay.to_owned(),
                host: h.clone(),
                status: res.status(),
                body: res.text().unwrap_or_default(),
            });
        }
    }
    Ok(())
}

/// Why the relay was not asked to crawl every host.
#[derive(Debug, thiserror::Error)]
enum CrawlRequestError {
    #[error(transparent)]
    Client(reqwest::Error),
    #[error("{relay}: {err}")]
    Send { relay: String, err: reqwest::Error },
    #[error("{relay} refused to crawl {host}: {status} {body}")]
    Refused {
        relay: String,
        host: String,
        status: reqwest::StatusCode,
        body: String,
    },
}

fn cmd_fleet(a: FleetArgs) -> CmdResult {
    let cfg = FleetConfig {
        hosts: a.hosts,
        accounts: a.accounts,
        seed: a.seed,
        threads: 0,
        account_order: fleet::AccountOrder::Skewed,
        plc_url: a.plc_url.clone(),
        mix: Mix {
            adversarial_percent: a.adversarial_percent,
            attacks: Attack::ALL.to_vec(),
            ..Mix::default()
        },
    };
    cfg.validate()?;
    let rt = runtime()?;
    let mut fleet = rt
        .block_on(Fleet::start(cfg, a.directory_listen))
        .map_err(|e| format!("starting the fleet: {e}"))?;
    println!("directory: {}", fleet.plc_url());
    for h in fleet.hostnames() {
        println!("host: {h}");
    }
    if let Some(relay) = &a.relay {
        request_crawls(relay, &fleet.hostnames())?;
        println!("asked {relay} to crawl {} hosts", fleet.hosts.len());
    }
    let own0 = run::relay_process::proc_usage(std::process::id()).unwrap_or_default();
    let mut left = a.events;
    let mut emit_seconds = 0.0;
    let mut emit_cpu = 0.0;
    while left > 0 {
        let n = left.min(a.batch.max(1));
        let b = ProgressBar::new(n as u64);
        b.set_message("signing");
        let stage = fleet.prepare(n, &b);
        b.finish_and_clear();
        let cpu0 = run::relay_process::proc_usage(std::process::id()).unwrap_or_default();
        let b = ProgressBar::new(n as u64);
        let emitted = fleet.emit(&stage, (a.rate > 0.0).then_some(a.rate), &b);
        b.finish_and_clear();
        let cpu1 = run::relay_process::proc_usage(std::process::id()).unwrap_or_default();
        emit_seconds += emitted.seconds;
        emit_cpu += cpu1.0 - cpu0.0;
        left -= n;
    }
    std::thread::sleep(Duration::from_secs(a.linger_secs));
    let own1 = run::relay_process::proc_usage(std::process::id()).unwrap_or_default();
    let summary = serde_json::json!({
        "events": a.events,
        "emit_seconds": emit_seconds,
        "offered_rate": a.events as f64 / emit_seconds.max(1e-9),
        "frames_sent": fleet.sent(),
        "generator_cpu_seconds_total": own1.0 - own0.0,
        "generator_cpu_seconds_while_emitting": emit_cpu,
        "expected_outcomes": fleet.tally.0.iter().map(|(e, n)| (format!("{e:?}"), *n)).collect::<std::collections::BTreeMap<_, _>>(),
        "directory_requests": fleet.directory.requests(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_swarm(a: SwarmArgs) -> CmdResult {
    let cfg = SwarmConfig {
        subscribers: a.subscribers,
        cursor: a.cursor,
        check: a.check.min(a.subscribers),
        max_rate: a.max_rate,
        threads: a.threads,
        client: a.client,
        read_interval_ms: a.read_interval_ms,
    };
    open_files::ensure(
        a.subscribers as u64,
        &format!("{} subscribers", a.subscribers),
    )?;
    let swarm = Swarm::start(&a.url, &cfg)?;
    let started = Instant::now();
    let mut latency = histogram::Histogram::new();
    let mut last = 0;
    while started.elapsed() < Duration::from_secs(a.seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let t = swarm.totals();
        let h = swarm.take_latency();
        eprintln!(
            "{:>4.0}s connected {}/{} frames {} (+{}/s) gaps {} dups {} p99 {:.1} ms",
            started.elapsed().as_secs_f64(),
            t.connected,
            t.subscribers,
            t.frames,
            t.frames - last,
            t.gaps,
            t.duplicates,
            h.quantile(0.99) as f64 / 1000.0
        );
        last = t.frames;
        latency.merge(&h);
    }
    let totals = swarm.totals();
    let secs = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "seconds": secs,
        "totals": totals,
        "frames_per_second": totals.frames as f64 / secs,
        "per_subscriber_per_second": totals.frames as f64 / secs / a.subscribers.max(1) as f64,
        "latency_ms": run::report::Quantiles::from(&latency),
    });
    swarm.stop();
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    let clean = totals.gaps == 0 && totals.duplicates == 0 && totals.rev_violations == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_record(a: RecordArgs) -> CmdResult {
    let rt = runtime()?;
    let r = rt.block_on(recording::record(
        &a.from,
        a.cursor,
        &a.out,
        a.events,
        a.seconds,
        a.plc_url.as_deref(),
    ))?;
    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn cmd_replay(a: ReplayArgs) -> CmdResult {
    let speed = match a.speed.as_str() {
        "max" => None,
        s => Some(
            s.trim_end_matches('x')
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0 && v.is_finite())
                .ok_or_else(|| format!("--speed must be a positive number or `max`, not {s:?}"))?,
        ),
    };
    let rt = runtime()?;
    let replay = rt.block_on(recording::Replay::load(
        &a.file,
        a.hosts,
        a.identity,
        a.seed,
        a.directory_listen,
    ))?;
    println!("directory: {}", replay.directory.url());
    for h in replay.hostnames() {
        println!("host: {h}");
    }
    if let Some(relay) = &a.relay {
        request_crawls(relay, &replay.hostnames())?;
    }
    let b = ProgressBar::new(replay.len() as u64);
    let done = replay.play(speed, &b);
    b.finish_and_clear();
    std::thread::sleep(Duration::from_secs(a.linger_secs));
    println!(
        "{}",
        serde_json::to_string_pretty(&done).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(a: RunArgs) -> CmdResult {
    let mut scenario = run::scenario::Scenario::load(&a.scenario)?;
    if let Some(n) = a.prefill_events {
        scenario.prefill.events = n;
    }
    if let Some(c) = a.swarm_client {
        scenario.swarm.client = c;
    }
    if let Some(n) = a.swarm_threads {
        scenario.swarm.threads = n;
    }
    if let Some(ms) = a.swarm_read_interval_ms {
        scenario.swarm.read_interval_ms = ms;
    }
    let relay_bin = match a.relay_bin {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("atrelay"),
    };
    if !relay_bin.exists() {
        return Err(format!(
            "relay binary {} not found (build it: cargo build --release, or pass --relay-bin)",
            relay_bin.display()
        )
        .into());
    }
    let report = run::run(run::RunOptions {
        scenario,
        relay_bin,
        out: a.out.clone(),
        keep_data: a.keep_data,
        progress: !a.quiet,
    })?;
    print!("{}", report.table());
    println!(
        "report: {}  plot: {}",
        a.out.join("report.json").display(),
        a.out.join("plot.svg").display()
    );
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
