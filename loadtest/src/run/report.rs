//! What a run found: per-step figures, resource samples, and the
//! correctness checks, written as JSON and printed as a table.

use std::collections::BTreeMap;

use serde::Serialize;

pub use super::quantiles::Quantiles;
use super::tier_report::{self, TierRow, TierStep};
use crate::swarm::SwarmTotals;

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
    /// Of which the swarm's threads …
    pub swarm_cpu_seconds: f64,
    /// … and the fleet's (with the rest of the process: the emitting main
    /// thread, the fleet's runtime, the sampler).
    pub fleet_cpu_seconds: f64,
    /// Load generator CPU per accepted event, µs.
    pub generator_cpu_per_event_us: f64,
    /// Frames the subscribers received in the step, counted (not accepted
    /// × subscribers): each subscriber's new sequenced events.
    pub deliveries: u64,
    /// Relay CPU per delivery, µs.
    pub relay_cpu_per_delivery_us: f64,
    /// Load generator CPU per delivery, µs (fleet + swarm) …
    pub generator_cpu_per_delivery_us: f64,
    /// … and the swarm's alone.
    pub swarm_cpu_per_delivery_us: f64,
    /// Load generator CPU / relay CPU: under 0.5 means the generator leaves
    /// the relay at least two thirds of what they use together.
    pub generator_relay_cpu_ratio: f64,
    /// Deliveries to subscribers per second (accepted × subscribers).
    pub deliveries_per_second: f64,
    pub prepare_seconds: f64,
    /// Frame bytes emitted.
    pub bytes: u64,
    pub kept_up: bool,
    /// With `[tier] mirrors`: the relay and its mirrors together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierStep>,
}

/// A resource sample.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    pub relay_cpu: f64,
    pub relay_rss: u64,
    pub loadtest_cpu: f64,
    /// The swarm threads' share of `loadtest_cpu`.
    pub swarm_cpu: f64,
    /// Each mirror's CPU seconds and RSS bytes (a tier only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirror_cpu: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirror_rss: Vec<u64>,
}

/// The relay's resident memory around the swarm: what each subscriber
/// costs it, idle and while events flow.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Memory {
    /// Subscribers on the relay itself (in a tier, its share of the swarm).
    pub subscribers: usize,
    /// Just before the first subscriber connects (after any prefill).
    pub relay_rss_before_swarm_mib: f64,
    /// Once every subscriber connected, before any step.
    pub relay_rss_connected_mib: f64,
    /// Highest sample from then to the end of the ramp.
    pub relay_rss_peak_mib: f64,
    /// (connected − before) / subscribers.
    pub per_subscriber_connected_kib: f64,
    /// (peak − before) / subscribers: includes what the events themselves
    /// hold (the ring, caches), so an upper bound.
    pub per_subscriber_peak_kib: f64,
}

