//! The operator's crawl policy, persisted: crawl mode, allowlist, domain
//! bans, pending crawl requests, per-host limit overrides, the global pause,
//! and the daily new-host count.
//!
//! Each setting is one entry under `control/` in the log's `meta` column
//! family (`control/allow/<entry>`, `control/ban/<domain>`, ...), written
//! before the in-memory view changes, so what the admin API acknowledged is
//! what a restart loads. Config-file lists (`crawl.allowlist`,
//! `crawl.banned_domains`) are merged in at load and are not stored: removing
//! one from the file removes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use super::limits::{limits_for, LimitOverride, Limits};
use crate::config::{BudgetConfig, RelayConfig};
use crate::log::{EventLog, LogError};
use crate::net::{covers, normalize_domain, HostNameError};

const MODE: &str = "control/mode";
const PAUSED: &str = "control/paused";
const NEW_HOSTS: &str = "control/new_hosts";
const ALLOW: &str = "control/allow/";
const BAN: &str = "control/ban/";
const PENDING: &str = "control/pending/";
const LIMITS: &str = "control/limits/";

/// Most pending crawl requests remembered; beyond it new hostnames are
/// counted in the log but not stored (a flood of made-up names must not grow
/// the database without bound).
pub const MAX_PENDING: usize = 10_000;

/// Which hosts `requestCrawl` admits: defined with the config that names
/// the starting mode (`crawl.mode`), held and changed here.
pub use crate::config::CrawlMode;

/// A crawl request waiting for the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub first_micros: u64,
    pub last_micros: u64,
    pub count: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct DayCount {
    day: u64,
    count: u64,
}

