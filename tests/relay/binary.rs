//! The real `atrelay serve` binary from the outside, the way an operator sees
//! it: the Prometheus scrape parses strictly, keeps bounded labels and moves
//! with traffic; the admin API is closed without a password and behind HTTP
//! Basic with one.
//!
//! [`RelayProcess`] is the shared way to run the binary in these tests (the
//! crash test uses it too): it reads the "listening" line for the address and
//! kills the child when dropped, so a failing test leaves no relay behind.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Subscriber;
use crate::pipeline::Net;

/// Kills (SIGKILL) and reaps the child on drop, panics included.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `atrelay serve` crawling the [`Net`]'s PDS.
pub struct RelayProcess {
    /// The child itself, for tests that kill it on purpose.
    pub child: ChildGuard,
    /// HTTP and firehose address.
    pub addr: SocketAddr,
    /// The Prometheus exporter's address, when enabled.
    pub metrics: Option<SocketAddr>,
    /// What the relay wrote on stderr (drained all along).
    pub stderr: Arc<StderrLog>,
}

/// A child's stderr as it is drained: how much, and its first and last
/// 16 KiB.
#[derive(Default)]
pub struct StderrLog {
    bytes: AtomicU64,
    head: Mutex<String>,
    tail: Mutex<String>,
}

impl StderrLog {
    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// The first 16 KiB.
    pub fn head(&self) -> String {
        self.head.lock().unwrap().clone()
    }

    /// The last 16 KiB.
    pub fn tail(&self) -> String {
        self.tail.lock().unwrap().clone()
    }
}

impl RelayProcess {
    /// Starts the binary on `net`'s data dir, PLC and PDS, with `env` added
    /// (`ATRELAY_ADMIN_PASSWORD` is always cleared first, so only `env` decides
    /// whether the admin API is on). With `metrics`, the exporter listens on a
    /// free loopback port; picking one races other processes, so a failed
    /// start is retried once.
    pub async fn spawn(net: &Net, metrics: bool, env: &[(&str, &str)]) -> RelayProcess {
        Self::spawn_with(net, metrics, env, |_| {}).await
    }

    /// [`RelayProcess::spawn`] as a public relay runs: without
    /// `--allow-private-hosts` (so it cannot reach the test PDS on loopback).
    pub async fn spawn_public(net: &Net, metrics: bool, env: &[(&str, &str)]) -> RelayProcess {
        Self::spawn_inner(net, metrics, env, false, |_| {}).await
    }

    /// [`RelayProcess::spawn`], with `configure` applied to the command
    /// last (e.g. a `pre_exec` that sets the child's resource limits).
    pub async fn spawn_with(
        net: &Net,
        metrics: bool,
        env: &[(&str, &str)],
        configure: impl Fn(&mut Command),
    ) -> RelayProcess {
        Self::spawn_inner(net, metrics, env, true, configure).await
    }

    async fn spawn_inner(
        net: &Net,
        metrics: bool,
        env: &[(&str, &str)],
        allow_private: bool,
        configure: impl Fn(&mut Command),
    ) -> RelayProcess {
        Self::spawn_retrying(metrics, |metrics_listen| {
            let mut cmd = serve_command(net.dir.path(), metrics_listen, env);
            cmd.args(allow_private.then_some("--allow-private-hosts"))
                .args(["--plc-url", &net.plc.url, "--crawl", &net.pds.hostname()]);
            configure(&mut cmd);
            cmd
        })
        .await
    }

    /// Starts `atrelay serve --upstream <upstream>` (a mirror) on `dir`,
    /// with `env` added; with `metrics`, the exporter on a free port.
    pub async fn spawn_mirror(
        upstream: &str,
        dir: &std::path::Path,
        metrics: bool,
        env: &[(&str, &str)],
    ) -> RelayProcess {
        Self::spawn_retrying(metrics, |metrics_listen| {
            let mut cmd = serve_command(dir, metrics_listen, env);
            cmd.args(["--upstream", upstream]);
            cmd
        })
        .await
    }

