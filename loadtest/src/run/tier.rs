//! The fan-out tier under test: `[tier] mirrors` processes of the same
//! binary following the relay (`serve` with `[mirror] upstream`), each in
//! its own data directory on free ports, and what they cost step by step.
//! The swarm is spread over the relay and them; since a mirror serves the
//! relay's seqs unchanged, every subscriber's stream is checked the same
//! way wherever it is connected.

use std::path::Path;

use super::quantiles::Quantiles;
use super::relay_process::{proc_usage, RelayProcess, RelayProcessError};
use super::scenario::RelaySettings;
use super::tier_report::{AddedLatency, EndpointStep, MirrorStep, TierStep};
use crate::histogram::Histogram;
use crate::swarm::Swarm;

/// The running mirrors, `mirror-1` … `mirror-N`; each is killed when
/// dropped (an early return leaves none behind), and stopped with SIGTERM
/// by [`Mirrors::stop`].
pub struct Mirrors {
    procs: Vec<RelayProcess>,
}

impl Mirrors {
    /// Starts `n` mirrors of `relay`, one after the other, each ready once
    /// connected upstream. A mirror that fails to start fails the run; the
    /// ones already started are dropped, and so killed.
    pub fn start(
        bin: &Path,
        dir: &Path,
        settings: &RelaySettings,
        relay: &RelayProcess,
        n: usize,
    ) -> Result<Mirrors, RelayProcessError> {
        let procs = (1..=n)
            .map(|i| RelayProcess::start_mirror(bin, dir, &name(i), settings, relay.listen))
            .collect::<Result<Vec<_>, RelayProcessError>>()?;
        Ok(Mirrors { procs })
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|m| m.pid()).collect()
    }

    /// The relay's firehose, then each mirror's: the swarm's endpoints.
    pub fn endpoint_urls(&self, relay: &RelayProcess) -> Vec<String> {
        std::iter::once(relay)
            .chain(&self.procs)
            .map(|p| p.firehose_url())
            .collect()
    }

    /// `relay`, `mirror-1`, …: the endpoints' names, in the same order.
    pub fn endpoint_names(&self) -> Vec<String> {
        std::iter::once("relay".to_owned())
            .chain((1..=self.len()).map(name))
            .collect()
    }

    pub fn logs(&self) -> Vec<String> {
        self.procs
            .iter()
            .map(|m| m.log_path.display().to_string())
            .collect()
    }

    /// Fails when a mirror's connection cap leaves no room for its share of
    /// the swarm (see [`RelayProcess::check_connection_cap`]).
    pub fn check_connection_caps(&self, shares: &[usize]) -> Result<(), RelayProcessError> {
        self.procs
            .iter()
            .zip(shares)
            .try_for_each(|(m, n)| m.check_connection_cap(*n))
    }

    /// Mirrors that answer `_health` and are connected to the relay.
    pub fn connected(&self) -> usize {
        self.procs
            .iter()
            .filter(|m| m.health().is_some_and(|h| h["mirror"]["connected"] == true))
            .count()
    }

    /// Each mirror's CPU seconds so far (0 for one that is gone).
    fn cpu(&self) -> Vec<f64> {
        self.procs
            .iter()
            .map(|m| proc_usage(m.pid()).unwrap_or_default().0)
            .collect()
    }

    /// SIGTERM to each, as the relay gets.
    pub fn stop(&mut self) {
        for m in &mut self.procs {
            m.stop();
        }
    }
}

fn name(i: usize) -> String {
    format!("mirror-{i}")
}

/// A step's tier measurement: the counters at its start.
pub struct TierMeter {
    mirror_cpu0: Vec<f64>,
    frames0: Vec<u64>,
}

/// What the step's main loop measured for the relay and the generator.
pub struct StepFigures {
    pub seconds: f64,
    pub relay_cpu_seconds: f64,
    pub generator_cpu_seconds: f64,
    /// Each mirror's peak RSS in the step (the sampler's).
    pub mirror_rss_max: Vec<u64>,
    /// The checkers' latency by endpoint, relay first.
    pub latency: Vec<Histogram>,
}

impl TierMeter {
    /// Before the step's first event.
    pub fn begin(mirrors: &Mirrors, swarm: &Swarm) -> TierMeter {
        TierMeter {
            mirror_cpu0: mirrors.cpu(),
            frames0: swarm.endpoint_totals().iter().map(|t| t.frames).collect(),
        }
    }

    /// After the step drained.
    pub fn finish(self, mirrors: &Mirrors, swarm: &Swarm, f: StepFigures) -> TierStep {
        let names = mirrors.endpoint_names();
        let mirrors: Vec<MirrorStep> = mirrors
            .cpu()
            .iter()
            .zip(&self.mirror_cpu0)
            .zip(&f.mirror_rss_max)
            .zip(&names[1..])
            .map(|(((cpu1, cpu0), rss), name)| MirrorStep {
                name: name.clone(),
                cpu_seconds: cpu1 - cpu0,
                rss_max_mib: *rss as f64 / (1024.0 * 1024.0),
            })
            .collect();
        let endpoints: Vec<EndpointStep> = swarm
            .endpoint_totals()
            .iter()
            .zip(&self.frames0)
            .zip(&f.latency)
            .zip(names)
            .map(|(((t, frames0), latency), name)| EndpointStep {
                name,
                subscribers: t.subscribers,
                deliveries: t.frames - frames0,
                latency_ms: Quantiles::from(latency),
            })
            .collect();
        let deliveries: u64 = endpoints.iter().map(|e| e.deliveries).sum();
        let tier_cpu = f.relay_cpu_seconds + mirrors.iter().map(|m| m.cpu_seconds).sum::<f64>();
        let relay_latency = Quantiles::from(&f.latency[0]);
        let mirror_latency = Quantiles::from(&Histogram::merged(&f.latency[1..]));
        TierStep {
            deliveries_per_second: deliveries as f64 / f.seconds.max(1e-9),
            relay_cpu_seconds: f.relay_cpu_seconds,
            mirrors,
            tier_cpu_seconds: tier_cpu,
            deliveries_per_tier_cpu_second: deliveries as f64 / tier_cpu.max(1e-9),
            generator_cpu_seconds: f.generator_cpu_seconds,
            endpoints,
            mirror_added_latency_ms: AddedLatency {
                p50: mirror_latency.p50 - relay_latency.p50,
                p99: mirror_latency.p99 - relay_latency.p99,
            },
            relay_latency_ms: relay_latency,
            mirror_latency_ms: mirror_latency,
        }
    }
}