/// Why a policy change failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A list entry that is not a host name or domain.
    #[error("{0}")]
    Invalid(#[from] HostNameError),
    #[error("storing the change: {0}")]
    Store(#[from] LogError),
}

/// The crawl policy. Cheap to clone; reads take a shared lock.
#[derive(Clone)]
pub struct Policy {
    log: EventLog,
    budget: Arc<BudgetConfig>,
    fixed_allow: Arc<Vec<String>>,
    fixed_bans: Arc<Vec<String>>,
    new_hosts_per_day: u64,
    state: Arc<RwLock<State>>,
}

struct State {
    mode: CrawlMode,
    paused: bool,
    allow: BTreeSet<String>,
    bans: BTreeSet<String>,
    pending: BTreeMap<String, Pending>,
    overrides: BTreeMap<String, LimitOverride>,
    new_hosts: DayCount,
}

impl Policy {
    /// Loads the stored policy, with `cfg`'s lists and mode as defaults.
    pub fn load(log: &EventLog, cfg: &RelayConfig) -> Result<Policy, PolicyError> {
        let mode = match log.get_meta(MODE)? {
            Some(v) => CrawlMode::parse(&String::from_utf8_lossy(&v)).ok_or_else(|| {
                LogError::Corrupt(format!("{MODE}: {:?}", String::from_utf8_lossy(&v)))
            })?,
            None => cfg.crawl.mode,
        };
        let paused = log.get_meta(PAUSED)?.is_some_and(|v| v == b"true");
        let names = |prefix: &str| -> Result<BTreeSet<String>, LogError> {
            Ok(log
                .scan_meta(prefix)?
                .into_iter()
                .map(|(k, _)| k[prefix.len()..].to_owned())
                .collect())
        };
        let mut pending = BTreeMap::new();
        for (k, v) in log.scan_meta(PENDING)? {
            pending.insert(k[PENDING.len()..].to_owned(), json(&k, &v)?);
        }
        let mut overrides = BTreeMap::new();
        for (k, v) in log.scan_meta(LIMITS)? {
            overrides.insert(k[LIMITS.len()..].to_owned(), json(&k, &v)?);
        }
        let new_hosts = match log.get_meta(NEW_HOSTS)? {
            Some(v) => json(NEW_HOSTS, &v)?,
            None => DayCount::default(),
        };
        let normalized = |list: &[String]| -> Vec<String> {
            list.iter()
                .filter_map(|e| normalize_domain(e).ok())
                .collect()
        };
        Ok(Policy {
            log: log.clone(),
            budget: Arc::new(cfg.budget.clone()),
            fixed_allow: Arc::new(normalized(&cfg.crawl.allowlist)),
            fixed_bans: Arc::new(normalized(&cfg.crawl.banned_domains)),
            new_hosts_per_day: cfg.crawl.new_hosts_per_day,
            state: Arc::new(RwLock::new(State {
                mode,
                paused,
                allow: names(ALLOW)?,
                bans: names(BAN)?,
                pending,
                overrides,
                new_hosts,
            })),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The crawl mode.
    pub fn mode(&self) -> CrawlMode {
        self.read().mode
    }

    /// Sets and stores the crawl mode.
    pub fn set_mode(&self, mode: CrawlMode) -> Result<(), PolicyError> {
        let mut s = self.write();
        self.log.put_meta(MODE, mode.as_str().as_bytes())?;
        s.mode = mode;
        Ok(())
    }

    /// Whether all crawling is paused by the operator.
    pub fn paused(&self) -> bool {
        self.read().paused
    }

    /// Pauses or resumes all crawling (stored).
    pub fn set_paused(&self, paused: bool) -> Result<(), PolicyError> {
        let mut s = self.write();
        self.log
            .put_meta(PAUSED, if paused { b"true" } else { b"false" })?;
        s.paused = paused;
        Ok(())
    }

    /// Whether `hostname` may be crawled under the mode and allowlist.
    pub fn admits(&self, hostname: &str) -> bool {
        let s = self.read();
        s.mode == CrawlMode::Open
            || s.allow.iter().any(|e| covers(e, hostname))
            || self.fixed_allow.iter().any(|e| covers(e, hostname))
    }

    /// The allowlist: stored entries, then the config file's.
    pub fn allowlist(&self) -> Vec<String> {
        let s = self.read();
        let mut out: Vec<String> = s.allow.iter().cloned().collect();
        out.extend(self.fixed_allow.iter().cloned());
        out
    }

    /// Adds an allowlist entry (normalized; returned). A pending request it
    /// covers is removed.
    pub fn allow(&self, entry: &str) -> Result<String, PolicyError> {
        let entry = normalize_domain(entry)?;
        let mut s = self.write();
        self.log.put_meta(&format!("{ALLOW}{entry}"), b"")?;
        s.allow.insert(entry.clone());
        let covered: Vec<String> = s
            .pending
            .keys()
            .filter(|h| covers(&entry, h))
            .cloned()
            .collect();
        for host in covered {
            self.log.delete_meta(&format!("{PENDING}{host}"))?;
            s.pending.remove(&host);
        }
        Ok(entry)
    }

    /// Removes an allowlist entry; whether it was there.
    pub fn disallow(&self, entry: &str) -> Result<bool, PolicyError> {
        let entry = normalize_domain(entry)?;
        let mut s = self.write();
        self.log.delete_meta(&format!("{ALLOW}{entry}"))?;
        Ok(s.allow.remove(&entry))
    }

    /// The ban covering `hostname`, if any.
    pub fn ban_of(&self, hostname: &str) -> Option<String> {
        let s = self.read();
        s.bans
            .iter()
            .chain(self.fixed_bans.iter())
            .find(|b| covers(b, hostname))
            .cloned()
    }

    /// Domain bans: stored, then the config file's.
    pub fn bans(&self) -> Vec<String> {
        let s = self.read();
        let mut out: Vec<String> = s.bans.iter().cloned().collect();
        out.extend(self.fixed_bans.iter().cloned());
        out
    }

    /// Bans a domain suffix (normalized; returned).
    pub fn ban(&self, domain: &str) -> Result<String, PolicyError> {
        let domain = normalize_domain(domain)?;
        let mut s = self.write();
        self.log.put_meta(&format!("{BAN}{domain}"), b"")?;
        s.bans.insert(domain.clone());
        Ok(domain)
    }

    /// Lifts a stored ban; whether it was there. Config-file bans stay.
    pub fn unban(&self, domain: &str) -> Result<bool, PolicyError> {
        let domain = normalize_domain(domain)?;
        let mut s = self.write();
        self.log.delete_meta(&format!("{BAN}{domain}"))?;
        Ok(s.bans.remove(&domain))
    }

    /// Records a crawl request refused by the allowlist.
    pub fn record_pending(&self, hostname: &str, now_micros: u64) -> Result<(), PolicyError> {
        let mut s = self.write();
        let entry = match s.pending.get(hostname) {
            Some(p) => Pending {
                last_micros: now_micros,
                count: p.count + 1,
                ..p.clone()
            },
            None if s.pending.len() >= MAX_PENDING => {
                tracing::warn!(%hostname, "pending crawl requests full; not recorded");
                return Ok(());
            }
            None => Pending {
                first_micros: now_micros,
                last_micros: now_micros,
                count: 1,
            },
        };
        let value = serde_json::to_vec(&entry).unwrap_or_default();
        self.log.put_meta(&format!("{PENDING}{hostname}"), &value)?;
        s.pending.insert(hostname.to_owned(), entry);
        Ok(())
    }

    /// Pending crawl requests, by hostname.
    pub fn pending(&self) -> Vec<(String, Pending)> {
        let s = self.read();
        s.pending
            .iter()
            .map(|(h, p)| (h.clone(), p.clone()))
            .collect()
    }

    /// The operator's override for `hostname`.
    pub fn limit_override(&self, hostname: &str) -> Option<LimitOverride> {
        self.read().overrides.get(hostname).copied()
    }

    /// Every stored override.
    pub fn limit_overrides(&self) -> Vec<(String, LimitOverride)> {
        let s = self.read();
        s.overrides.iter().map(|(h, o)| (h.clone(), *o)).collect()
    }

    /// Stores (or with an empty override, clears) a host's limits.
    pub fn set_limit_override(
        &self,
        hostname: &str,
        over: LimitOverride,
    ) -> Result<(), PolicyError> {
        let key = format!("{LIMITS}{hostname}");
        let mut s = self.write();
        if over.is_empty() {
            self.log.delete_meta(&key)?;
            s.overrides.remove(hostname);
        } else {
            let value = serde_json::to_vec(&over).unwrap_or_default();
            self.log.put_meta(&key, &value)?;
            s.overrides.insert(hostname.to_owned(), over);
        }
        Ok(())
    }

    /// The limits `hostname` runs under now.
    pub fn limits(&self, hostname: &str) -> Limits {
        let over = self.limit_override(hostname);
        limits_for(&self.budget, hostname, over.as_ref())
    }

    /// Counts one new host admitted by `requestCrawl` today (UTC); false
    /// (and not counted) when today's cap is reached.
    pub fn count_new_host(&self, now_micros: u64) -> Result<bool, PolicyError> {
        let day = now_micros / 86_400_000_000;
        let mut s = self.write();
        let mut c = s.new_hosts;
        if c.day != day {
            c = DayCount { day, count: 0 };
        }
        if self.new_hosts_per_day > 0 && c.count >= self.new_hosts_per_day {
            return Ok(false);
        }
        c.count += 1;
        let value = serde_json::to_vec(&c).unwrap_or_default();
        self.log.put_meta(NEW_HOSTS, &value)?;
        s.new_hosts = c;
        Ok(true)
    }
}

/// A stored JSON value; malformed is corruption.
fn json<T: serde::de::DeserializeOwned>(key: &str, v: &[u8]) -> Result<T, LogError> {
    serde_json::from_slice(v).map_err(|e| LogError::Corrupt(format!("{key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogOptions;

    fn open(dir: &std::path::Path) -> EventLog {
        EventLog::open(dir, LogOptions::default()).unwrap()
    }

    #[test]
    fn every_setting_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = RelayConfig::default();
        cfg.crawl.banned_domains = vec!["fixed.example".into()];
        cfg.crawl.new_hosts_per_day = 2;
        {
            let log = open(dir.path());
            let p = Policy::load(&log, &cfg).unwrap();
            assert_eq!(p.mode(), CrawlMode::Open);
            p.set_mode(CrawlMode::Allowlist).unwrap();
            p.record_pending("a.example.com", 5).unwrap();
            p.record_pending("a.example.com", 9).unwrap();
            p.record_pending("b.other.net", 7).unwrap();
            assert_eq!(p.allow("Example.com").unwrap(), "example.com");
            p.ban("Evil.Example").unwrap();
            p.set_paused(true).unwrap();
            p.set_limit_override(
                "c.example.com",
                LimitOverride {
                    accounts: Some(7),
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(p.count_new_host(1).unwrap());
            assert!(p.count_new_host(2).unwrap());
            assert!(!p.count_new_host(3).unwrap(), "daily cap of 2");
        }
        let log = open(dir.path());
        let p = Policy::load(&log, &cfg).unwrap();
        assert_eq!(p.mode(), CrawlMode::Allowlist);
        assert!(p.paused());
        assert!(p.admits("a.example.com"));
        assert!(!p.admits("b.other.net"));
        let pending = p.pending();
        assert_eq!(
            pending.len(),
            1,
            "allowing example.com settled a.example.com"
        );
        assert_eq!(pending[0].0, "b.other.net");
        assert_eq!(
            p.ban_of("pds.evil.example").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            p.ban_of("x.fixed.example").as_deref(),
            Some("fixed.example")
        );
        assert_eq!(p.ban_of("example.com"), None);
        assert_eq!(p.limits("c.example.com").accounts, 7);
        assert_eq!(p.limits("c.example.com").per_hour, 2_507);
        assert!(!p.count_new_host(4).unwrap(), "the day's count persisted");
        assert!(p.count_new_host(86_400_000_000).unwrap(), "next day");
        assert!(p.unban("evil.example").unwrap());
        assert!(
            !p.unban("fixed.example").unwrap(),
            "config bans are not stored"
        );
        assert!(p.ban_of("fixed.example").is_some());
        p.set_limit_override("c.example.com", LimitOverride::default())
            .unwrap();
        assert_eq!(p.limits("c.example.com").accounts, 100);
    }

    #[test]
    fn bad_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = Policy::load(&open(dir.path()), &RelayConfig::default()).unwrap();
        assert!(matches!(
            p.allow("http://x.com"),
            Err(PolicyError::Invalid(_))
        ));
        assert!(matches!(p.ban("nodot"), Err(PolicyError::Invalid(_))));
    }
}