    /// Starts the command `build` makes for a metrics address ("" for
    /// none). With `metrics`, the exporter listens on a free loopback port;
    /// picking one races other processes, so a failed start is retried once.
    async fn spawn_retrying(metrics: bool, build: impl Fn(&str) -> Command) -> RelayProcess {
        let mut last_err = String::new();
        for _ in 0..2 {
            let metrics_addr = metrics.then(free_port);
            let metrics_listen = metrics_addr.map(|a| a.to_string()).unwrap_or_default();
            match start_child(build(&metrics_listen)).await {
                Ok((child, addr, stderr)) => {
                    return RelayProcess {
                        child,
                        addr,
                        metrics: metrics_addr,
                        stderr,
                    }
                }
                Err(e) if metrics => last_err = e,
                Err(e) => panic!("atrelay serve did not start: {e}"),
            }
        }
        panic!("atrelay serve did not start (twice): {last_err}");
    }

    /// `http://ADDR` of the relay's HTTP API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Scrapes `/metrics` and parses it strictly.
    pub async fn scrape(&self) -> Scrape {
        let addr = self.metrics.expect("started with metrics");
        let res = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("scrape /metrics");
        assert_eq!(res.status(), 200, "/metrics answers 200");
        let text = res.text().await.unwrap();
        Scrape::parse(&text).unwrap_or_else(|e| panic!("{e}\n--- scrape ---\n{text}"))
    }

    /// Scrapes until `ready` holds (the gauges and the exporter lag the
    /// events a little), or gives up after 20 s and returns the last scrape
    /// for the caller's precise assertions.
    pub async fn scrape_until(&self, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.scrape().await;
            if ready(&s) || Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `atrelay serve` on 127.0.0.1 port 0 with its log in `dir`, metrics on
/// `metrics_listen` ("" for none), warnings logged, no admin password
/// unless `env` (added last) sets one; stdout and stderr piped.
fn serve_command(dir: &std::path::Path, metrics_listen: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atrelay"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", metrics_listen])
        .arg("--data-dir")
        .arg(dir)
        .env("ATRELAY_LOG", "warn")
        .env_remove("ATRELAY_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Spawns `cmd` (stdout and stderr piped) and reads its "listening on
/// http://ADDR" line; stderr is drained all along.
async fn start_child(mut cmd: Command) -> Result<(ChildGuard, SocketAddr, Arc<StderrLog>), String> {
    let mut child = ChildGuard(cmd.spawn().expect("start atrelay serve"));
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    // Drained all along so a chatty relay never blocks on a full pipe;
    // the tail explains a failed start.
    let log = Arc::new(StderrLog::default());
    let drain = {
        let log = log.clone();
        std::thread::spawn(move || drain_stderr(stderr, &log))
    };
    // A blocking read, off the runtime that serves the test PDS and PLC.
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    })
    .await
    .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Ok((child, addr, log)),
        None => {
            drop(child);
            let _ = drain.join();
            Err(format!("stdout {line:?}, stderr: {}", log.tail()))
        }
    }
}

/// Counts what `from` yields and keeps its first and last 16 KiB.
fn drain_stderr(mut from: impl Read, log: &StderrLog) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            return;
        }
        log.bytes.fetch_add(n as u64, Ordering::SeqCst);
        let text = String::from_utf8_lossy(&buf[..n]);
        {
            let mut head = log.head.lock().unwrap();
            if head.len() < 16_384 {
                head.push_str(&text);
            }
        }
        let mut t = log.tail.lock().unwrap();
        t.push_str(&text);
        if t.len() > 16_384 {
            let mut cut = t.len() - 16_384;
            while !t.is_char_boundary(cut) {
                cut += 1;
            }
            t.drain(..cut);
        }
    }
}

/// A loopback address that was free a moment ago.
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A sample's labels, in order.
pub type Labels = Vec<(String, String)>;

/// One sample line: `name{labels} value`.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// A parsed Prometheus text exposition (format 0.0.4).
#[derive(Debug)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family name → type, from `# TYPE`.
    pub types: Vec<(String, String)>,
}

