//! Scenario files (`loadtest/scenarios/*.toml`): what `run` starts, how it
//! ramps, and what it must find at the end.

use std::path::{Path, PathBuf};

use atrelay::log::Durability;
use serde::Deserialize;

use crate::fleet::{FleetConfig, FleetConfigError};
use crate::swarm::SwarmConfig;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub relay: RelaySettings,
    #[serde(default)]
    pub fleet: FleetConfig,
    #[serde(default)]
    pub swarm: SwarmConfig,
    #[serde(default)]
    pub tier: Tier,
    #[serde(default)]
    pub prefill: Prefill,
    pub ramp: Ramp,
    #[serde(default)]
    pub limits: Limits,
}

/// The relay under test: the real binary with a generated config.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    /// `unlimited` (measure the relay, not budgets), `network` or
    /// `early-access` (the shipped profiles).
    pub budget: String,
    /// `fsync` or `buffered`.
    pub durability: String,
    /// Verifier threads; 0 = one per core.
    pub verify_workers: usize,
    pub ring_capacity: usize,
    /// Identity cache entries.
    pub identity_cache_capacity: usize,
    /// `default`, or `512mb` for config/memory-512mb.toml's cache, memtable
    /// and ring sizes (replacing `ring_capacity` and
    /// `identity_cache_capacity`).
    pub memory: String,
    /// The relay's `[server] max_connections`: 0 lets the relay derive it
    /// from its open-file limit. A swarm of N subscribers needs N plus a
    /// few for the run's own HTTP requests; `run` checks before connecting.
    pub max_connections: usize,
    /// The relay's `[fanout] max_subscribers`: 0 keeps the relay's default
    /// (10,000), which a swarm of that size would fill exactly.
    pub max_subscribers: usize,
}

impl Default for RelaySettings {
    fn default() -> RelaySettings {
        RelaySettings {
            budget: "unlimited".into(),
            durability: "fsync".into(),
            verify_workers: 0,
            ring_capacity: 65_536,
            identity_cache_capacity: 1_000_000,
            memory: "default".into(),
            max_connections: 0,
            max_subscribers: 0,
        }
    }
}

/// The fan-out tier: mirrors (`atrelay serve --upstream`) of the relay
/// under test, the swarm spread over the relay and them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tier {
    /// Mirror processes following the relay; 0 runs the relay alone.
    pub mirrors: usize,
}

/// Most mirrors a scenario may start: each is a whole relay process on the
/// same machine.
pub const MAX_MIRRORS: usize = 16;

/// Events ingested at full speed before the swarm connects (the catch-up
/// scenario's backlog), generated and sent in chunks so memory stays bounded.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prefill {
    pub events: usize,
    /// Events per generated chunk; 0 = 100,000.
    pub chunk: usize,
}

/// The offered-rate ramp.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Offered rates in events/s, in order; 0 means "as fast as possible".
    pub rates: Vec<f64>,
    /// Seconds of emission per step.
    pub step_seconds: f64,
    /// A step keeps up when accepted ≥ this × offered …
    #[serde(default = "default_accept_ratio")]
    pub min_accept_ratio: f64,
    /// … and p99 latency stays at or under this many milliseconds.
    #[serde(default = "default_p99")]
    pub max_p99_ms: f64,
    /// Keep ramping after a step that did not keep up.
    #[serde(default)]
    pub continue_when_saturated: bool,
}

fn default_accept_ratio() -> f64 {
    0.9
}

fn default_p99() -> f64 {
    1_000.0
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The whole run stops (and fails) after this many seconds.
    pub timeout_secs: u64,
    /// Longest wait for the relay to process a step after it was emitted.
    pub drain_secs: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout_secs: 600,
            drain_secs: 60,
        }
    }
}

/// Why a scenario file cannot be run; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct ScenarioError {
    pub path: PathBuf,
    pub problem: Problem,
}

/// What is wrong with a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Read(std::io::Error),
    #[error(transparent)]
    Parse(toml::de::Error),
    #[error(transparent)]
    Invalid(InvalidScenario),
}

