//! The Grafana dashboard (`grafana/atrelay.json`) against the real relay's
//! scrape: every `atrelay_*` series a panel queries is exported by
//! `atrelay serve`, every family the relay exports is charted by some panel,
//! counters are only read through `rate()` / `increase()`, and a fresh relay
//! already exports (at zero) the families that otherwise appear only on rare
//! events. Also: the dashboard's JSON is well formed (rows, grid, datasource
//! variable, units), and the Prometheus and provisioning files point at the
//! relay's metrics port and at the dashboard.
//!
//! A dashboard that drifts from the code fails silently in production (a
//! panel says "no data" forever); this is where that drift fails instead.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use atrelay::config::RelayConfig;
use atrelay::metrics::{AtStart, Family, Kind};
use atrelay::node::metrics_exporter::CATALOGUE;
use serde_json::Value;

use crate::binary::{RelayProcess, Scrape};
use crate::harness::Subscriber;
use crate::pipeline::Net;

fn grafana_file(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("grafana")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

fn dashboard() -> Value {
    let (path, text) = grafana_file("atrelay.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The panels that query something (rows excluded).
fn query_panels(dash: &Value) -> Vec<&Value> {
    dash["panels"]
        .as_array()
        .expect("panels is a list")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// Every `(panel title, expr)` of the dashboard.
fn exprs(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in query_panels(dash) {
        let title = p["title"].as_str().unwrap_or_default().to_owned();
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default().to_owned();
            out.push((title.clone(), expr));
        }
    }
    out
}

/// One `atrelay_*` metric name in an expression, with what surrounds it.
struct Occurrence<'a> {
    name: &'a str,
    /// The expression up to the name.
    before: &'a str,
    /// Whether a range (`[...]`) follows the name and its label matchers.
    ranged: bool,
    /// The label matchers, `{...}` included, or "".
    matchers: &'a str,
}

fn occurrences(expr: &str) -> Vec<Occurrence<'_>> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = expr[from..].find("atrelay_") {
        let start = from + at;
        // Part of a longer identifier (say `xatrelay_`): not a metric.
        if expr[..start].ends_with(is_name) {
            from = start + 1;
            continue;
        }
        let end = expr[start..]
            .find(|c: char| !is_name(c))
            .map_or(expr.len(), |n| start + n);
        let rest = &expr[end..];
        let matchers = if rest.starts_with('{') {
            rest.find('}').map_or(rest, |n| &rest[..=n])
        } else {
            ""
        };
        out.push(Occurrence {
            name: &expr[start..end],
            before: &expr[..start],
            ranged: rest[matchers.len()..].starts_with('['),
            matchers,
        });
        from = end;
    }
    out
}

