//! `atrelay devnet`'s settings: the `[devnet]` section of a
//! `config/devnet.toml`-style file, its defaults and its checks. Separate
//! from starting the network (the parent module) because these are the
//! operator's knobs, parsed through the shared config layers, while
//! starting needs only a [`DevnetConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DevnetConfig;
use crate::config::{load_layers, ConfigError};

/// What `atrelay devnet` runs: the `[devnet]` section of a
/// `config/devnet.toml`-style file, each key named after the flag that
/// overrides it (`pds` is `--pds`, `data_dir` is `--data-dir`, ...).
///
/// Separate from [`DevnetConfig`] because these are the operator's knobs
/// with the command's defaults (the relay on its usual port, a temporary
/// directory, traffic at 5/s), while [`DevnetConfig`] is what
/// [`Devnet::start`](super::Devnet::start) needs, with defaults for tests
/// (a free port).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevnetSettings {
    /// Number of PDSes.
    pub pds: usize,
    /// Accounts created on each PDS.
    pub accounts: usize,
    /// Traffic operations per second across the network; 0 = no traffic.
    pub rate: f64,
    /// Seconds to run; 0 = until Ctrl-C.
    pub duration: f64,
    /// Seed of the traffic's random choices; `None` (`"random"` in a file)
    /// draws one per run.
    #[serde(with = "seed_or_random")]
    pub seed: Option<u64>,
    /// The relay's HTTP + firehose listen address.
    pub listen: SocketAddr,
    /// Where the network's data lives; empty = a fresh temporary directory,
    /// deleted on exit.
    pub data_dir: PathBuf,
}

impl Default for DevnetSettings {
    fn default() -> DevnetSettings {
        DevnetSettings {
            pds: 2,
            accounts: 3,
            rate: 5.0,
            duration: 0.0,
            seed: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 2470)),
            data_dir: PathBuf::new(),
        }
    }
}

/// A devnet config file: only the `[devnet]` section (so a typo'd section
/// is an error rather than silently ignored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DevnetFile {
    devnet: DevnetSettings,
}

impl DevnetSettings {
    /// The defaults overlaid by `file`'s `[devnet]` section (if given), then
    /// validated. Flags are the caller's to apply on top (then call
    /// [`DevnetSettings::validate`] again). No environment layer: the
    /// `ATRELAY_*` variables are the relay's, and a devnet configures its
    /// relay itself.
    pub fn load(file: Option<&Path>) -> Result<DevnetSettings, ConfigError> {
        let none = std::iter::empty::<(String, String)>();
        let parsed: DevnetFile = load_layers(DevnetFile::default(), file, none, "")?;
        parsed.devnet.validate()?;
        Ok(parsed.devnet)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(invalid("devnet.rate (--rate)", "must be 0 or more"));
        }
        if !self.duration.is_finite() || self.duration < 0.0 {
            return Err(invalid("devnet.duration (--duration)", "must be 0 or more"));
        }
        if self.pds == 0 {
            return Err(invalid("devnet.pds (--pds)", "must be at least 1"));
        }
        Ok(())
    }

    /// The data directory, or `None` for a temporary one.
    pub fn data_dir(&self) -> Option<&Path> {
        (!self.data_dir.as_os_str().is_empty()).then_some(self.data_dir.as_path())
    }

    /// What [`Devnet::start`](super::Devnet::start) needs to start this
    /// network in `data_dir`.
    pub fn config(&self, data_dir: &Path) -> DevnetConfig {
        let mut cfg = DevnetConfig::new(data_dir);
        cfg.pds_count = self.pds;
        cfg.accounts_per_pds = self.accounts;
        cfg.relay_listen = self.listen;
        cfg
    }
}

/// `seed` in a file: an integer, or `"random"` for none. TOML has no null,
/// and the generic loader only accepts keys its defaults serialise, so
/// "none" needs a spelling.
mod seed_or_random {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    const RANDOM: &str = "random";

    pub fn serialize<S: Serializer>(seed: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match seed {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_str(RANDOM),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct SeedVisitor;
        impl Visitor<'_> for SeedVisitor {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a non-negative integer or \"{RANDOM}\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<u64>, E> {
                Ok(Some(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Option<u64>, E> {
                u64::try_from(n)
                    .map(Some)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
                if v == RANDOM {
                    Ok(None)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(SeedVisitor)
    }
}
