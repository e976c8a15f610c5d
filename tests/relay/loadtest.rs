//! The load generator against the real relay binary, as a load tester runs
//! it: `atrelay-loadtest run` on the small smoke scenario must account for
//! every event (accepted ones delivered to every subscriber once and in
//! order, adversarial ones dropped or ignored under the right reason), and a
//! firehose recorded with `record` must replay into a fresh relay, with the
//! captured identities and re-signed, and arrive whole.
//!
//! The tier-smoke scenario does the same through a relay and a mirror of
//! it, the subscribers dealt over both.
//!
//! Correctness only: no figure here is compared with a speed.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::binary::ChildGuard;

fn loadtest() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atrelay-loadtest"));
    cmd.env("ATRELAY_LOG", "warn");
    cmd
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `atrelay serve` resolving DIDs at `plc_url`, admin API on `password`.
fn relay(dir: &Path, plc_url: &str, password: &str) -> (ChildGuard, SocketAddr) {
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_atrelay"))
            .args(["serve", "--listen", "127.0.0.1:0", "--allow-private-hosts"])
            .args(["--metrics-listen", "", "--plc-url", plc_url])
            .arg("--data-dir")
            .arg(dir)
            .env("ATRELAY_LOG", "warn")
            .env("ATRELAY_ADMIN_PASSWORD", password)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start atrelay serve"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"));
    (child, addr)
}