#[test]
fn dashboard_is_well_formed() {
    let dash = dashboard();
    for key in ["uid", "title"] {
        assert!(
            dash[key].as_str().is_some_and(|s| !s.is_empty()),
            "dashboard {key}"
        );
    }
    assert!(dash["schemaVersion"].as_u64().is_some(), "schemaVersion");

    // The datasource is a variable, so the dashboard works with whatever
    // the operator's Prometheus datasource is called, provisioned or imported.
    let vars = dash["templating"]["list"].as_array().expect("templating");
    let ds = vars
        .iter()
        .find(|v| v["name"] == "DS_PROMETHEUS")
        .expect("a DS_PROMETHEUS variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let instance = vars
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert_eq!(instance["datasource"]["uid"], "${DS_PROMETHEUS}");

    let panels = dash["panels"].as_array().expect("panels");
    assert_eq!(panels[0]["type"], "row", "the dashboard starts with a row");
    let mut ids = HashSet::new();
    let mut last_y = 0;
    let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
    let mut panels_in_row = 0;
    for (i, p) in panels.iter().enumerate() {
        let title = p["title"].as_str().unwrap_or_default().to_owned();
        assert!(!title.is_empty(), "panel {i} has a title");
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: id"));
        assert!(ids.insert(id), "{title}: id {id} is used twice");
        let g = &p["gridPos"];
        let [x, y, w, h] =
            ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap_or_else(|| panic!("{title}: {k}")));
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g}");
        assert!(y >= last_y, "{title}: panels are listed top to bottom");
        last_y = y;
        for (other, [ox, oy, ow, oh]) in &boxes {
            let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((title.clone(), [x, y, w, h]));

        if p["type"] == "row" {
            assert!(i == 0 || panels_in_row > 0, "row before {title} is empty");
            panels_in_row = 0;
            assert_eq!(p["collapsed"], false, "{title}: rows are open");
            assert_eq!(w, 24, "{title}: a row spans the width");
            continue;
        }
        panels_in_row += 1;
        assert!(
            ["timeseries", "stat"].contains(&p["type"].as_str().unwrap_or_default()),
            "{title}: type {}",
            p["type"]
        );
        assert!(
            p["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title}: a description says what it shows"
        );
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let unit = p["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default();
        assert!(!unit.is_empty(), "{title}: a unit");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: at least one query");
        let mut refs = HashSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap_or_default()));
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
            let expr = t["expr"].as_str().unwrap_or_default();
            let depth = expr.chars().try_fold(0i32, |d, c| {
                let d = match c {
                    '(' | '{' | '[' => d + 1,
                    ')' | '}' | ']' => d - 1,
                    _ => d,
                };
                (d >= 0).then_some(d)
            });
            assert_eq!(depth, Some(0), "{title}: unbalanced {expr}");
            let found = occurrences(expr);
            assert!(
                !found.is_empty(),
                "{title}: {expr} queries no atrelay_ metric"
            );
            for o in found {
                assert_eq!(
                    o.matchers, "{instance=~\"$instance\"}",
                    "{title}: every selector follows the instance variable: {expr}"
                );
            }
            // Latency quantiles in seconds, size and lag quantiles as counts.
            if expr.starts_with("histogram_quantile(") {
                let want = if expr.contains("_seconds_bucket") {
                    "s"
                } else {
                    "short"
                };
                assert_eq!(unit, want, "{title}: unit of {expr}");
            }
        }
    }
    assert!(panels_in_row > 0, "the last row is empty");
}

#[test]
fn provisioning_points_at_the_relay_and_the_dashboard() {
    // A light YAML reading: `key: value` lines, comments dropped; enough to
    // check the values these files exist to carry.
    fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .map(|l| l.split(" #").next().unwrap_or_default().trim())
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.trim_start_matches("- ").strip_prefix(key))
            .filter_map(|rest| rest.strip_prefix(':'))
            .map(str::trim)
            .collect()
    }
    fn list_items(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("- "))
            .filter(|item| !item.contains(':') || item.parse::<std::net::SocketAddr>().is_ok())
            .collect()
    }
    let files = [
        "prometheus.yml",
        "provisioning/datasources/prometheus.yaml",
        "provisioning/dashboards/atrelay.yaml",
    ]
    .map(grafana_file);
    for (path, text) in &files {
        for (i, line) in text.lines().enumerate() {
            let indent = line.len() - line.trim_start_matches(' ').len();
            assert!(
                !line.contains('\t') && indent % 2 == 0,
                "{}:{}: indent with two spaces",
                path.display(),
                i + 1
            );
        }
    }
    let [(_, prometheus), (_, datasource), (_, provider)] = &files;

    let metrics_listen = RelayConfig::default().server.metrics_listen;
    assert_eq!(
        list_items(prometheus),
        [metrics_listen.as_str()],
        "prometheus.yml scrapes the relay's default metrics_listen"
    );
    assert_eq!(values(prometheus, "metrics_path"), ["/metrics"]);
    assert_eq!(values(prometheus, "job_name"), ["atrelay"]);
    let interval = values(prometheus, "scrape_interval");
    assert_eq!(interval.len(), 1, "one scrape_interval");

    assert_eq!(values(datasource, "apiVersion"), ["1"]);
    assert_eq!(values(datasource, "type"), ["prometheus"]);
    assert_eq!(
        values(datasource, "url"),
        ["http://127.0.0.1:9090"],
        "Prometheus's default listener"
    );
    assert_eq!(
        values(datasource, "timeInterval"),
        interval,
        "Grafana's $__rate_interval follows the scrape interval"
    );
    assert_eq!(values(datasource, "isDefault"), ["true"]);

    assert_eq!(values(provider, "apiVersion"), ["1"]);
    assert_eq!(values(provider, "type"), ["file"]);
    let dash_dir = values(provider, "path");
    assert_eq!(dash_dir.len(), 1, "one dashboards path");

    // The README's commands mount each file where the others expect it.
    let (_, readme) = grafana_file("README.md");
    for mount in [
        format!("/grafana:{}", dash_dir[0]),
        "/grafana/provisioning:/etc/grafana/provisioning".to_owned(),
        "/grafana/prometheus.yml:/etc/prometheus/prometheus.yml".to_owned(),
    ] {
        assert!(readme.contains(&mount), "grafana/README.md mounts {mount}");
    }
}

