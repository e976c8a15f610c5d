//! The verifier's bounded account cache.
//!
//! Each verifier thread keeps the state of the accounts sharded to it (host,
//! statuses, rev, commit and data CIDs), so deciding an event needs no read
//! from the log. The log holds the same state durably (the sequencer writes it
//! with each event) and [`AccountLookup`](super::verifier::AccountLookup)
//! reads it back on a miss, so the cache may forget entries, with one
//! exception: an entry whose latest write is not yet in the log. Reloading it
//! would read the state before that write (an older rev and `data`), and the
//! account's next commit would be judged against the wrong head. So every write
//! takes a ticket, the sequencer publishes the highest ticket whose batch is
//! written ([`Written`]), and eviction keeps every entry above it.
//!
//! Two generations, hot and cold, both hash maps: hits in hot cost one lookup;
//! hits in cold move the entry to hot; writes go to hot. When hot has taken
//! `capacity / 2` new entries since the last rotation, the cold generation is
//! dropped (except entries whose writes are pending, which move to hot), hot
//! becomes cold, and a new hot starts. That is an approximate LRU in O(1)
//! amortized per operation, without per-entry links or an extra crate. At most
//! `capacity` entries are held, plus those whose writes are still in flight
//! (bounded by the pipeline's queues).
//!
//! Entries are compact ([`Entry`]): about 330 bytes each, table slot and heap
//! included, against about 520 for a `HashMap<String, Option<AccountState>>`
//! (see [`Entry`] for the arithmetic).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::metrics::ACCOUNT_CACHE_EVICTIONS;
use crate::log::AccountState;
use crate::wire::cid::{Cid, Codec};
use crate::wire::tid::Tid;

/// The smallest capacity a cache is given (per verifier thread).
pub const MIN_CAPACITY: usize = 16;

/// How far the sequencer has written one verifier's account updates: the
/// highest ticket whose batch the log holds. Handed to the sequencer with each
/// batch of events ([`Written`]), read by the cache before it evicts.
#[derive(Clone, Debug, Default)]
pub struct WrittenMark(Arc<AtomicU64>);

impl WrittenMark {
    /// The highest ticket written.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// "Every account update up to ticket `upto` is in this batch or an earlier
/// one": the sequencer calls [`Written::done`] once the batch is in the log.
#[derive(Clone, Debug)]
pub struct Written {
    mark: WrittenMark,
    upto: u64,
}

impl Written {
    /// Marks the updates as written (after the log append returned).
    pub fn done(&self) {
        self.mark.0.fetch_max(self.upto, Ordering::AcqRel);
    }
}

/// A CID held in 32 bytes when it is the blessed dag-cbor form (every commit
/// and MST root), boxed otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CompactCid {
    DagCborSha256([u8; 32]),
    Other(Box<Cid>),
}

impl CompactCid {
    fn new(cid: &Cid) -> CompactCid {
        match (cid.is_blessed(), cid.codec(), cid.sha256_digest()) {
            (true, Some(Codec::DagCbor), Some(digest)) => CompactCid::DagCborSha256(*digest),
            _ => CompactCid::Other(Box::new(*cid)),
        }
    }

    fn cid(&self) -> Cid {
        match self {
            CompactCid::DagCborSha256(digest) => Cid::from_sha256(Codec::DagCbor, *digest),
            CompactCid::Other(cid) => **cid,
        }
    }
}

/// A rev held as its 8-byte TID when it round-trips (every rev the verifier
/// accepts), as text otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rev {
    Tid(Tid),
    Text(Box<str>),
}

impl Rev {
    fn new(rev: &str) -> Rev {
        match Tid::parse(rev) {
            Ok(tid) if tid.encode() == rev.as_bytes() => Rev::Tid(tid),
            _ => Rev::Text(rev.into()),
        }
    }

    fn text(&self) -> String {
        match self {
            Rev::Tid(tid) => tid.to_string(),
            Rev::Text(s) => s.to_string(),
        }
    }
}

/// One account's state as held in the cache.
///
/// Size on x86-64: `host` 16 (an `Arc<str>`, shared with the crawler's host
/// name for accounts updated since they were loaded), `rev` 24, `commit` and
/// `data` 40 each, the two statuses 16 each, ticket 8: 160 bytes, plus the
/// 16-byte key and a control byte: 177 bytes per table slot. A hash table is
/// between 7/16 and 7/8 full, so about 270 bytes per entry on average, plus
/// the DID on the heap (32 bytes, a 48-byte allocation) and, for an account
/// loaded from the log and not updated since, its own host name (about 48):
/// 320–370 bytes per entry.
#[derive(Clone, Debug)]
struct Entry {
    /// `None`: the account is unknown to the log (absence is cached too).
    state: Option<Compact>,
    /// The write this entry carries; 0 for state read from the log.
    ticket: u64,
}