impl Memory {
    pub fn new(before: u64, connected: u64, peak: u64, subscribers: usize) -> Memory {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let per =
            |after: u64| after.saturating_sub(before) as f64 / 1024.0 / subscribers.max(1) as f64;
        Memory {
            subscribers,
            relay_rss_before_swarm_mib: mib(before),
            relay_rss_connected_mib: mib(connected),
            relay_rss_peak_mib: mib(peak.max(connected)),
            per_subscriber_connected_kib: per(connected),
            per_subscriber_peak_kib: per(peak.max(connected)),
        }
    }
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
    /// `raw` or `tungstenite`, and the threads the swarm ran on.
    pub swarm_client: String,
    pub swarm_threads: usize,
    /// The raw client's least time between reads of a non-checker socket.
    pub swarm_read_interval_ms: u64,
    pub prefill_events: usize,
    pub prefill_seconds: f64,
    pub steps: Vec<Step>,
    /// Highest accepted rate of a step that kept up.
    pub sustained_rate: f64,
    /// Catch-up from the cursor: frames per second over all subscribers.
    pub catchup_frames_per_second: Option<f64>,
    pub swarm: SwarmTotals,
    pub memory: Memory,
    pub expected: BTreeMap<String, BTreeMap<String, u64>>,
    pub relay_counts: BTreeMap<String, BTreeMap<String, u64>>,
    pub held_upstream: u64,
    /// Hosts by status at the end (admin API), for budget scenarios.
    pub host_statuses: BTreeMap<String, u64>,
    pub checks: Vec<Check>,
    pub passed: bool,
    pub samples: Vec<Sample>,
    pub relay_log: String,
    /// With `[tier] mirrors`: each mirror's log …
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirror_logs: Vec<String>,
    /// … and the swarm's totals by endpoint (`relay`, `mirror-1`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub swarm_by_endpoint: BTreeMap<String, SwarmTotals>,
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
        out += &self.cpu_table();
        out += &tier_report::table(
            &self
                .steps
                .iter()
                .filter_map(|s| {
                    Some(TierRow {
                        target_rate: s.target_rate,
                        relay_rss_max_mib: s.relay_rss_max_mib,
                        tier: s.tier.as_ref()?,
                    })
                })
                .collect::<Vec<_>>(),
        );
        if self.subscribers > 0 {
            let m = &self.memory;
            out += &format!(
                "relay RSS: {:.0} MiB before the swarm, {:.0} MiB with {} subscribers connected \
                 ({:.1} KiB each), peak {:.0} MiB ({:.1} KiB each)\n",
                m.relay_rss_before_swarm_mib,
                m.relay_rss_connected_mib,
                m.subscribers,
                m.per_subscriber_connected_kib,
                m.relay_rss_peak_mib,
                m.per_subscriber_peak_kib
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
        out += &self.benchmarks_rows();
        out += if self.passed {
            "result: PASS\n"
        } else {
            "result: FAIL\n"
        };
        out
    }

    /// Relay and load generator CPU side by side, per step.
    fn cpu_table(&self) -> String {
        let mut out = format!(
            "CPU ({} swarm client, {} thread{}, reads ≥ {} ms apart): seconds in the step; µs per accepted event and per delivery\n",
            self.swarm_client,
            self.swarm_threads,
            if self.swarm_threads == 1 { "" } else { "s" },
            self.swarm_read_interval_ms
        );
        out += &format!(
            "{:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9}\n",
            "target/s",
            "relay s",
            "gen s",
            "swarm s",
            "fleet s",
            "relay/ev",
            "gen/ev",
            "deliveries",
            "relay/dlv",
            "gen/dlv",
            "gen/relay"
        );
        for s in &self.steps {
            out += &format!(
                "{:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>9.1} {:>10} {:>10.2} {:>10.2} {:>9.2}\n",
                s.target_rate,
                s.relay_cpu_seconds,
                s.loadtest_cpu_seconds,
                s.swarm_cpu_seconds,
                s.fleet_cpu_seconds,
                s.relay_cpu_per_event_us,
                s.generator_cpu_per_event_us,
                s.deliveries,
                s.relay_cpu_per_delivery_us,
                s.generator_cpu_per_delivery_us,
                s.generator_relay_cpu_ratio
            );
        }
        out
    }

    /// The steps as Markdown table rows, ready for BENCHMARKS.md.
    pub fn benchmarks_rows(&self) -> String {
        let mut out = String::from(
            "BENCHMARKS rows:\n\
             | scenario | swarm client | subscribers | offered/s | accepted/s | p50 / p99 ms | relay µs/event | generator µs/event | relay µs/delivery | generator µs/delivery (swarm) | generator/relay CPU | relay RSS peak |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for s in &self.steps {
            out += &format!(
                "| `{}` | {} ×{}, {} ms | {} | {:.0} | {:.0} | {:.1} / {:.1} | {:.0} | {:.0} | {:.2} | {:.2} ({:.2}) | {:.2} | {:.0} MiB |\n",
                self.scenario,
                self.swarm_client,
                self.swarm_threads,
                self.swarm_read_interval_ms,
                self.subscribers,
                s.offered_rate,
                s.accepted_rate,
                s.latency_ms.p50,
                s.latency_ms.p99,
                s.relay_cpu_per_event_us,
                s.generator_cpu_per_event_us,
                s.relay_cpu_per_delivery_us,
                s.generator_cpu_per_delivery_us,
                s.swarm_cpu_per_delivery_us,
                s.generator_relay_cpu_ratio,
                s.relay_rss_max_mib
            );
        }
        out
    }
}
