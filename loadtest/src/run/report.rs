//! What a run found: per-step figures, resource samples, and the
//! correctness checks, written as JSON and printed as a table.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::histogram::Histogram;
use crate::swarm::SwarmTotals;

/// Latency quantiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Quantiles {
    pub samples: u64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl From<&Histogram> for Quantiles {
    fn from(h: &Histogram) -> Quantiles {
        let ms = |us: u64| us as f64 / 1_000.0;
        Quantiles {
            samples: h.count(),
            mean: h.mean() / 1_000.0,
            p50: ms(h.quantile(0.5)),
            p99: ms(h.quantile(0.99)),
            p999: ms(h.quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One ramp step.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Step {
    /// The target rate (0 = as fast as possible).
    pub target_rate: f64,
    pub events: usize,
    /// Rate the fleet actually released at.
    pub offered_rate: f64,
    /// Events the relay accepted in this step …
    pub accepted: u64,
    /// … over the time from the step's first release until the relay
    /// processed its last event (and every subscriber received it).
    pub accepted_rate: f64,
    pub drain_seconds: f64,
    pub latency_ms: Quantiles,
    pub relay_cpu_seconds: f64,
    /// Relay CPU per accepted event, µs.
    pub relay_cpu_per_event_us: f64,
    pub relay_rss_max_mib: f64,
    /// The load generator's own CPU during the step (fleet + swarm).
    pub loadtest_cpu_seconds: f64,
    /// Deliveries to subscribers per second (accepted × subscribers).
    pub deliveries_per_second: f64,
    pub prepare_seconds: f64,
    /// Frame bytes emitted.
    pub bytes: u64,
    pub kept_up: bool,
}

/// A resource sample.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    pub relay_cpu: f64,
    pub relay_rss: u64,
    pub loadtest_cpu: f64,
}

/// One correctness check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub found: String,
    pub ok: bool,
}

impl Check {
    pub fn new(name: impl Into<String>, expected: impl ToString, found: impl ToString) -> Check {
        let (expected, found) = (expected.to_string(), found.to_string());
        Check {
            name: name.into(),
            ok: expected == found,
            expected,
            found,
        }
    }
}

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub machine: String,
    pub started_at: String,
    pub seconds: f64,
    pub fleet_hosts: usize,
    pub fleet_accounts: usize,
    pub subscribers: usize,
    pub prefill_events: usize,
    pub prefill_seconds: f64,
    pub steps: Vec<Step>,
    /// Highest accepted rate of a step that kept up.
    pub sustained_rate: f64,
    /// Catch-up from the cursor: frames per second over all subscribers.
    pub catchup_frames_per_second: Option<f64>,
    pub swarm: SwarmTotals,
    pub expected: BTreeMap<String, BTreeMap<String, u64>>,
    pub relay_counts: BTreeMap<String, BTreeMap<String, u64>>,
    pub held_upstream: u64,
    /// Hosts by status at the end (admin API), for budget scenarios.
    pub host_statuses: BTreeMap<String, u64>,
    pub checks: Vec<Check>,
    pub passed: bool,
    pub samples: Vec<Sample>,
    pub relay_log: String,
}

impl Report {
    /// A human-readable table of steps and checks.
    pub fn table(&self) -> String {
        let mut out = format!(
            "scenario {} — {} hosts, {} accounts, {} subscribers, {:.1} s\n",
            self.scenario, self.fleet_hosts, self.fleet_accounts, self.subscribers, self.seconds
        );
        if self.prefill_events > 0 {
            out += &format!(
                "prefill: {} events in {:.1} s\n",
                self.prefill_events, self.prefill_seconds
            );
        }
        if let Some(c) = self.catchup_frames_per_second {
            out += &format!("catch-up: {c:.0} frames/s over all subscribers\n");
        }
        out += &format!(
            "{:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>5}\n",
            "target/s",
            "offered/s",
            "events",
            "accepted/s",
            "p50 ms",
            "p99 ms",
            "p999 ms",
            "µs CPU/ev",
            "RSS MiB",
            "deliv/s",
            "ok"
        );
        for s in &self.steps {
            out += &format!(
                "{:>9.0} {:>9.0} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>8.0} {:>9.0} {:>5}\n",
                s.target_rate,
                s.offered_rate,
                s.events,
                s.accepted_rate,
                s.latency_ms.p50,
                s.latency_ms.p99,
                s.latency_ms.p999,
                s.relay_cpu_per_event_us,
                s.relay_rss_max_mib,
                s.deliveries_per_second,
                if s.kept_up { "yes" } else { "NO" }
            );
        }
        out += &format!("sustained: {:.0} events/s\n", self.sustained_rate);
        if self.held_upstream > 0 {
            out += &format!(
                "held upstream by budgets (not lost): {} events\n",
                self.held_upstream
            );
        }
        for c in &self.checks {
            out += &format!(
                "{} {}: expected {}, found {}\n",
                if c.ok { "PASS" } else { "FAIL" },
                c.name,
                c.expected,
                c.found
            );
        }
        out += if self.passed {
            "result: PASS\n"
        } else {
            "result: FAIL\n"
        };
        out
    }
}