/// `/metrics` as text, and parsed by the strict parser.
async fn scrape_text(relay: &RelayProcess) -> (String, Scrape) {
    let addr = relay.metrics.expect("started with metrics");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape /metrics")
        .text()
        .await
        .unwrap();
    let parsed = Scrape::parse(&text).unwrap_or_else(|e| panic!("{e}\n--- scrape ---\n{text}"));
    (text, parsed)
}

/// What the dashboard needs from one scrape.
#[derive(Debug, Default)]
struct Coverage {
    /// Series the dashboard queries with no sample in the scrape, with the
    /// panel asking.
    missing: Vec<String>,
    /// Misused series: a counter without `rate()`/`increase()`, a gauge
    /// inside one, a bare histogram name.
    misused: Vec<String>,
    /// Families exported and charted by no panel.
    uncharted: BTreeSet<String>,
    /// Families the dashboard queries.
    charted: BTreeSet<String>,
}

fn coverage(dash: &Value, scrape: &Scrape) -> Coverage {
    let types: BTreeMap<&str, &str> = scrape
        .types
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut c = Coverage::default();
    for (title, expr) in exprs(dash) {
        for o in occurrences(&expr) {
            // The family: the name itself, or a histogram's through exactly
            // one of its suffixes (never a counter that happens to end in
            // `_count`).
            let histogram_part = ["_bucket", "_sum", "_count"].iter().find_map(|s| {
                let base = o.name.strip_suffix(s)?;
                (types.get(base) == Some(&"histogram")).then_some(base)
            });
            let (family, kind) = match (types.get(o.name), histogram_part) {
                (Some(&"histogram"), _) => {
                    c.misused
                        .push(format!("{title}: bare histogram {}", o.name));
                    continue;
                }
                (Some(kind), _) => (o.name, *kind),
                (None, Some(base)) => (base, "histogram"),
                (None, None) => {
                    // Not exported at all (yet): absent from the scrape.
                    c.missing.push(format!("{title}: {}", o.name));
                    continue;
                }
            };
            c.charted.insert(family.to_owned());
            if !scrape.samples.iter().any(|s| s.name == o.name) {
                c.missing.push(format!("{title}: {}", o.name));
            }
            let in_rate =
                (o.before.ends_with("rate(") || o.before.ends_with("increase(")) && o.ranged;
            let wants_rate = kind == "counter" || kind == "histogram";
            if in_rate != wants_rate {
                c.misused.push(format!(
                    "{title}: {kind} {} {} rate()/increase() in {expr}",
                    o.name,
                    if wants_rate { "outside" } else { "inside" }
                ));
            }
        }
    }
    c.uncharted = types
        .keys()
        .filter(|f| f.starts_with("atrelay_") && !c.charted.contains(**f))
        .map(|f| f.to_string())
        .collect();
    c
}

/// Every family the modules declare ([`CATALOGUE`]).
fn catalogue() -> impl Iterator<Item = &'static Family> {
    CATALOGUE.iter().flat_map(|families| families.iter())
}

/// The `# TYPE` the exporter gives a family of `kind` (histograms have
/// buckets: every histogram name ends in `_seconds` or `_events`).
fn exported_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    }
}

