//! `run SCENARIO`: the real relay binary, a fleet and a swarm together.
//!
//! 1. Start the fleet (hosts + DID directory), then `atrelay serve` with a
//!    generated config crawling every host, in a fresh data directory.
//! 2. Prefill (if the scenario asks): ingest a backlog at full speed, in
//!    bounded chunks, before any subscriber connects.
//! 3. Connect the swarm (live, or from a cursor: then measure catch-up).
//! 4. Ramp: for each offered rate, sign the step's events ahead, release
//!    them at the rate, wait until the relay has processed every one and
//!    every subscriber has received every accepted one; record accepted
//!    rate, latency quantiles, relay CPU per event and RSS. Stop at the first
//!    step that does not keep up (accepted < ratio × offered, or p99 over
//!    the bound).
//! 5. Check: the relay's accepted / dropped / ignored counters equal what the
//!    fleet staged, label by label; every subscriber received every accepted
//!    event; no gaps, duplicates or per-repo rev regressions. Write
//!    `report.json` and `plot.svg`; exit non-zero if a check failed.
//!
//! With `[tier] mirrors = N`, N mirrors of the relay start after it
//! (`tier`), the swarm is dealt over the relay and them, and each step also
//! reports the tier's deliveries per CPU-second and the latency a mirror
//! adds (`tier_report`).
//!
//! Everything is bounded: the scenario's `timeout_secs` ends the run.

pub mod plot;
pub mod quantiles;
pub mod relay_process;
pub mod report;
pub mod scenario;
pub mod tier;
pub mod tier_report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atrelay::relay::metrics::{
    EVENTS_ACCEPTED as ACCEPTED, EVENTS_DROPPED as DROPPED, EVENTS_IGNORED as IGNORED,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::fleet::{Fleet, Tally};
use crate::histogram::Histogram;
use crate::swarm::{self, Swarm};
use crate::thread_cpu::threads_cpu_seconds;
use relay_process::{by_label, proc_usage, sum, RelayProcess, RelayProcessError};
use report::{Check, Memory, Quantiles, Report, Sample, Step};
use scenario::Scenario;
use tier::{Mirrors, StepFigures, TierMeter};

/// How `run` was asked to run.
pub struct RunOptions {
    pub scenario: Scenario,
    pub relay_bin: PathBuf,
    pub out: PathBuf,
    /// Keep the relay's data directory afterwards.
    pub keep_data: bool,
    /// Show progress bars (on a terminal).
    pub progress: bool,
}

/// A runtime that would not build, named.
#[derive(Debug, thiserror::Error)]
#[error("{name} runtime: {err}")]
struct RuntimeError {
    name: String,
    err: std::io::Error,
}

fn runtime(name: &str, workers: usize) -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|err| RuntimeError {
            name: name.to_owned(),
            err,
        })
}

fn bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(what.to_owned());
    b
}

/// Relay counters by label: accepted by type, dropped and ignored by reason
/// (zero samples left out).
fn relay_counts(metrics: &BTreeMap<String, f64>) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (kind, name, label) in [
        ("accepted", ACCEPTED, "type"),
        ("dropped", DROPPED, "reason"),
        ("ignored", IGNORED, "reason"),
    ] {
        let counts: BTreeMap<String, u64> = by_label(metrics, name, label)
            .into_iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(k, v)| (k, v as u64))
            .collect();
        out.insert(kind.to_owned(), counts);
    }
    out
}

fn expected_counts(tally: &Tally) -> BTreeMap<String, BTreeMap<String, u64>> {
    ["accepted", "dropped", "ignored"]
        .into_iter()
        .map(|kind| {
            let m = tally
                .by_label(kind)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            (kind.to_owned(), m)
        })
        .collect()
}

/// Events the relay has finished with (accepted, dropped or ignored).
fn processed(relay: &RelayProcess) -> Result<(u64, u64), RelayProcessError> {
    let m = relay.scrape()?;
    let accepted = sum(&m, ACCEPTED, "", "") as u64;
    Ok((
        accepted + sum(&m, DROPPED, "", "") as u64 + sum(&m, IGNORED, "", "") as u64,
        accepted,
    ))
}