impl Scrape {
    /// Parses strictly: every line is a sample, a well-formed `# HELP` or
    /// `# TYPE`, or blank; every sample belongs to a declared family (a
    /// histogram's through `_bucket`/`_sum`/`_count`).
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut samples = Vec::new();
        let mut types: Vec<(String, String)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let err = |what: &str| format!("line {}: {what}: {line:?}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let rest = rest.strip_prefix(' ').ok_or_else(|| err("bad comment"))?;
                let (kind, rest) = rest.split_once(' ').ok_or_else(|| err("bad comment"))?;
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if !is_metric_name(name) {
                    return Err(err("bad metric name in comment"));
                }
                match kind {
                    "HELP" => check_help(tail).map_err(|e| err(&e))?,
                    "TYPE" => {
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail)
                        {
                            return Err(err("unknown type"));
                        }
                        if types.iter().any(|(n, _)| n == name) {
                            return Err(err("family typed twice"));
                        }
                        types.push((name.to_owned(), tail.to_owned()));
                    }
                    _ => return Err(err("comment is neither HELP nor TYPE")),
                }
                continue;
            }
            let sample = parse_sample(line).map_err(|e| err(&e))?;
            let family_ok = types.iter().any(|(family, kind)| {
                sample.name == *family
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| sample.name == format!("{family}{s}")))
                    || (kind == "summary"
                        && ["_sum", "_count"]
                            .iter()
                            .any(|s| sample.name == format!("{family}{s}")))
            });
            if !family_ok {
                return Err(err("sample of a family without a preceding # TYPE"));
            }
            samples.push(sample);
        }
        Ok(Scrape { samples, types })
    }

    /// The value of the sample named `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    /// [`Scrape::get`], 0 when absent (counters appear on first increment).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// HELP text: only `\\` and `\n` escapes.
