//! How often one DID's document may be re-fetched on an event's account
//! (a signature or host mismatch, an `#identity`): a burst, then one per
//! period. One DID always meets the same verifier thread, so each thread
//! keeps the state of its own DIDs, with no lock.
//!
//! The burst lets a real account's quick succession (created, then its
//! handle changed a few seconds later) be decided on fresh documents; the
//! period keeps a host that forges events for the DID from turning each
//! one into a directory lookup.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// DIDs remembered before the fully replenished ones are forgotten.
const PRUNE_AT: usize = 65_536;

/// Per-DID re-fetch limits (a generic cell rate: each DID's state is the
/// instant its allowance is full again).
#[derive(Debug)]
pub struct DidRefreshes {
    period: Duration,
    burst: u32,
    full_at: HashMap<String, Instant>,
}

impl DidRefreshes {
    /// `burst` re-fetches at once, then one per `period`.
    pub fn new(period: Duration, burst: u32) -> DidRefreshes {
        DidRefreshes {
            period,
            burst: burst.max(1),
            full_at: HashMap::new(),
        }
    }

    /// Whether `did` may be re-fetched at `now` (and if so, counts it).
    pub fn allow(&mut self, did: &str, now: Instant) -> bool {
        let window = self.period * self.burst;
        let full_at = self.full_at.get(did).copied().unwrap_or(now).max(now);
        let next = full_at + self.period;
        if next.duration_since(now) > window {
            return false;
        }
        if self.full_at.len() >= PRUNE_AT {
            self.full_at.retain(|_, at| *at > now);
        }
        self.full_at.insert(did.to_owned(), next);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_period() {
        let mut limits = DidRefreshes::new(Duration::from_secs(30), 3);
        let t = Instant::now();
        assert!(limits.allow("did:plc:a", t));
        assert!(limits.allow("did:plc:a", t));
        assert!(limits.allow("did:plc:a", t));
        assert!(!limits.allow("did:plc:a", t));
        assert!(limits.allow("did:plc:b", t), "each DID its own");
        assert!(!limits.allow("did:plc:a", t + Duration::from_secs(29)));
        assert!(limits.allow("did:plc:a", t + Duration::from_secs(31)));
        assert!(!limits.allow("did:plc:a", t + Duration::from_secs(32)));
        // Quiet long enough, the whole burst is back.
        let later = t + Duration::from_secs(200);
        for _ in 0..3 {
            assert!(limits.allow("did:plc:a", later));
        }
        assert!(!limits.allow("did:plc:a", later));
    }
}