/// Resource samples every 250 ms until stopped.
struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(relay_pid: u32, mirror_pids: Vec<u32>, started: Instant) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let (Some((relay_cpu, relay_rss)), Some((loadtest_cpu, _))) =
                    (proc_usage(relay_pid), proc_usage(std::process::id()))
                {
                    let (mirror_cpu, mirror_rss) = mirror_pids
                        .iter()
                        .map(|pid| proc_usage(*pid).unwrap_or_default())
                        .unzip();
                    s.lock().expect("samples").push(Sample {
                        t: started.elapsed().as_secs_f64(),
                        relay_cpu,
                        relay_rss,
                        loadtest_cpu,
                        swarm_cpu: threads_cpu_seconds(swarm::THREAD_PREFIX),
                        mirror_cpu,
                        mirror_rss,
                    });
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn max_rss_since(&self, t: f64) -> u64 {
        self.samples
            .lock()
            .expect("samples")
            .iter()
            .filter(|s| s.t >= t)
            .map(|s| s.relay_rss)
            .max()
            .unwrap_or(0)
    }

    /// Each mirror's highest RSS sampled since `t`.
    fn max_mirror_rss_since(&self, t: f64, mirrors: usize) -> Vec<u64> {
        let samples = self.samples.lock().expect("samples");
        (0..mirrors)
            .map(|i| {
                samples
                    .iter()
                    .filter(|s| s.t >= t)
                    .filter_map(|s| s.mirror_rss.get(i).copied())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }
}

/// Waits until the relay processed `target` events and (with a swarm) every
/// subscriber holds `frames` frames. Returns false on timeout.
fn wait_for(
    relay: &RelayProcess,
    target: u64,
    swarm: Option<(&Swarm, u64)>,
    until: Instant,
) -> Result<bool, RelayProcessError> {
    loop {
        let (done, _) = processed(relay)?;
        let swarm_done = swarm.map_or(true, |(s, frames)| s.min_frames() >= frames);
        if done >= target && swarm_done {
            return Ok(true);
        }
        if Instant::now() > until {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a scenario to the end and reports; `Err` only when the run could
/// not be carried out at all (a failed check is a report with `passed:
/// false`).
pub fn run(opts: RunOptions) -> Result<Report, Box<dyn std::error::Error>> {
    let s = &opts.scenario;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(s.limits.timeout_secs);
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let work = opts.out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    crate::open_files::ensure(
        (s.swarm.subscribers + 4 * s.fleet.hosts) as u64,
        &format!(
            "{} subscribers and {} hosts",
            s.swarm.subscribers, s.fleet.hosts
        ),
    )?;
    let fleet_rt = runtime("loadtest-fleet", 1)?;
    let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut fleet = fleet_rt
        .block_on(Fleet::start(s.fleet.clone(), any))
        .map_err(|e| format!("starting the fleet: {e}"))?;
    let mut relay = RelayProcess::start(
        &opts.relay_bin,
        &work,
        &s.relay,
        &fleet.plc_url(),
        &fleet.hostnames(),
    )?;
    let mut mirrors = Mirrors::start(&opts.relay_bin, &work, &s.relay, &relay, s.tier.mirrors)?;
    let sampler = Sampler::start(relay.pid(), mirrors.pids(), started);
    let mut report = Report {
        scenario: s.name.clone(),
        description: s.description.clone(),
        machine: machine(),
        started_at: atrelay::wire::syntax::format_datetime_micros(crate::emit_time::now_micros()),
        fleet_hosts: s.fleet.hosts,
        fleet_accounts: s.fleet.accounts,
        subscribers: s.swarm.subscribers,
        swarm_client: format!("{:?}", s.swarm.client).to_lowercase(),
        swarm_threads: s.swarm.threads.max(1).min(s.swarm.subscribers.max(1)),
        // The tungstenite client reads on every wake-up.
        swarm_read_interval_ms: match s.swarm.client {
            swarm::SwarmClient::Raw => s.swarm.read_interval_ms,
            swarm::SwarmClient::Tungstenite => 0,
        },
        relay_log: relay.log_path.display().to_string(),
        mirror_logs: mirrors.logs(),
        ..Report::default()
    };
    let drain = Duration::from_secs(s.limits.drain_secs);
    // Subscriber i goes to endpoint i mod (mirrors + 1); each mirror is
    // also one of the relay's subscribers.
    let shares: Vec<usize> = (0..s.endpoints())
        .map(|e| (e..s.swarm.subscribers).step_by(s.endpoints()).count())
        .collect();
    relay.check_connection_cap(shares[0] + mirrors.len())?;
    mirrors.check_connection_caps(&shares[1..])?;

    // 2. Prefill.
    if s.prefill.events > 0 {
        let chunk = if s.prefill.chunk == 0 {
            100_000
        } else {
            s.prefill.chunk
        };
        let t = Instant::now();
        let mut left = s.prefill.events;
        let b = bar(opts.progress, s.prefill.events as u64, "prefill");
        while left > 0 && Instant::now() < deadline {
            let n = left.min(chunk);
            let stage = fleet.prepare(n, &ProgressBar::hidden());
            fleet.emit(&stage, None, &ProgressBar::hidden());
            if !wait_for(&relay, fleet.tally.total(), None, deadline)? {
                break;
            }
            left -= n;
            b.inc(n as u64);
        }
        b.finish_and_clear();
        report.prefill_events = s.prefill.events - left;
        report.prefill_seconds = t.elapsed().as_secs_f64();
    }
    let prefill_accepted = processed(&relay)?.1;

    // 3. The swarm.
    let rss_before_swarm = proc_usage(relay.pid()).unwrap_or_default().1;
    let swarm = Swarm::start_spread(&mirrors.endpoint_urls(&relay), &s.swarm)?;
    let connect_by = Instant::now() + Duration::from_secs(60);
    while swarm.totals().connected < s.swarm.subscribers && Instant::now() < connect_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    let connected_at_start = swarm.totals().connected;
    let rss_connected = proc_usage(relay.pid()).unwrap_or_default().1;
    let t_connected = started.elapsed().as_secs_f64();
    let mut per_subscriber = if s.swarm.cursor.is_some() {
        prefill_accepted
    } else {
        0
    };
    if s.swarm.cursor.is_some() && per_subscriber > 0 {
        let t = Instant::now();
        let b = bar(opts.progress, per_subscriber, "catch-up (slowest)");
        while swarm.min_frames() < per_subscriber && Instant::now() < deadline {
            b.set_position(swarm.min_frames());
            std::thread::sleep(Duration::from_millis(20));
        }
        b.finish_and_clear();
        let secs = t.elapsed().as_secs_f64();
        report.catchup_frames_per_second = Some(swarm.totals().frames as f64 / secs.max(1e-9));
    }
    swarm.take_latency();

    // 4. The ramp.
    let with_swarm = s.swarm.subscribers > 0;
    for &rate in &s.ramp.rates {
        if Instant::now() > deadline {
            break;
        }
        let n = s.step_events(rate);
        let b = bar(opts.progress, n as u64, &format!("sign {n} events"));
        let stage = fleet.prepare(n, &b);
        b.finish_and_clear();
        swarm.take_latency();
        let (relay_cpu0, _) = proc_usage(relay.pid()).unwrap_or_default();
        let (own_cpu0, _) = proc_usage(std::process::id()).unwrap_or_default();
        let swarm_cpu0 = threads_cpu_seconds(swarm::THREAD_PREFIX);
        let frames0 = swarm.totals().frames;
        let meter = (mirrors.len() > 0).then(|| TierMeter::begin(&mirrors, &swarm));
        let (_, accepted0) = processed(&relay)?;
        let t_rel = started.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let label = if rate > 0.0 {
            format!("emit at {rate:.0}/s")
        } else {
            "emit at max".to_owned()
        };
        let b = bar(opts.progress, n as u64, &label);
        let emitted = fleet.emit(&stage, (rate > 0.0).then_some(rate), &b);
        b.finish_and_clear();
        let until = (Instant::now() + drain).min(deadline);
        let expect_frames = per_subscriber + stage.tally.accepted();
        let done = if s.complete() {
            wait_for(
                &relay,
                fleet.tally.total(),
                with_swarm.then_some((&swarm, expect_frames)),
                until,
            )?
        } else {
            // Budgets may hold events upstream: give the relay the step's
            // length again, then take what it did.
            std::thread::sleep(Duration::from_secs_f64(s.ramp.step_seconds).min(drain));
            true
        };
        let secs = t0.elapsed().as_secs_f64();
        let (_, accepted1) = processed(&relay)?;
        let accepted = accepted1 - accepted0;
        per_subscriber += accepted;
        let (relay_cpu1, _) = proc_usage(relay.pid()).unwrap_or_default();
        let (own_cpu1, _) = proc_usage(std::process::id()).unwrap_or_default();
        let swarm_cpu = threads_cpu_seconds(swarm::THREAD_PREFIX) - swarm_cpu0;
        let deliveries = swarm.totals().frames - frames0;
        let (relay_cpu, own_cpu) = (relay_cpu1 - relay_cpu0, own_cpu1 - own_cpu0);
        let per = |cpu: f64, n: u64| 1e6 * cpu / (n.max(1) as f64);
        let latency_by_endpoint = swarm.take_latency_by_endpoint();
        let latency = Histogram::merged(&latency_by_endpoint);
        let accepted_rate = accepted as f64 / secs.max(1e-9);
        let latency_ms = Quantiles::from(&latency);
        // A max-speed step releases everything at once: what it offered is
        // what the relay could take, over the whole step.
        let offered = if rate > 0.0 {
            emitted.rate
        } else {
            n as f64 / secs.max(1e-9)
        };
        // Keeping up means accepting what was offered, less the share the
        // relay must refuse (the adversarial events).
        let acceptable = stage.tally.accepted() as f64 / n as f64;
        let reference = if rate > 0.0 { rate.min(offered) } else { 0.0 } * acceptable;
        let kept_up = done
            && accepted_rate >= s.ramp.min_accept_ratio * reference
            && latency_ms.p99 <= s.ramp.max_p99_ms;
        let step = Step {
            target_rate: rate,
            events: n,
            offered_rate: offered,
            accepted,
            accepted_rate,
            drain_seconds: secs - emitted.seconds,
            latency_ms,
            relay_cpu_seconds: relay_cpu,
            relay_cpu_per_event_us: per(relay_cpu, accepted),
            relay_rss_max_mib: sampler.max_rss_since(t_rel) as f64 / (1024.0 * 1024.0),
            loadtest_cpu_seconds: own_cpu,
            swarm_cpu_seconds: swarm_cpu,
            fleet_cpu_seconds: own_cpu - swarm_cpu,
            generator_cpu_per_event_us: per(own_cpu, accepted),
            deliveries,
            relay_cpu_per_delivery_us: per(relay_cpu, deliveries),
            generator_cpu_per_delivery_us: per(own_cpu, deliveries),
            swarm_cpu_per_delivery_us: per(swarm_cpu, deliveries),
            generator_relay_cpu_ratio: own_cpu / relay_cpu.max(1e-9),
            deliveries_per_second: accepted_rate * s.swarm.subscribers as f64,
            prepare_seconds: stage.prepare_seconds,
            bytes: stage.bytes,
            kept_up,
            tier: meter.map(|m| {
                m.finish(
                    &mirrors,
                    &swarm,
                    StepFigures {
                        seconds: secs,
                        relay_cpu_seconds: relay_cpu,
                        generator_cpu_seconds: own_cpu,
                        mirror_rss_max: sampler.max_mirror_rss_since(t_rel, mirrors.len()),
                        latency: latency_by_endpoint,
                    },
                )
            }),
        };
        if opts.progress {
            eprintln!(
                "step {:>7.0}/s: accepted {:.0}/s, p99 {:.1} ms, relay {:.1} µs CPU/event, \
                 generator/relay CPU {:.2}{}",
                rate,
                step.accepted_rate,
                step.latency_ms.p99,
                step.relay_cpu_per_event_us,
                step.generator_relay_cpu_ratio,
                if kept_up { "" } else { " — did not keep up" }
            );
        }
        report.steps.push(step);
        if !kept_up && !s.ramp.continue_when_saturated {
            break;
        }
    }
    report.sustained_rate = report
        .steps
        .iter()
        .filter(|s| s.kept_up)
        .map(|s| s.accepted_rate)
        .fold(0.0, f64::max);

    // 5. Checks.
    let metrics = relay.scrape()?;
    let found = relay_counts(&metrics);
    let expected = expected_counts(&fleet.tally);
    let totals = swarm.totals();
    let accepted_total = sum(&metrics, ACCEPTED, "", "") as u64;
    let processed_total = processed(&relay)?.0;
    report.held_upstream = fleet.tally.total().saturating_sub(processed_total);
    let mut checks = Vec::new();
    if s.complete() {
        for kind in ["accepted", "dropped", "ignored"] {
            checks.push(Check::new(
                format!("relay {kind} events by label"),
                format!("{:?}", expected[kind]),
                format!("{:?}", found[kind]),
            ));
        }
    } else {
        let allowed: Vec<String> = expected["dropped"]
            .keys()
            .cloned()
            .chain(["account_throttled".to_owned()])
            .collect();
        let unexpected: Vec<&String> = found["dropped"]
            .keys()
            .filter(|k| !allowed.contains(k))
            .collect();
        checks.push(Check::new(
            "no drop reasons besides the attacks and the account limit",
            "[]",
            format!("{unexpected:?}"),
        ));
        checks.push(Check::new(
            "nothing processed that was not emitted",
            "true",
            (processed_total <= fleet.tally.total()).to_string(),
        ));
    }
    report.memory = Memory::new(
        rss_before_swarm,
        rss_connected,
        sampler.max_rss_since(t_connected),
        shares[0],
    );
    if with_swarm {
        checks.push(Check::new(
            "subscribers connected before the first step",
            s.swarm.subscribers,
            connected_at_start,
        ));
        let want = if s.swarm.cursor.is_some() {
            accepted_total
        } else {
            accepted_total - prefill_accepted
        };
        checks.push(Check::new(
            "every subscriber received every accepted event (min, max)",
            format!("({want}, {want})"),
            format!("({}, {})", totals.min_frames, totals.max_frames),
        ));
        checks.push(Check::new("seq gaps", 0, totals.gaps));
        checks.push(Check::new(
            "duplicate or backwards seqs",
            0,
            totals.duplicates,
        ));
        checks.push(Check::new(
            "per-repo rev regressions",
            0,
            totals.rev_violations,
        ));
        checks.push(Check::new("undecodable frames", 0, totals.decode_errors));
        // A checker that saw the whole stream must have seen each type as
        // often as the fleet staged it.
        let saw_all = s.swarm.cursor == Some(0) || s.prefill.events == 0;
        if s.complete() && s.swarm.check > 0 && saw_all {
            checks.push(Check::new(
                "a checker's frames by type",
                format!("{:?}", expected["accepted"]),
                format!("{:?}", totals.checker_types),
            ));
        }
    }
    if let Ok(hosts) = relay.admin_hosts() {
        for h in hosts["hosts"].as_array().into_iter().flatten() {
            let status = h["status"].as_str().unwrap_or("unknown").to_owned();
            *report.host_statuses.entry(status).or_default() += 1;
        }
    }
    if mirrors.len() > 0 {
        checks.push(Check::new(
            "mirrors running and connected to the relay",
            mirrors.len(),
            mirrors.connected(),
        ));
        report.swarm_by_endpoint = mirrors
            .endpoint_names()
            .into_iter()
            .zip(swarm.endpoint_totals())
            .collect();
    }
    let alive = relay_alive(&mut relay);
    checks.push(Check::new("relay still running", "true", alive.to_string()));
    report.passed = checks.iter().all(|c| c.ok);
    report.checks = checks;
    report.expected = expected;
    report.relay_counts = found;
    report.swarm = totals;

    swarm.stop();
    mirrors.stop();
    relay.stop();
    report.samples = sampler.finish();
    report.seconds = started.elapsed().as_secs_f64();
    drop(fleet);
    drop(fleet_rt);
    if !opts.keep_data {
        let _ = std::fs::remove_dir_all(work.join("relay-data"));
        for name in mirrors.endpoint_names().iter().skip(1) {
            let _ = std::fs::remove_dir_all(work.join(format!("{name}-data")));
        }
    }
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(opts.out.join("report.json"), json)?;
    std::fs::write(opts.out.join("plot.svg"), plot::svg(&report))?;
    Ok(report)
}

fn relay_alive(relay: &mut RelayProcess) -> bool {
    relay.scrape().is_ok()
}

/// CPU model and core count, for the report.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0.0, |kb| kb as f64 / (1024.0 * 1024.0));
    format!("{model}, {cores} cores, {mem_gib:.0} GiB")
}
