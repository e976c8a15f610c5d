//! A host's status as the relay reports it: `com.atproto.sync.defs#hostStatus`.
//!
//! One type from the crawler that sets it to the stored [`HostState`]
//! (super::HostState), the `atrelay_hosts{status}` gauge and the JSON of
//! `listHosts`, `getHostStatus` and `/admin/hosts`, so a misspelt status is a
//! compile error rather than a host that silently never matches.

use std::fmt;

/// The lexicon's host statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Connected, or about to be; events flow.
    Active,
    /// Connected, with no events for `crawl.idle_after_secs`.
    Idle,
    /// Unreachable (three failures in a row) or refused by an upstream error.
    Offline,
    /// Paused by its budget until the window resets.
    Throttled,
    /// Blocked by the operator; stays so until unbanned.
    Banned,
}

impl HostStatus {
    /// Every status, in lexicon order (the gauge registers each at zero).
    pub const ALL: [HostStatus; 5] = [
        HostStatus::Active,
        HostStatus::Idle,
        HostStatus::Offline,
        HostStatus::Throttled,
        HostStatus::Banned,
    ];

    /// The lexicon's spelling, as stored and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Active => "active",
            HostStatus::Idle => "idle",
            HostStatus::Offline => "offline",
            HostStatus::Throttled => "throttled",
            HostStatus::Banned => "banned",
        }
    }

    /// The status spelled `s` (exact, lowercase), if any.
    pub fn parse(s: &str) -> Option<HostStatus> {
        HostStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for HostStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for st in HostStatus::ALL {
            assert_eq!(HostStatus::parse(st.as_str()), Some(st));
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert_eq!(HostStatus::parse("Active"), None);
    }
}