/// A scenario value out of range; each message names the key.
#[derive(Debug, thiserror::Error)]
pub enum InvalidScenario {
    #[error(transparent)]
    Fleet(#[from] FleetConfigError),
    #[error("ramp.rates is empty")]
    NoRates,
    #[error("ramp.rates must be finite and ≥ 0")]
    BadRate,
    #[error("ramp.step_seconds must be within (0, 3600]")]
    StepSeconds,
    #[error("relay.memory must be default or 512mb, not {0:?}")]
    Memory(String),
    #[error("relay.budget must be unlimited, network or early-access, not {0:?}")]
    Budget(String),
    #[error("relay.durability must be fsync or buffered")]
    Durability,
    #[error("swarm.check cannot exceed swarm.subscribers")]
    TooManyCheckers,
    #[error("tier.mirrors must be at most {MAX_MIRRORS}")]
    TooManyMirrors,
    #[error("swarm.check must be at least {0} (one checker on the relay and on each mirror)")]
    TooFewCheckers(usize),
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let at = |problem| ScenarioError {
            path: path.to_owned(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| at(Problem::Read(e)))?;
        let s: Scenario = toml::from_str(&text).map_err(|e| at(Problem::Parse(e)))?;
        s.validate().map_err(|e| at(Problem::Invalid(e)))?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), InvalidScenario> {
        self.fleet.validate()?;
        if self.ramp.rates.is_empty() {
            return Err(InvalidScenario::NoRates);
        }
        if self.ramp.rates.iter().any(|r| !r.is_finite() || *r < 0.0) {
            return Err(InvalidScenario::BadRate);
        }
        if !(self.ramp.step_seconds > 0.0 && self.ramp.step_seconds <= 3_600.0) {
            return Err(InvalidScenario::StepSeconds);
        }
        if !["default", "512mb"].contains(&self.relay.memory.as_str()) {
            return Err(InvalidScenario::Memory(self.relay.memory.clone()));
        }
        if !["unlimited", "network", "early-access"].contains(&self.relay.budget.as_str()) {
            return Err(InvalidScenario::Budget(self.relay.budget.clone()));
        }
        if Durability::parse(&self.relay.durability).is_none() {
            return Err(InvalidScenario::Durability);
        }
        if self.swarm.check > self.swarm.subscribers {
            return Err(InvalidScenario::TooManyCheckers);
        }
        if self.tier.mirrors > MAX_MIRRORS {
            return Err(InvalidScenario::TooManyMirrors);
        }
        // Subscriber i goes to endpoint i mod (mirrors + 1), checkers first:
        // one checker per endpoint gives each its latency.
        if self.tier.mirrors > 0 && self.swarm.check < self.endpoints() {
            return Err(InvalidScenario::TooFewCheckers(self.endpoints()));
        }
        Ok(())
    }

    /// URLs the swarm is spread over: the relay and each mirror.
    pub fn endpoints(&self) -> usize {
        self.tier.mirrors + 1
    }

    /// Whether the relay must process every event: budgets may hold events
    /// upstream (not a loss: they wait behind the host's cursor).
    pub fn complete(&self) -> bool {
        self.relay.budget == "unlimited"
    }

    /// Events emitted per step at `rate` (a max-speed step emits what the
    /// step's largest finite neighbour would, or 20,000).
    pub fn step_events(&self, rate: f64) -> usize {
        let r = if rate > 0.0 {
            rate
        } else {
            self.ramp
                .rates
                .iter()
                .copied()
                .fold(0.0, f64::max)
                .max(20_000.0 / self.ramp.step_seconds)
        };
        ((r * self.ramp.step_seconds) as usize).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("loadtest/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 6, "{n} scenarios");
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        let bad = r#"
            name = "x"
            [ramp]
            rates = []
            step_seconds = 1
        "#;
        let s: Scenario = toml::from_str(bad).unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("rates"));
        let typo = "name = \"x\"\nsubscribers = 3\n[ramp]\nrates=[1]\nstep_seconds=1\n";
        assert!(toml::from_str::<Scenario>(typo).is_err());
        let budget =
            "name = \"x\"\n[relay]\nbudget = \"lots\"\n[ramp]\nrates=[1]\nstep_seconds=1\n";
        let s: Scenario = toml::from_str(budget).unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("budget"));
        let blind_mirror = "name = \"x\"\n[swarm]\nsubscribers = 4\ncheck = 1\n\
                            [tier]\nmirrors = 1\n[ramp]\nrates=[1]\nstep_seconds=1\n";
        let s: Scenario = toml::from_str(blind_mirror).unwrap();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("swarm.check"));
    }
}
