//! What a tier step found (a relay and its mirrors serving one swarm): the
//! whole tier's deliveries against the whole tier's CPU, each process's CPU
//! and RSS, and latency on the relay against latency on the mirrors, whose
//! difference is what a mirror adds. Written into `report.json` beside the
//! step's relay-only figures, and printed as a table of its own.

use serde::Serialize;

use super::quantiles::Quantiles;

/// One mirror's cost during a step.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MirrorStep {
    pub name: String,
    pub cpu_seconds: f64,
    pub rss_max_mib: f64,
}

/// The subscribers on one endpoint (the relay or a mirror) during a step.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EndpointStep {
    /// `relay`, `mirror-1`, …
    pub name: String,
    pub subscribers: usize,
    /// Frames its subscribers counted in the step.
    pub deliveries: u64,
    /// Its checkers' emit → receive latency.
    pub latency_ms: Quantiles,
}

/// Mirror latency minus relay latency in the same step, ms: the hop a
/// mirror adds (its read of the relay's stream, its log write, its ring and
/// socket write). Negative values are noise between the two samples.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AddedLatency {
    pub p50: f64,
    pub p99: f64,
}

/// The tier during one step.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TierStep {
    /// Frames counted at every subscriber, relay's and mirrors', per second
    /// of the step (emission and drain).
    pub deliveries_per_second: f64,
    pub relay_cpu_seconds: f64,
    pub mirrors: Vec<MirrorStep>,
    /// Relay + every mirror.
    pub tier_cpu_seconds: f64,
    /// Deliveries per CPU-second of the whole tier: what serving a
    /// subscriber costs when mirrors carry most of them.
    pub deliveries_per_tier_cpu_second: f64,
    /// The load generator's CPU (fleet + swarm), for comparison.
    pub generator_cpu_seconds: f64,
    /// The relay first, then each mirror.
    pub endpoints: Vec<EndpointStep>,
    /// The relay's subscribers' latency …
    pub relay_latency_ms: Quantiles,
    /// … and every mirror's subscribers', merged.
    pub mirror_latency_ms: Quantiles,
    /// `mirror_latency_ms` − `relay_latency_ms`.
    pub mirror_added_latency_ms: AddedLatency,
}

/// A row of the tier table: a step's tier and the step's own figures it
/// shows beside.
pub struct TierRow<'a> {
    pub target_rate: f64,
    pub relay_rss_max_mib: f64,
    pub tier: &'a TierStep,
}

/// The tier table: one row per step with a tier, empty without.
pub fn table(rows: &[TierRow]) -> String {
    let Some(first) = rows.first().map(|r| r.tier) else {
        return String::new();
    };
    let mut out = format!(
        "tier: relay + {} mirror{} (CPU s and peak RSS MiB per process; latency ms; added = mirror − relay, same step)\n",
        first.mirrors.len(),
        if first.mirrors.len() == 1 { "" } else { "s" }
    );
    out += &format!("{:>9} {:>9} {:>13}", "target/s", "deliv/s", "relay s/MiB");
    for m in &first.mirrors {
        out += &format!(" {:>16}", format!("{} s/MiB", m.name));
    }
    out += &format!(
        " {:>7} {:>10} {:>7} {:>15} {:>15} {:>15}\n",
        "tier s", "dlv/CPU-s", "gen s", "relay p50/p99", "mirror p50/p99", "added p50/p99"
    );
    for row in rows {
        let t = row.tier;
        out += &format!(
            "{:>9.0} {:>9.0} {:>13}",
            row.target_rate,
            t.deliveries_per_second,
            format!("{:.2}/{:.0}", t.relay_cpu_seconds, row.relay_rss_max_mib)
        );
        for m in &t.mirrors {
            out += &format!(
                " {:>16}",
                format!("{:.2}/{:.0}", m.cpu_seconds, m.rss_max_mib)
            );
        }
        let pair = |a: f64, b: f64| format!("{a:.1}/{b:.1}");
        out += &format!(
            " {:>7.2} {:>10.0} {:>7.2} {:>15} {:>15} {:>15}\n",
            t.tier_cpu_seconds,
            t.deliveries_per_tier_cpu_second,
            t.generator_cpu_seconds,
            pair(t.relay_latency_ms.p50, t.relay_latency_ms.p99),
            pair(t.mirror_latency_ms.p50, t.mirror_latency_ms.p99),
            pair(t.mirror_added_latency_ms.p50, t.mirror_added_latency_ms.p99),
        );
    }
    out += "deliveries by endpoint (subscribers): ";
    out += &rows[rows.len() - 1]
        .tier
        .endpoints
        .iter()
        .map(|e| format!("{} {} ({})", e.name, e.deliveries, e.subscribers))
        .collect::<Vec<_>>()
        .join(", ");
    out += " in the last step\n";
    out
}