#[derive(Clone, Debug)]
struct Compact {
    host: Arc<str>,
    rev: Option<Rev>,
    commit: Option<CompactCid>,
    data: Option<CompactCid>,
    upstream_status: Option<Box<str>>,
    local_status: Option<Box<str>>,
}

impl Compact {
    /// `host` is reused when it names the same host, so updates share one
    /// allocation per host.
    fn new(state: &AccountState, host: Option<&Arc<str>>) -> Compact {
        let host = match host {
            Some(h) if **h == *state.host => h.clone(),
            _ => Arc::from(state.host.as_str()),
        };
        Compact {
            host,
            rev: state.rev.as_deref().map(Rev::new),
            commit: state.commit.as_ref().map(CompactCid::new),
            data: state.data.as_ref().map(CompactCid::new),
            upstream_status: state.upstream_status.as_deref().map(Box::from),
            local_status: state.local_status.as_deref().map(Box::from),
        }
    }

    fn state(&self) -> AccountState {
        AccountState {
            host: self.host.to_string(),
            upstream_status: self.upstream_status.as_deref().map(str::to_owned),
            local_status: self.local_status.as_deref().map(str::to_owned),
            rev: self.rev.as_ref().map(Rev::text),
            commit: self.commit.as_ref().map(CompactCid::cid),
            data: self.data.as_ref().map(CompactCid::cid),
        }
    }
}

/// The bounded cache of one verifier thread. See the module documentation.
#[derive(Debug)]
pub struct AccountCache {
    hot: HashMap<Box<str>, Entry>,
    cold: HashMap<Box<str>, Entry>,
    /// New entries hot takes before a rotation (half the capacity).
    generation: usize,
    /// Entries with pending writes carried into hot at the last rotation;
    /// they do not count towards the next one, so a rotation always has
    /// `generation` new entries to pay for it.
    carried: usize,
    /// Tickets handed out (the last one).
    issued: u64,
    written: WrittenMark,
    evictions: u64,
    evictions_total: metrics::Counter,
}

impl AccountCache {
    /// A cache of at most `capacity` entries (at least [`MIN_CAPACITY`]),
    /// plus those whose writes are pending.
    pub fn new(capacity: usize) -> AccountCache {
        AccountCache {
            hot: HashMap::new(),
            cold: HashMap::new(),
            generation: capacity.max(MIN_CAPACITY) / 2,
            carried: 0,
            issued: 0,
            written: WrittenMark::default(),
            evictions: 0,
            evictions_total: metrics::counter!(ACCOUNT_CACHE_EVICTIONS),
        }
    }

    /// The cached state of `did`: `None` when not cached, `Some(None)` when
    /// cached as unknown.
    pub fn get(&mut self, did: &str) -> Option<Option<AccountState>> {
        if let Some(e) = self.hot.get(did) {
            return Some(e.state.as_ref().map(Compact::state));
        }
        let (key, entry) = self.cold.remove_entry(did)?;
        let state = entry.state.as_ref().map(Compact::state);
        self.put_hot(key, entry);
        Some(state)
    }

    /// Remembers state read from the log (clean: it may be evicted at once).
    pub fn insert_loaded(&mut self, did: &str, state: Option<&AccountState>) {
        let entry = Entry {
            state: state.map(|s| Compact::new(s, None)),
            ticket: 0,
        };
        self.put(did, entry);
    }

    /// Records a new state of `did` that will be written to the log with the
    /// event sent after this call; it stays cached until that write is done.
    /// `host` is an allocation of the state's host name to share.
    pub fn update(&mut self, did: &str, state: &AccountState, host: Option<&Arc<str>>) {
        self.issued += 1;
        let previous_host = self
            .hot
            .get(did)
            .or_else(|| self.cold.get(did))
            .and_then(|e| e.state.as_ref())
            .map(|c| c.host.clone());
        let entry = Entry {
            state: Some(Compact::new(state, host.or(previous_host.as_ref()))),
            ticket: self.issued,
        };
        self.put(did, entry);
    }

    /// What the sequencer marks written after appending the events sent so
    /// far: every update made before this call.
    pub fn written(&self) -> Written {
        Written {
            mark: self.written.clone(),
            upto: self.issued,
        }
    }

    /// Whether an update made so far is not yet written.
    pub fn has_pending(&self) -> bool {
        self.written.get() < self.issued
    }

