//! The bounded, TTL'd identity cache behind [`Resolver`](super::Resolver).
//!
//! Each entry holds a resolution outcome — an identity, or a definitive failure
//! (not found, tombstoned, invalid) — and the instant it stops being fresh. Reads
//! are a sharded-map lookup plus an atomic store, so the verify hot path never
//! waits on the network or on a global lock.
//!
//! Capacity is enforced on insert: when the map is full, one caller sweeps it
//! (CLOCK-style, a shard at a time) and removes, in order, expired entries, then
//! entries not read since the previous sweep, then arbitrary ones, until a
//! sixteenth of the capacity is free (every expired entry goes, even past that).
//! A sweep is O(entries) but happens once per
//! capacity/16 inserts, so the amortized cost per insert is constant. Inserts that
//! race a running sweep do not wait for it, so under concurrency the map can
//! exceed its capacity by at most the number of concurrent inserters.
//!
//! **Memory.** A relay caches millions of identities, so an entry is kept
//! small: the key is the identity's own `Arc<str>` DID (not a second copy),
//! a failure is boxed (a slot holds one pointer either way), and expiry
//! (milliseconds since the cache started) shares one `AtomicU64` with the
//! recently-used bit, instead of an `Instant` and an `AtomicBool`.
//! A map slot is 32 bytes; with the identity, its DID and handle and the
//! table's spare room, an entry costs about 370 bytes (BENCHMARKS.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::document::Identity;
use super::error::ResolveError;
use super::metrics::{CACHE_ENTRIES, CACHE_EVICTIONS};

/// A cached resolution: the identity or a definitive failure.
pub(crate) type Outcome = Result<Arc<Identity>, ResolveError>;

/// An [`Outcome`] as stored: a failure boxed, so that either side is one
/// pointer wide.
type Stored = Result<Arc<Identity>, Box<ResolveError>>;

/// `Entry::meta`'s top bit: set on every read, cleared by a sweep
/// ("recently used", for eviction). The other 63 bits are the expiry.
const TOUCHED: u64 = 1 << 63;

struct Entry {
    outcome: Stored,
    /// [`TOUCHED`] | the cache clock's millisecond at which the entry stops
    /// being fresh.
    meta: AtomicU64,
}

impl Entry {
    fn expires(&self) -> u64 {
        self.meta.load(Ordering::Relaxed) & !TOUCHED
    }
}

/// A concurrent DID → outcome map with per-entry expiry and a soft size bound.
pub(crate) struct Cache {
    map: DashMap<Arc<str>, Entry>,
    capacity: usize,
    sweeping: Mutex<()>,
    /// Time zero of the entries' `expires`.
    epoch: Instant,
}

impl Cache {
    /// An empty cache holding at most `capacity` entries (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Cache {
            map: DashMap::new(),
            capacity: capacity.max(1),
            sweeping: Mutex::new(()),
            epoch: Instant::now(),
        }
    }

    /// `now` on the cache's clock: milliseconds since `epoch`, rounded down.
    fn clock(&self, now: Instant) -> u64 {
        millis(now.saturating_duration_since(self.epoch))
    }

    /// The outcome cached for `did` if it is still fresh at `now`.
    pub(crate) fn get(&self, did: &str, now: Instant) -> Option<Outcome> {
        let entry = self.map.get(did)?;
        let meta = entry.meta.load(Ordering::Relaxed);
        if meta & !TOUCHED <= self.clock(now) {
            return None;
        }
        // Only write when the bit changes, to keep hot entries' cache lines shared.
        if meta & TOUCHED == 0 {
            entry.meta.fetch_or(TOUCHED, Ordering::Relaxed);
        }
        Some(match &entry.outcome {
            Ok(identity) => Ok(identity.clone()),
            Err(e) => Err((**e).clone()),
        })
    }

    /// Stores `outcome` for `did`, fresh for `ttl` from `now` (to the
    /// millisecond). Does not evict: call [`Cache::enforce_capacity`]
    /// afterwards, outside any other lock.
    pub(crate) fn insert(&self, did: &str, outcome: Outcome, ttl: Duration, now: Instant) {
        let until = now
            .saturating_duration_since(self.epoch)
            .saturating_add(ttl);
        let expires = millis(until).min(!TOUCHED);
        let (key, outcome) = match outcome {
            // The identity already holds the DID: the key shares it.
            Ok(identity) if &*identity.did == did => (identity.did.clone(), Ok(identity)),
            Ok(identity) => (Arc::from(did), Ok(identity)),
            Err(e) => (Arc::from(did), Err(Box::new(e))),
        };
        self.map.insert(
            key,
            Entry {
                outcome,
                meta: AtomicU64::new(expires),
            },
        );
    }

    /// Drops `did`'s entry, if any.
    pub(crate) fn remove(&self, did: &str) {
        if self.map.remove(did).is_some() {
            metrics::gauge!(CACHE_ENTRIES).decrement(1.0);
        }
    }

    /// Number of entries, fresh or expired.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The configured capacity.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// If the map is over capacity, sweeps it down to capacity minus a
    /// sixteenth (see the module documentation). Returns how many entries it
    /// removed; 0 when not needed or when another caller is already sweeping.
    pub(crate) fn enforce_capacity(&self, now: Instant) -> usize {
        let len = self.map.len();
        metrics::gauge!(CACHE_ENTRIES).set(len as f64);
        if len <= self.capacity {
            return 0;
        }
        let Ok(_guard) = self.sweeping.try_lock() else {
            return 0;
        };
        let target = self.capacity - (self.capacity / 16).max(1);
        let before = self.map.len();
        // Pass 1: expired entries.
        let clock = self.clock(now);
        self.map.retain(|_, entry| entry.expires() > clock);
        // Pass 2: entries not read since the last sweep, while there is still
        // excess; every entry visited loses its "touched" bit (CLOCK).
        let mut excess = self.map.len().saturating_sub(target);
        if excess > 0 {
            self.map.retain(|_, entry| {
                let touched = entry.meta.fetch_and(!TOUCHED, Ordering::Relaxed) & TOUCHED != 0;
                if !touched && excess > 0 {
                    excess -= 1;
                    return false;
                }
                true
            });
        }
        // Pass 3: still too many (everything was recently used): drop arbitrary
        // entries, in the map's hash order.
        if excess > 0 {
            let victims: Vec<Arc<str>> = self
                .map
                .iter()
                .take(excess)
                .map(|e| e.key().clone())
                .collect();
            for did in victims {
                self.map.remove(&did);
            }
        }
        let after = self.map.len();
        let removed = before.saturating_sub(after);
        metrics::counter!(CACHE_EVICTIONS).increment(removed as u64);
        metrics::gauge!(CACHE_ENTRIES).set(after as f64);
        removed
    }
}