fn check_help(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return Err("bad escape in HELP".into());
        }
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("bad metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after)?;
        labels = parsed;
        rest = after;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or(""))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| "bad timestamp")?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"}` (after the `{`) → the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after) = s.split_once("=\"").ok_or("bad label")?;
        if !is_label_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        if labels.iter().any(|(k, _)| k == key) {
            return Err(format!("label {key:?} twice"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = &after[end + 1..];
        if let Some(next) = s.strip_prefix(',') {
            s = next;
        } else if !s.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        // Rust also accepts "inf", "infinity", "nan": not Prometheus.
        _ if v
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            Err(format!("bad value {v:?}"))
        }
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

#[test]
fn the_parser_is_strict() {
    let ok = "# HELP a_b Help with \\\\ and \\n.\n# TYPE a_b counter\na_b{type=\"x\\\"y\",k=\"\"} 3\n\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    let s = Scrape::parse(ok).unwrap();
    assert_eq!(s.get("a_b", &[("type", "x\"y")]), Some(3.0));
    assert_eq!(s.get("h_bucket", &[("le", "+Inf")]), Some(1.0));
    for bad in [
        "a_b 1\n",                            // no TYPE
        "# TYPE a counter\na{k=\"v} 1\n",     // unterminated
        "# TYPE a counter\na{k=\"v\" 1\n",    // no }
        "# TYPE a counter\na{1k=\"v\"} 1\n",  // label name
        "# TYPE a counter\na inf\n",          // value spelling
        "# TYPE a counter\na{k=\"\\t\"} 1\n", // escape
        "# TYPE a counter\na  1\n",           // two spaces
        "# TYPE a gauge\n# TYPE a gauge\n",   // typed twice
        "# TYPE a thing\n",                   // unknown type
        "# something else\n",
        "# TYPE 1a counter\n",
    ] {
        assert!(Scrape::parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// The label check for bounded label sets: no DID, no address.
fn assert_bounded_labels(s: &Scrape) {
    for sample in &s.samples {
        for (k, v) in &sample.labels {
            assert!(
                !v.contains("did:") && !v.contains("127.0.0.1"),
                "unbounded label {k}={v:?} on {}",
                sample.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_parses_and_moves_with_traffic() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay =
            RelayProcess::spawn(&net, true, &[("ATRELAY_CRAWL_IDLE_AFTER_SECS", "1")]).await;

        let first = relay.scrape().await;
        assert!(!first.samples.is_empty(), "a fresh relay exports something");
        let names: HashSet<&str> = first
            .samples
            .iter()
            .map(|s| s.name.as_str())
            .chain(first.types.iter().map(|(n, _)| n.as_str()))
            .collect();
        for name in names {
            assert!(
                name.starts_with("atrelay_"),
                "metric {name} is not atrelay_*"
            );
        }
        assert_bounded_labels(&first);

        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        let mut bob = net.account();
        for i in 0..10 {
            net.pds.emit_commit(&alice.post(&format!("alice {i}")));
            net.pds.emit_commit(&bob.post(&format!("bob {i}")));
        }
        // Signed by a key that is not alice's, on top of her real head.
        let mut mallory = alice.impostor();
        net.pds.emit_commit(&mallory.post("forged"));
        // Same DID, so verified after the forgery: seeing it means the
        // forgery was decided.
        net.pds.emit_commit(&alice.post("after the forgery"));
        let valid = 21;
        sub.take(valid).await;

        let s = relay
            .scrape_until(|s| {
                s.value(
                    "atrelay_relay_events_dropped_total",
                    &[("reason", "bad_signature")],
                ) >= 1.0
                    && s.value("atrelay_hosts", &[("status", "active")]) >= 1.0
                    && s.value("atrelay_fanout_subscribers", &[]) >= 1.0
                    && s.value("atrelay_log_last_seq", &[]) >= valid as f64
            })
            .await;
        let v = valid as f64;
        let commit = [("type", "commit")];
        let at_least = |name: &str, labels: &[(&str, &str)], min: f64| {
            let got = s.value(name, labels);
            assert!(got >= min, "{name}{labels:?} = {got}, want >= {min}");
        };
        at_least("atrelay_relay_events_received_total", &commit, v + 1.0);
        at_least("atrelay_relay_events_accepted_total", &commit, v);
        at_least("atrelay_log_last_seq", &[], v);
        at_least("atrelay_relay_verify_seconds_count", &[], v + 1.0);
        at_least(
            "atrelay_relay_verify_seconds_bucket",
            &[("le", "+Inf")],
            v + 1.0,
        );
        at_least("atrelay_fanout_subscribers", &[], 1.0);
        at_least("atrelay_hosts", &[("status", "active")], 1.0);
        assert_eq!(
            s.value("atrelay_crawler_connections", &[]),
            1.0,
            "one upstream connection"
        );
        assert_eq!(
            s.value(
                "atrelay_relay_events_dropped_total",
                &[("reason", "bad_signature")]
            ),
            1.0,
            "the forgery is counted once"
        );
        assert!(
            s.get("atrelay_log_append_seconds_count", &[]).is_some()
                && s.get("atrelay_relay_group_commit_events_count", &[])
                    .is_some(),
            "the log and group-commit histograms are exported"
        );
        assert_bounded_labels(&s);
        assert!(s.samples.iter().all(|x| x.name.starts_with("atrelay_")));
    })
    .await
    .expect("test timed out");
}

/// `GET` or `POST` on the relay with optional Basic credentials.
pub async fn call(
    relay: &RelayProcess,
    post: bool,
    path: &str,
    creds: Option<(&str, &str)>,
) -> reqwest::Response {
    let client = reqwest::Client::new();
    let url = relay.url(path);
    let mut req = if post {
        client.post(url)
    } else {
        client.get(url)
    };
    if let Some((user, pass)) = creds {
        req = req.basic_auth(user, Some(pass));
    }
    req.send().await.expect("request the relay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_requires_the_password() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;

        // Without the variable: no admin API at all, even with credentials.
        let relay = RelayProcess::spawn(&net, false, &[]).await;
        for creds in [None, Some(("admin", "anything"))] {
            let res = call(&relay, false, "/admin/hosts", creds).await;
            assert_eq!(res.status(), 404);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"], "AdminDisabled");
        }
        drop(relay); // frees the data dir for the next start

        const PASSWORD: &str = "correct horse battery staple";
        let relay = RelayProcess::spawn(&net, false, &[("ATRELAY_ADMIN_PASSWORD", PASSWORD)]).await;
        let health = call(&relay, false, "/xrpc/_health", None).await;
        assert_eq!(health.status(), 200, "non-admin routes need no credentials");

        for (creds, what) in [
            (None, "no credentials"),
            (Some(("admin", "wrong")), "wrong password"),
            (Some(("root", PASSWORD)), "wrong user"),
            (Some(("admin", "")), "empty password"),
        ] {
            for (post, path) in [(false, "/admin/hosts"), (true, "/admin/crawl/pause")] {
                let res = call(&relay, post, path, creds).await;
                assert_eq!(res.status(), 401, "{what} on {path}");
                let challenge = res
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert!(
                    challenge.starts_with("Basic "),
                    "{what} on {path}: challenge {challenge:?}"
                );
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["error"], "AuthenticationRequired", "{what} on {path}");
            }
        }

        let admin = Some(("admin", PASSWORD));
        assert_eq!(call(&relay, false, "/admin", admin).await.status(), 200);
        let host = net.pds.hostname();
        let deadline = Instant::now() + Duration::from_secs(20);
        let hosts = loop {
            let res = call(&relay, false, "/admin/hosts", admin).await;
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            let active = body["hosts"]
                .as_array()
                .expect("hosts is a list")
                .iter()
                .any(|h| h["hostname"] == host.as_str() && h["status"] == "active");
            if active || Instant::now() > deadline {
                break body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(hosts["paused"], false, "{hosts}");
        let entry = hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hostname"] == host.as_str())
            .unwrap_or_else(|| panic!("{host} listed: {hosts}"));
        assert_eq!(entry["status"], "active", "{entry}");

        // A refused pause above changed nothing; an authorised one does.
        let res = call(&relay, true, "/admin/crawl/pause", admin).await;
        assert_eq!(res.status(), 200);
        let body: Value = call(&relay, false, "/admin/hosts", admin)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["paused"], true, "{body}");
    })
    .await
    .expect("test timed out");
}

/// `GET path` on the relay from `source` (any 127.x.y.z), with optional
/// Basic credentials: `(status, Retry-After)`.
async fn get_from(
    relay: &RelayProcess,
    source: &str,
    path: &str,
    creds: Option<(&str, &str)>,
) -> (u16, Option<u64>) {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut req = client.get(relay.url(path));
    if let Some((user, pass)) = creds {
        req = req.basic_auth(user, Some(pass));
    }
    let res = req.send().await.expect("request the relay");
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (res.status().as_u16(), retry_after)
}

/// Wrong admin credentials are limited per client address: ten, then 429
/// with `Retry-After` for everything from that address, right credentials
/// included; other addresses and requests without credentials are not
/// affected, and right credentials are never slowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_limits_failed_authentication_per_address() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        const PASSWORD: &str = "correct horse battery staple";
        let relay = RelayProcess::spawn(&net, true, &[("ATRELAY_ADMIN_PASSWORD", PASSWORD)]).await;
        let right = Some(("admin", PASSWORD));
        let wrong = Some(("admin", "guess"));

        for i in 0..10 {
            let (status, _) = get_from(&relay, "127.0.0.1", "/admin", wrong).await;
            assert_eq!(status, 401, "wrong credentials #{}", i + 1);
        }
        for creds in [wrong, right] {
            let (status, retry_after) = get_from(&relay, "127.0.0.1", "/admin", creds).await;
            assert_eq!(status, 429, "{creds:?}");
            assert!(
                retry_after.is_some_and(|s| (1..=30).contains(&s)),
                "{retry_after:?}"
            );
        }

        // Another address: right credentials at once, every time.
        for _ in 0..30 {
            let started = Instant::now();
            let (status, _) = get_from(&relay, "127.0.0.2", "/admin", right).await;
            assert_eq!(status, 200);
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        // No credentials is not a guess: still 401, and no limit.
        for _ in 0..20 {
            assert_eq!(get_from(&relay, "127.0.0.3", "/admin", None).await.0, 401);
        }
        assert_eq!(get_from(&relay, "127.0.0.3", "/admin", right).await.0, 200);

        let s = relay
            .scrape_until(|s| s.get("atrelay_admin_auth_rate_limited_total", &[]) == Some(2.0))
            .await;
        assert_eq!(s.value("atrelay_admin_auth_rate_limited_total", &[]), 2.0);
    })
    .await
    .expect("test timed out");
}

/// A blank or short `ATRELAY_ADMIN_PASSWORD` stops `atrelay serve` at start
/// with a message saying what to do; it never opens `/admin` to a
/// one-space password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_admin_password_refuses_to_start() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        for (password, what) in [
            (" ", "blank"),
            ("", "blank"),
            ("\t", "blank"),
            ("hunter2", "too short"),
        ] {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atrelay"))
                .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""])
                .arg("--data-dir")
                .arg(dir.path())
                .env("ATRELAY_ADMIN_PASSWORD", password)
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{password:?} started: {stderr}");
            assert!(
                stderr.contains("ATRELAY_ADMIN_PASSWORD")
                    && stderr.contains(what)
                    && stderr.contains("at least 16 characters"),
                "{password:?}: {stderr}"
            );
        }
    })
    .await
    .expect("test timed out");
}