/// Runs a loadtest subcommand to completion (bounded) and returns stdout.
fn finish(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The JSON document at the end of a subcommand's output.
fn summary(stdout: &str) -> Value {
    let start = stdout.find("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(&stdout[start..]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs `loadtest/scenarios/<name>.toml` against the built relay: its
/// output directory, stdout and `report.json`, the run having passed.
fn run_shipped_scenario(name: &str) -> (tempfile::TempDir, String, Value) {
    let out = tempfile::tempdir().unwrap();
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("loadtest/scenarios/{name}.toml"));
    let mut cmd = loadtest();
    cmd.arg("run")
        .arg(&scenario)
        .arg("--relay-bin")
        .arg(env!("CARGO_BIN_EXE_atrelay"))
        .arg("--out")
        .arg(out.path())
        .arg("--quiet");
    let stdout = finish(cmd, &format!("loadtest run {name}"));
    assert!(stdout.contains("result: PASS"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["passed"], true, "{report:#}");
    (out, stdout, report)
}

/// Events the relay accepted over the run, all types.
fn accepted_total(report: &Value) -> u64 {
    report["relay_counts"]["accepted"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

#[test]
fn run_smoke_scenario_accounts_for_every_event() {
    let (out, _, report) = run_shipped_scenario("smoke");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 9, "{checks:?}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:#?}");
    // The adversarial share ran, so the exact-drop checks compared something.
    let dropped = report["relay_counts"]["dropped"].as_object().unwrap();
    for reason in ["bad_signature", "inversion", "oversize"] {
        assert!(
            dropped.get(reason).is_some_and(|n| n.as_u64() > Some(0)),
            "{dropped:?}"
        );
    }
    assert!(report["relay_counts"]["ignored"]["duplicate"].as_u64() > Some(0));
    let accepted = accepted_total(&report);
    assert_eq!(report["swarm"]["min_frames"].as_u64(), Some(accepted));
    assert_eq!(report["swarm"]["subscribers"], 4);
    assert_eq!(report["steps"].as_array().unwrap().len(), 3);
    // Deliveries are counted at the subscribers, step by step: all of them.
    let steps = report["steps"].as_array().unwrap();
    let deliveries: u64 = steps
        .iter()
        .map(|s| s["deliveries"].as_u64().unwrap())
        .sum();
    assert_eq!(deliveries, 4 * accepted, "{steps:#?}");
    for step in steps {
        // The generator's CPU is reported beside the relay's, split into
        // fleet and swarm.
        let gen = step["loadtest_cpu_seconds"].as_f64().unwrap();
        let parts = step["swarm_cpu_seconds"].as_f64().unwrap()
            + step["fleet_cpu_seconds"].as_f64().unwrap();
        assert!((gen - parts).abs() < 1e-6, "{step:#}");
        assert!(
            step["generator_relay_cpu_ratio"].as_f64().unwrap() > 0.0,
            "{step:#}"
        );
        assert!(
            step["relay_cpu_per_delivery_us"].as_f64().unwrap() > 0.0,
            "{step:#}"
        );
    }
    assert_eq!(report["swarm_client"], "raw");
    assert!(report["memory"]["relay_rss_before_swarm_mib"].as_f64() > Some(0.0));
    assert!(report["steps"][0]["latency_ms"]["samples"].as_u64() > Some(0));
    assert!(!report["samples"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(out.path().join("plot.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
}

/// `[tier] mirrors = 1`: `run` starts a mirror of the relay, deals the
/// subscribers over the two, and every one of them, on either, receives
/// every accepted event once and in order (the mirror keeps the relay's
/// seqs); each step reports the tier's CPU and the mirror's added latency.
#[test]
fn run_tier_smoke_scenario_delivers_through_the_mirror() {
    let (out, stdout, report) = run_shipped_scenario("tier-smoke");
    assert!(stdout.contains("tier: relay + 1 mirror"), "{stdout}");
    let checks = report["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "mirrors running and connected to the relay" && c["ok"] == true),
        "{checks:#?}"
    );
    let accepted = accepted_total(&report);
    assert!(accepted > 0);
    // Two subscribers on each endpoint, each with every accepted event.
    for endpoint in ["relay", "mirror-1"] {
        let t = &report["swarm_by_endpoint"][endpoint];
        assert_eq!(t["subscribers"], 2, "{endpoint}: {t:#}");
        assert_eq!(
            t["min_frames"].as_u64(),
            Some(accepted),
            "{endpoint}: {t:#}"
        );
        assert_eq!(
            t["max_frames"].as_u64(),
            Some(accepted),
            "{endpoint}: {t:#}"
        );
        assert_eq!(t["gaps"], 0, "{endpoint}: {t:#}");
        assert_eq!(t["duplicates"], 0, "{endpoint}: {t:#}");
        assert_eq!(t["rev_violations"], 0, "{endpoint}: {t:#}");
    }
    let step = &report["steps"][0];
    let tier = &step["tier"];
    let endpoints = tier["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{tier:#}");
    for e in endpoints {
        assert_eq!(e["deliveries"].as_u64(), Some(2 * accepted), "{e:#}");
        assert!(e["latency_ms"]["samples"].as_u64() > Some(0), "{e:#}");
    }
    assert_eq!(tier["mirrors"][0]["name"], "mirror-1", "{tier:#}");
    assert!(
        tier["mirrors"][0]["cpu_seconds"].as_f64() > Some(0.0),
        "{tier:#}"
    );
    assert!(
        tier["mirrors"][0]["rss_max_mib"].as_f64() > Some(0.0),
        "{tier:#}"
    );
    let tier_cpu = tier["tier_cpu_seconds"].as_f64().unwrap();
    let parts = tier["relay_cpu_seconds"].as_f64().unwrap()
        + tier["mirrors"][0]["cpu_seconds"].as_f64().unwrap();
    assert!((tier_cpu - parts).abs() < 1e-6, "{tier:#}");
    assert!(tier["deliveries_per_tier_cpu_second"].as_f64() > Some(0.0));
    assert!(tier["deliveries_per_second"].as_f64() > Some(0.0));
    let added = tier["mirror_added_latency_ms"]["p50"].as_f64().unwrap();
    let want = tier["mirror_latency_ms"]["p50"].as_f64().unwrap()
        - tier["relay_latency_ms"]["p50"].as_f64().unwrap();
    assert!((added - want).abs() < 1e-9, "{tier:#}");
    assert_eq!(report["mirror_logs"].as_array().unwrap().len(), 1);
    assert_eq!(report["memory"]["subscribers"], 2, "the relay's share");
    // The mirror's samples sit beside the relay's.
    let samples = report["samples"].as_array().unwrap();
    assert!(samples
        .iter()
        .any(|s| s["mirror_rss"][0].as_u64() > Some(0)));
    // No process outlives the run: none still runs on the run's configs.
    let work = out.path().join("work");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&*work.to_string_lossy()))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// The fleet can register its accounts at a real PLC directory (`atrelay
/// plc`, which checks every genesis operation) instead of its embedded one;
/// the relay then resolves the DIDs PLC derived, and every event verifies.
#[test]
fn run_with_accounts_registered_at_atrelay_plc() {
    let dir = tempfile::tempdir().unwrap();
    let mut plc = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_atrelay"))
            .args(["plc", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("plc"))
            .env("ATRELAY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(plc.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let plc_url = line
        .trim()
        .strip_prefix("atrelay plc listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    let scenario = dir.path().join("plc.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"plc\"\n[fleet]\nhosts = 2\naccounts = 6\nplc_url = \"{plc_url}\"\n\
             [swarm]\nsubscribers = 1\ncheck = 1\n\
             [ramp]\nrates = [300]\nstep_seconds = 1\nmax_p99_ms = 60000\nmin_accept_ratio = 0\n\
             [limits]\ntimeout_secs = 120\n"
        ),
    )
    .unwrap();
    let mut cmd = loadtest();
    cmd.arg("run")
        .arg(&scenario)
        .arg("--relay-bin")
        .arg(env!("CARGO_BIN_EXE_atrelay"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--quiet");
    let stdout = finish(cmd, "loadtest run with atrelay plc");
    assert!(stdout.contains("result: PASS"), "{stdout}");
    // The DIDs are PLC's: its log names each of them.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.json")).unwrap())
            .unwrap();
    assert!(report["swarm"]["min_frames"].as_u64() > Some(0), "{report}");
    let export = reqwest::blocking::get(format!("{plc_url}/export?count=100"))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(export.lines().count(), 6, "{export}");
}

#[test]
fn record_then_replay_into_fresh_relays_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let password = "loadtest-test-password";
    let fleet_directory = free_port();
    let (_a, relay_a) = relay(
        &dir.path().join("a"),
        &format!("http://{fleet_directory}"),
        password,
    );
    let events = 150;

    // Record relay A's firehose from the start, saving DID documents from
    // the fleet's directory while the fleet runs.
    let recording = dir.path().join("firehose.rec");
    let mut record = loadtest();
    record
        .arg("record")
        .arg("--from")
        .arg(format!(
            "ws://{relay_a}/xrpc/com.atproto.sync.subscribeRepos"
        ))
        .args(["--cursor", "0", "--events", &events.to_string()])
        .args(["--seconds", "60", "--plc-url"])
        .arg(format!("http://{fleet_directory}"))
        .arg("--out")
        .arg(&recording)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let recorder = record.spawn().unwrap();

    let mut fleet = loadtest();
    fleet
        .arg("fleet")
        .args([
            "--hosts",
            "2",
            "--accounts",
            "12",
            "--rate",
            "0",
            "--seed",
            "3",
        ])
        .args(["--events", &events.to_string(), "--linger-secs", "4"])
        .arg("--directory-listen")
        .arg(fleet_directory.to_string())
        .arg("--relay")
        .arg(format!("http://{relay_a}"))
        .env("ATRELAY_ADMIN_PASSWORD", password);
    let fleet_out = summary(&finish(fleet, "loadtest fleet"));
    assert_eq!(fleet_out["events"], events);

    let recorded = recorder.wait_with_output().unwrap();
    assert!(recorded.status.success(), "{recorded:?}");
    let recorded = summary(&String::from_utf8_lossy(&recorded.stdout));
    assert_eq!(recorded["frames"], events, "{recorded}");
    assert_eq!(recorded["docs"], 12, "{recorded}");

    for (mode, sub) in [("captured", "b"), ("resign", "c")] {
        let replay_directory = free_port();
        let (_relay, addr) = relay(
            &dir.path().join(sub),
            &format!("http://{replay_directory}"),
            password,
        );
        let mut replay = loadtest();
        replay
            .arg("replay")
            .arg(&recording)
            .args(["--hosts", "3", "--speed", "max", "--identity", mode])
            .args(["--linger-secs", "30", "--directory-listen"])
            .arg(replay_directory.to_string())
            .arg("--relay")
            .arg(format!("http://{addr}"))
            .env("ATRELAY_ADMIN_PASSWORD", password);
        // The replay serves until its linger ends; subscribe while it runs.
        let mut replayer = replay.stdout(Stdio::piped()).spawn().unwrap();
        let mut swarm = loadtest();
        swarm
            .arg("swarm")
            .arg("--url")
            .arg(format!("ws://{addr}/xrpc/com.atproto.sync.subscribeRepos"))
            .args(["--subscribers", "2", "--check", "1", "--cursor", "0"])
            .args(["--seconds", "8"]);
        let got = summary(&finish(swarm, &format!("swarm on the {mode} replay")));
        let _ = replayer.kill();
        let _ = replayer.wait();
        assert_eq!(
            got["totals"]["min_frames"], events,
            "{mode}: every recorded event accepted and delivered: {got:#}"
        );
        assert_eq!(got["totals"]["gaps"], 0, "{got}");
        assert_eq!(got["totals"]["rev_violations"], 0, "{got}");
    }
}