    /// Forgets `did` unless its latest update is not yet written (reloading
    /// it then would read older state); returns whether it was forgotten.
    pub fn forget(&mut self, did: &str) -> bool {
        let written = self.written.get();
        for map in [&mut self.hot, &mut self.cold] {
            if let Some(e) = map.get(did) {
                if e.ticket > written {
                    return false;
                }
                map.remove(did);
            }
        }
        true
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn put(&mut self, did: &str, entry: Entry) {
        if let Some(e) = self.hot.get_mut(did) {
            *e = entry;
            return;
        }
        let key = match self.cold.remove_entry(did) {
            Some((key, _)) => key,
            None => Box::from(did),
        };
        self.put_hot(key, entry);
    }

    fn put_hot(&mut self, key: Box<str>, entry: Entry) {
        self.hot.insert(key, entry);
        if self.hot.len() >= self.generation + self.carried {
            self.rotate();
        }
    }

    /// Drops the cold generation, except entries whose writes are pending
    /// (they move to hot), and makes hot the cold one.
    fn rotate(&mut self) {
        let written = self.written.get();
        let mut old = std::mem::take(&mut self.cold);
        let mut pending = Vec::new();
        let mut evicted = 0u64;
        for (key, entry) in old.drain() {
            if entry.ticket > written {
                pending.push((key, entry));
            } else {
                evicted += 1;
            }
        }
        // The drained table keeps its allocation and becomes the new hot.
        self.cold = std::mem::replace(&mut self.hot, old);
        self.carried = pending.len();
        self.hot.extend(pending);
        self.evictions += evicted;
        self.evictions_total.increment(evicted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n: u64) -> AccountState {
        AccountState {
            host: "pds.example.com".into(),
            upstream_status: None,
            local_status: (n % 7 == 0).then(|| "takendown".to_owned()),
            rev: Some(Tid::from_parts(1_700_000_000_000_000 + n, 0).to_string()),
            commit: Some(Cid::for_cbor(&n.to_be_bytes())),
            data: Some(Cid::for_raw(&n.to_be_bytes())),
        }
    }

    #[test]
    fn entries_round_trip() {
        let mut odd = state(3);
        odd.rev = Some("not-a-tid".into());
        odd.upstream_status = Some("deactivated".into());
        let v0 = Cid::from_bytes(
            &[0x12, 0x20]
                .iter()
                .chain(&[7u8; 32])
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap();
        odd.commit = Some(v0);
        for s in [state(1), state(7), odd, AccountState::new("h")] {
            assert_eq!(Compact::new(&s, None).state(), s);
        }
    }

    #[test]
    fn bounded_and_keeps_pending_writes() {
        let mut cache = AccountCache::new(100);
        let did = |i: u64| format!("did:plc:{i:024}");
        // Loaded entries: evicted freely; the cache stays within capacity.
        for i in 0..1_000 {
            cache.insert_loaded(&did(i), Some(&state(i)).filter(|_| i % 2 == 0));
            assert!(cache.len() <= 100, "{}", cache.len());
        }
        assert!(cache.evictions() >= 900);
        // The recent ones hit.
        assert_eq!(cache.get(&did(999)), Some(None));
        assert_eq!(cache.get(&did(998)), Some(Some(state(998))));
        assert_eq!(cache.get(&did(0)), None);

        // Updates not yet written stay, however many come after them.
        for i in 0..300 {
            cache.update(&did(10_000 + i), &state(i), None);
        }
        let batch = cache.written();
        assert!(cache.has_pending());
        for i in 0..1_000 {
            cache.insert_loaded(&did(20_000 + i), None);
        }
        for i in 0..300 {
            assert_eq!(cache.get(&did(10_000 + i)), Some(Some(state(i))));
        }
        assert!(!cache.forget(&did(10_000)), "pending: not forgotten");
        // Once written, they can go.
        batch.done();
        assert!(!cache.has_pending());
        for i in 0..1_000 {
            cache.insert_loaded(&did(30_000 + i), None);
        }
        assert!(cache.len() <= 100, "{}", cache.len());
        assert_eq!(cache.get(&did(10_000)), None);
        assert!(cache.forget(&did(30_999)));
        assert_eq!(cache.get(&did(30_999)), None);
    }

    #[test]
    fn updates_share_the_host_allocation() {
        let mut cache = AccountCache::new(100);
        let host: Arc<str> = Arc::from("pds.example.com");
        cache.update("did:plc:a", &state(1), Some(&host));
        cache.update("did:plc:a", &state(2), None);
        let e = cache.hot.get("did:plc:a").unwrap();
        assert!(Arc::ptr_eq(&e.state.as_ref().unwrap().host, &host));
        assert_eq!(cache.get("did:plc:a"), Some(Some(state(2))));
    }

    #[test]
    fn entry_size() {
        // The figures in the documentation of `Entry`.
        assert_eq!(std::mem::size_of::<Entry>(), 160);
        assert_eq!(std::mem::size_of::<(Box<str>, Entry)>(), 176);
    }
}
