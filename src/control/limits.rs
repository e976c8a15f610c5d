//! A host's effective limits: config defaults, trusted-suffix defaults, and
//! the operator's per-host overrides, in that order.

use serde::{Deserialize, Serialize};

use crate::config::BudgetConfig;
use crate::net::covers;

/// The limits one host runs under. Rate fields of 0 mean "no limit".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Accounts the host may have (0 = no limit).
    pub accounts: u64,
    /// Events per second, paced smoothly.
    pub per_second: u64,
    /// Events per UTC hour before the host is throttled.
    pub per_hour: u64,
    /// Events per UTC day before the host is throttled.
    pub per_day: u64,
}

/// An operator's per-host override; unset fields keep the defaults. When only
/// `accounts` is set, the hourly and daily budgets follow it through the
/// config's formulas, as they would for a default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u64>,
}

impl LimitOverride {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == LimitOverride::default()
    }
}

/// The limits of `hostname` under `cfg`, with `over` applied.
pub fn limits_for(cfg: &BudgetConfig, hostname: &str, over: Option<&LimitOverride>) -> Limits {
    let trusted = cfg.trusted_suffixes.iter().any(|s| covers(s, hostname));
    let (base_accounts, base_rate) = if trusted {
        (cfg.trusted_accounts, cfg.trusted_per_second)
    } else {
        (cfg.accounts, cfg.per_second)
    };
    let over = over.copied().unwrap_or_default();
    let accounts = over.accounts.unwrap_or(base_accounts);
    let formula = |base: u64, per_account: u64| {
        if base == 0 && per_account == 0 {
            0
        } else {
            base.saturating_add(per_account.saturating_mul(accounts))
        }
    };
    Limits {
        accounts,
        per_second: over.per_second.unwrap_or(base_rate),
        per_hour: over
            .per_hour
            .unwrap_or_else(|| formula(cfg.per_hour, cfg.per_hour_per_account)),
        per_day: over
            .per_day
            .unwrap_or_else(|| formula(cfg.per_day, cfg.per_day_per_account)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_formula_trusted_and_overrides() {
        let mut cfg = BudgetConfig::default();
        let l = limits_for(&cfg, "pds.example.com", None);
        assert_eq!(
            l,
            Limits {
                accounts: 100,
                per_second: 50,
                per_hour: 2_600,
                per_day: 21_000
            }
        );
        cfg.trusted_suffixes = vec!["host.bsky.network".into()];
        let t = limits_for(&cfg, "morel.us-east.host.bsky.network", None);
        assert_eq!(t.accounts, 100_000);
        assert_eq!(t.per_hour, 102_500);
        assert_eq!(t.per_second, 5_000);
        let o = LimitOverride {
            accounts: Some(1_000),
            per_day: Some(5),
            ..LimitOverride::default()
        };
        let l = limits_for(&cfg, "pds.example.com", Some(&o));
        assert_eq!((l.accounts, l.per_hour, l.per_day), (1_000, 3_500, 5));
    }

    #[test]
    fn zero_bases_mean_no_limit() {
        let cfg = BudgetConfig {
            per_hour: 0,
            per_hour_per_account: 0,
            ..BudgetConfig::default()
        };
        assert_eq!(limits_for(&cfg, "a.example", None).per_hour, 0);
    }
}