/// Whole milliseconds in `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(did: &str) -> Outcome {
        Ok(Arc::new(Identity {
            did: did.into(),
            handle: None,
            signing_key: None,
            pds_endpoint: None,
            pds_host: None,
        }))
    }

    #[test]
    fn ttl_and_negative_entries() {
        let cache = Cache::new(10);
        let now = Instant::now();
        cache.insert("a", ident("a"), Duration::from_secs(10), now);
        cache.insert(
            "b",
            Err(ResolveError::NotFound),
            Duration::from_secs(1),
            now,
        );
        assert!(matches!(cache.get("a", now), Some(Ok(_))));
        assert_eq!(cache.get("b", now), Some(Err(ResolveError::NotFound)));
        let later = now + Duration::from_secs(2);
        assert!(cache.get("a", later).is_some());
        assert_eq!(cache.get("b", later), None);
        assert_eq!(cache.get("c", now), None);
        cache.remove("a");
        assert_eq!(cache.get("a", now), None);
        // Huge TTLs do not overflow.
        cache.insert("d", ident("d"), Duration::MAX, now);
        assert!(cache.get("d", later).is_some());
    }

    #[test]
    fn capacity_is_enforced_preferring_expired_then_untouched() {
        let cache = Cache::new(32);
        let now = Instant::now();
        for i in 0..32 {
            let ttl = if i < 4 {
                Duration::from_millis(1)
            } else {
                Duration::from_secs(60)
            };
            cache.insert(&format!("k{i}"), ident("x"), ttl, now);
        }
        assert_eq!(cache.enforce_capacity(now), 0);
        // Keep k4..k9 hot.
        let later = now + Duration::from_secs(1);
        for i in 4..10 {
            assert!(cache.get(&format!("k{i}"), later).is_some());
        }
        cache.insert("new", ident("x"), Duration::from_secs(60), later);
        let removed = cache.enforce_capacity(later);
        // Down to 32 - 2 = 30: the 4 expired go first, nothing else needed.
        assert_eq!(removed, 4);
        assert_eq!(cache.len(), 29);
        for i in 4..10 {
            assert!(
                cache.get(&format!("k{i}"), later).is_some(),
                "hot k{i} kept"
            );
        }
        // Fill again: untouched entries go before the touched ones.
        for i in 0..10 {
            cache.insert(&format!("m{i}"), ident("x"), Duration::from_secs(60), later);
        }
        assert!(cache.enforce_capacity(later) > 0);
        assert!(cache.len() <= 30);
        for i in 4..10 {
            assert!(
                cache.get(&format!("k{i}"), later).is_some(),
                "hot k{i} kept"
            );
        }
    }

    #[test]
    fn all_hot_still_bounded() {
        let cache = Cache::new(8);
        let now = Instant::now();
        for i in 0..100 {
            let k = format!("k{i}");
            cache.insert(&k, ident("x"), Duration::from_secs(60), now);
            assert!(cache.get(&k, now).is_some());
            cache.enforce_capacity(now);
            assert!(cache.len() <= 8);
        }
        let tiny = Cache::new(0);
        assert_eq!(tiny.capacity(), 1);
        tiny.insert("a", ident("a"), Duration::from_secs(60), now);
        tiny.insert("b", ident("b"), Duration::from_secs(60), now);
        tiny.enforce_capacity(now);
        assert!(tiny.len() <= 1);
    }
}