/// Families with a `# HELP` line.
fn described(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_exactly_what_the_relay_exports() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dash = dashboard();
        let net = Net::start().await;
        let relay = RelayProcess::spawn(&net, true, &[]).await;

        // Before any event, the rare-event families are there at zero: a
        // panel says 0, not "no data". Only label values that come with
        // traffic may be missing: event types (the crawler registers them
        // when it connects), host statuses (the first refresh), and the
        // identity fetch outcomes and latency (the first resolution).
        let (_, fresh) = scrape_text(&relay).await;
        let mut fresh_cov = coverage(&dash, &fresh);
        let may_wait: BTreeSet<&str> = [
            "atrelay_relay_events_received_total",
            "atrelay_hosts",
            "atrelay_identity_resolutions_total",
            "atrelay_identity_resolve_seconds",
        ]
        .into();
        fresh_cov.missing.retain(|m| {
            !may_wait
                .iter()
                .any(|f| m.ends_with(f) || m.contains(&format!("{f}_")))
        });
        assert_eq!(
            fresh_cov.missing,
            Vec::<String>::new(),
            "a fresh relay exports these only after traffic"
        );
        // Every declared family not waiting for traffic is exported from
        // the start, with the type its table gives it.
        for family in catalogue() {
            if matches!(family.at_start, AtStart::WithTraffic) {
                continue;
            }
            let exported = fresh.types.iter().find(|(name, _)| name == family.name);
            assert_eq!(
                exported.map(|(_, t)| t.as_str()),
                Some(exported_type(family.kind)),
                "{} at start",
                family.name
            );
        }
        for family in [
            "atrelay_fanout_consumer_too_slow_total",
            "atrelay_relay_chain_breaks_total",
        ] {
            assert_eq!(fresh.get(family, &[]), Some(0.0), "{family} at zero");
        }
        assert_eq!(
            fresh.get(
                "atrelay_relay_events_dropped_total",
                &[("reason", "bad_signature")]
            ),
            Some(0.0),
            "labelled families at zero per known label"
        );

        // A little of everything: two accounts' commits through a live
        // subscriber, and a forgery (a drop).
        let mut sub = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        let mut bob = net.account();
        for i in 0..5 {
            net.pds.emit_commit(&alice.post(&format!("alice {i}")));
            net.pds.emit_commit(&bob.post(&format!("bob {i}")));
        }
        let mut mallory = alice.impostor();
        net.pds.emit_commit(&mallory.post("forged"));
        net.pds.emit_commit(&alice.post("after the forgery"));
        sub.take(11).await;

        // The gauges and the exporter lag the events a little.
        let deadline = Instant::now() + Duration::from_secs(20);
        let (text, scrape, cov) = loop {
            let (text, scrape) = scrape_text(&relay).await;
            let cov = coverage(&dash, &scrape);
            let dropped = scrape.value(
                "atrelay_relay_events_dropped_total",
                &[("reason", "bad_signature")],
            );
            if (cov.missing.is_empty() && dropped >= 1.0) || Instant::now() > deadline {
                break (text, scrape, cov);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            scrape.value(
                "atrelay_relay_events_dropped_total",
                &[("reason", "bad_signature")]
            ),
            1.0,
            "the traffic went through (the forgery was decided)"
        );
        assert_eq!(
            cov.missing,
            Vec::<String>::new(),
            "panels query series the relay does not export"
        );
        assert_eq!(cov.misused, Vec::<String>::new(), "misused series");
        assert_eq!(
            cov.uncharted,
            BTreeSet::new(),
            "families the relay exports but no panel charts"
        );
        let helped = described(&text);
        let exported: BTreeSet<String> = scrape.types.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(
            exported.difference(&helped).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "exported families without a description (# HELP)"
        );
        // Nothing is exported that no module's table declares.
        let declared: BTreeSet<&str> = catalogue().map(|f| f.name).collect();
        assert_eq!(
            exported
                .iter()
                .filter(|f| !declared.contains(f.as_str()))
                .collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "exported families missing from node::metrics_exporter::CATALOGUE"
        );
        // Not vacuous: the dashboard covers every family described.
        assert!(cov.charted.len() >= 50, "{} families", cov.charted.len());
        assert!(helped.is_subset(&cov.charted));
    })
    .await
    .expect("test timed out");
}

#[test]
fn occurrences_find_names_matchers_and_ranges() {
    let expr =
        "sum(rate(atrelay_a_total{instance=~\"$instance\"}[5m])) / atrelay_b{x=\"1\"} + xatrelay_c";
    let found = occurrences(expr);
    let names: Vec<_> = found.iter().map(|o| o.name).collect();
    assert_eq!(names, ["atrelay_a_total", "atrelay_b"]);
    assert!(found[0].ranged && found[0].before.ends_with("rate("));
    assert_eq!(found[0].matchers, "{instance=~\"$instance\"}");
    assert!(!found[1].ranged);
    assert_eq!(found[1].matchers, "{x=\"1\"}");
}
