//! Upstream hosts: persisted state and the upstream-cursor watermark.
//!
//! Events from one host fan out to several verifier threads and reach the
//! sequencer out of upstream order, and dropped events never reach it. The
//! cursor persisted for a host must still never pass an event that is not
//! finished (committed or dropped), or a crash would skip it on resume. So each
//! host tracks its in-flight upstream seqs in arrival order; finishing one marks
//! it, and the watermark advances over the finished prefix. The sequencer
//! writes the watermark in the same batch as the events it covers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;

use super::metrics::{
    BUDGET_DAY_REMAINING, BUDGET_HOSTS_NEAR_LIMIT, BUDGET_HOUR_REMAINING, HOSTS,
    IDENTITY_REFRESH_LIMITED, SCOPE_HOST,
};
use crate::control::{Clock, HostBudget, Limits, Policy};
use crate::log::{EventLog, HostState, HostStatus, LogError};
use crate::net::HostName;

/// Most events of one host waiting for an identity re-resolution (on hold
/// in the verifier threads). Past it, the host's crawler reads no further
/// until some are decided, so a host that forges events for accounts it
/// does not hold cannot pile them up in memory.
pub const MAX_HELD_EVENTS: usize = 4096;

/// How often forced re-resolutions may be made on one host's behalf (a
/// signature or host mismatch, an `#identity`): a rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshBudget {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RefreshBudget {
    fn default() -> RefreshBudget {
        RefreshBudget {
            per_second: 10,
            burst: 100,
        }
    }
}

impl RefreshBudget {
    fn limiter(self) -> governor::DefaultDirectRateLimiter {
        let nz = |n: u32| std::num::NonZeroU32::new(n.max(1)).expect("at least 1");
        governor::RateLimiter::direct(
            governor::Quota::per_second(nz(self.per_second)).allow_burst(nz(self.burst)),
        )
    }
}

/// One upstream host.
#[derive(Debug)]
pub struct HostEntry {
    /// The host.
    pub name: HostName,
    /// Its canonical spelling ([`HostName::as_str`]), shared with the
    /// events read from it.
    pub hostname: Arc<str>,
    state: Mutex<HostState>,
    progress: Mutex<Progress>,
    /// Events dropped as invalid.
    pub dropped: AtomicU64,
    /// Verified commits that did not continue their account's chain.
    pub chain_breaks: AtomicU64,
    /// When the last frame arrived (Unix micros); 0 before any. An atomic
    /// store per frame, so the crawler's hot path takes no lock for it.
    pub last_event_micros: AtomicU64,
    /// Highest upstream seq seen (persisted through [`HostEntry::snapshot`]);
    /// atomic so dispatching an event takes only the progress lock.
    last_seq_seen: AtomicU64,
    /// The cursor last written with the events it covers (or set by the
    /// operator): what an administrative write may store. The watermark
    /// itself can run ahead of the log, since the sequencer finishes a
    /// batch's events before it is durable, so that the batch carries its
    /// own cursor; storing it outside that batch while the log writer is
    /// stalled would skip those events after a crash.
    durable_cursor: AtomicU64,
    /// Event budgets and the account limit.
    pub budget: HostBudget,
    /// Wakes the host's crawler out of a reconnect backoff (the host asked
    /// to be crawled again).
    pub wake: tokio::sync::Notify,
    /// Forced identity re-resolutions on this host's behalf.
    refreshes: governor::DefaultDirectRateLimiter,
    /// Events of this host on hold for a re-resolution.
    held: AtomicUsize,
    /// Wakes the crawler when `held` drops below [`MAX_HELD_EVENTS`].
    held_room: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Progress {
    /// Upstream seqs dispatched and not yet part of the watermark, with a
    /// finished flag, in dispatch (= upstream) order.
    inflight: VecDeque<(u64, bool)>,
    watermark: u64,
}

impl HostEntry {
    fn new(
        name: HostName,
        state: HostState,
        budget: HostBudget,
        refresh: RefreshBudget,
    ) -> HostEntry {
        let watermark = state.cursor;
        let last_seq_seen = AtomicU64::new(state.last_seq_seen);
        let durable_cursor = AtomicU64::new(state.cursor);
        HostEntry {
            hostname: name.as_arc(),
            name,
            state: Mutex::new(state),
            progress: Mutex::new(Progress {
                inflight: VecDeque::new(),
                watermark,
            }),
            dropped: AtomicU64::new(0),
            chain_breaks: AtomicU64::new(0),
            last_event_micros: AtomicU64::new(0),
            last_seq_seen,
            durable_cursor,
            budget,
            wake: tokio::sync::Notify::new(),
            refreshes: refresh.limiter(),
            held: AtomicUsize::new(0),
            held_room: tokio::sync::Notify::new(),
        }
    }

    /// Waits for this host's turn to have an identity re-resolved (its
    /// [`RefreshBudget`]).
    pub async fn refresh_turn(&self) {
        if self.refreshes.check().is_err() {
            metrics::counter!(IDENTITY_REFRESH_LIMITED, "scope" => SCOPE_HOST).increment(1);
            self.refreshes.until_ready().await;
        }
    }

    /// Counts `n` more (positive) or fewer (negative) of this host's events
    /// on hold for a re-resolution.
    pub fn add_held(&self, n: isize) {
        if n >= 0 {
            self.held.fetch_add(n as usize, Ordering::Relaxed);
        } else {
            let before = self.held.fetch_sub(n.unsigned_abs(), Ordering::Relaxed);
            if before >= MAX_HELD_EVENTS && before - n.unsigned_abs() < MAX_HELD_EVENTS {
                self.held_room.notify_waiters();
            }
        }
    }

    /// This host's events on hold for a re-resolution.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Returns once fewer than [`MAX_HELD_EVENTS`] of this host's events
    /// are on hold (at once, nearly always).
    pub async fn wait_for_held_room(&self) {
        while self.held() >= MAX_HELD_EVENTS {
            // Re-checked at least every 100 ms: a wake-up between the check
            // and the wait is not lost for long.
            let _ =
                tokio::time::timeout(Duration::from_millis(100), self.held_room.notified()).await;
        }
    }

    /// Takes an account slot for a newly seen account: false when the host
    /// already has its limit (`limit` 0 = none).
    pub fn try_take_account(&self, limit: u64) -> bool {
        let mut s = lock(&self.state);
        if limit > 0 && s.account_count >= limit {
            return false;
        }
        s.account_count += 1;
        true
    }

    /// The account count.
    pub fn account_count(&self) -> u64 {
        lock(&self.state).account_count
    }

    /// Restarts the upstream cursor at `cursor` (0: live), forgetting what is
    /// in flight. Only while no crawler runs for the host.
    pub fn reset_cursor(&self, cursor: u64) {
        let mut p = lock(&self.progress);
        p.inflight.clear();
        p.watermark = cursor;
        self.last_seq_seen.store(cursor, Ordering::Relaxed);
        self.durable_cursor.store(cursor, Ordering::Relaxed);
        lock(&self.state).cursor = cursor;
    }

    /// Records that `cursor` was written to the log with the events it
    /// covers (the sequencer, after each batch).
    pub fn cursor_written(&self, cursor: u64) {
        self.durable_cursor.fetch_max(cursor, Ordering::Relaxed);
    }

    /// Registers an upstream seq about to be dispatched. Seqs must increase
    /// (the crawler drops non-increasing ones before calling this).
    pub fn begin(&self, upstream_seq: u64) {
        lock(&self.progress)
            .inflight
            .push_back((upstream_seq, false));
        self.last_seq_seen
            .fetch_max(upstream_seq, Ordering::Relaxed);
    }

    /// Marks an upstream seq finished and advances the watermark over the
    /// finished prefix; returns the watermark.
    pub fn finish(&self, upstream_seq: u64) -> u64 {
        let mut p = lock(&self.progress);
        if let Ok(i) = p.inflight.binary_search_by_key(&upstream_seq, |(s, _)| *s) {
            p.inflight[i].1 = true;
        }
        while let Some(&(seq, true)) = p.inflight.front() {
            p.watermark = seq;
            p.inflight.pop_front();
        }
        p.watermark
    }

    /// The highest upstream seq up to which everything is finished: where to
    /// resume after a restart.
    pub fn watermark(&self) -> u64 {
        lock(&self.progress).watermark
    }

    /// Events dispatched and not finished.
    pub fn in_flight(&self) -> usize {
        lock(&self.progress)
            .inflight
            .iter()
            .filter(|(_, done)| !done)
            .count()
    }

    /// The state to persist with a batch of its events, with the current
    /// watermark as cursor.
    pub fn snapshot(&self) -> HostState {
        let mut s = lock(&self.state).clone();
        s.cursor = self.watermark();
        s.last_seq_seen = self.last_seq_seen.load(Ordering::Relaxed);
        s
    }

    /// The state to persist outside a batch of events: the cursor is the
    /// last one written with its events, never ahead of the log.
    pub fn snapshot_durable(&self) -> HostState {
        let mut s = self.snapshot();
        s.cursor = s.cursor.min(self.durable_cursor.load(Ordering::Relaxed));
        s
    }

    /// Sets the host's status (`active`, `idle`, `offline`, ...). A
    /// `banned` host keeps that status until [`HostEntry::unban`]: a crawler
    /// stopping late cannot un-ban it.
    pub fn set_status(&self, status: HostStatus) {
        let mut s = lock(&self.state);
        if s.status != HostStatus::Banned {
            s.status = status;
        }
    }

    /// Marks the host banned (blocked by the operator).
    pub fn ban(&self) {
        lock(&self.state).status = HostStatus::Banned;
    }

    /// Lifts a ban: the host is `active` again.
    pub fn unban(&self) {
        lock(&self.state).status = HostStatus::Active;
    }

    /// The host's status.
    pub fn status(&self) -> HostStatus {
        lock(&self.state).status
    }

    /// Adjusts the account count (accounts created on or moved to/from here).
    pub fn add_accounts(&self, delta: i64) {
        let mut s = lock(&self.state);
        s.account_count = s.account_count.saturating_add_signed(delta);
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// counters; the data is still usable, so keep going rather than cascade.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a host's budget windows are saved (`meta`).
const BUDGET_KEY: &str = "control/budget/";

/// All known hosts.
#[derive(Clone)]
pub struct Hosts {
    map: Arc<DashMap<String, Arc<HostEntry>>>,
    log: EventLog,
    policy: Policy,
    clock: Clock,
    refresh: RefreshBudget,
}

impl Hosts {
    /// Loads the persisted hosts; their budgets follow `policy`'s limits.
    ///
    /// Stored names are read back through [`HostName::parse`]. A name that
    /// is not canonical (stored by an older version, which accepted other
    /// spellings of one host) is folded into its canonical entry: the
    /// entry with the furthest cursor is kept, the other record deleted.
    pub fn load(
        log: &EventLog,
        policy: Policy,
        clock: Clock,
        refresh: RefreshBudget,
    ) -> Result<Hosts, LogError> {
        let map: DashMap<String, Arc<HostEntry>> = DashMap::new();
        for (stored, state) in log.list_hosts()? {
            let name = match HostName::parse(&stored) {
                Ok(name) => name,
                Err(e) => {
                    tracing::warn!(host = %stored, error = %e, "ignoring a stored host whose name is not a host name");
                    continue;
                }
            };
            let alias = name.as_str() != stored;
            if alias {
                tracing::warn!(host = %stored, canonical = %name, "stored host is another spelling of a host; folding it into the canonical one");
                log.delete_host(&stored)?;
            }
            if map
                .get(name.as_str())
                .is_some_and(|kept| kept.snapshot().cursor >= state.cursor)
            {
                continue;
            }
            let budget = HostBudget::new(policy.limits(name.as_str()), clock.clone());
            if let Some(saved) = log.get_meta(&format!("{BUDGET_KEY}{name}"))? {
                match serde_json::from_slice(&saved) {
                    Ok(w) => budget.restore(w),
                    Err(e) => {
                        tracing::warn!(host = %name, error = %e, "ignoring unreadable saved budget")
                    }
                }
            }
            let entry = Arc::new(HostEntry::new(name.clone(), state, budget, refresh));
            if alias {
                log.put_host(name.as_str(), &entry.snapshot())?;
            }
            map.insert(name.as_str().to_owned(), entry);
        }
        Ok(Hosts {
            map: Arc::new(map),
            log: log.clone(),
            policy,
            clock,
            refresh,
        })
    }

    /// The crawl policy the hosts' limits come from.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The clock budgets read.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Re-reads `hostname`'s limits from the policy (after an override
    /// changed); returns them.
    pub fn refresh_limits(&self, hostname: &str) -> Limits {
        let limits = self.policy.limits(hostname);
        if let Some(h) = self.get(hostname) {
            h.budget.set_limits(limits);
        }
        limits
    }

    /// Saves a host's budget windows (when it is throttled, and at stop), so
    /// a restart does not reset a spent budget.
    pub fn persist_budget(&self, host: &HostEntry) -> Result<(), LogError> {
        let value = serde_json::to_vec(&host.budget.windows()).unwrap_or_default();
        self.log
            .put_meta(&format!("{BUDGET_KEY}{}", host.hostname), &value)
    }

    /// Writes a host's state now (administrative changes), rather than with
    /// its next events; its cursor is the last one written with events
    /// ([`HostEntry::snapshot_durable`]).
    pub fn persist(&self, host: &HostEntry) -> Result<(), LogError> {
        self.log.put_host(&host.hostname, &host.snapshot_durable())
    }

    /// The host, created (status `active`, first seen now) if new; the flag
    /// says whether it was created.
    pub fn get_or_create(&self, hostname: &HostName, now_micros: u64) -> (Arc<HostEntry>, bool) {
        let mut created = false;
        let entry = self
            .map
            .entry(hostname.as_str().to_owned())
            .or_insert_with(|| {
                created = true;
                let budget =
                    HostBudget::new(self.policy.limits(hostname.as_str()), self.clock.clone());
                Arc::new(HostEntry::new(
                    hostname.clone(),
                    HostState::new(now_micros),
                    budget,
                    self.refresh,
                ))
            })
            .clone();
        (entry, created)
    }

    /// A known host.
    pub fn get(&self, hostname: &str) -> Option<Arc<HostEntry>> {
        self.map.get(hostname).map(|e| e.clone())
    }

    /// Marks connected hosts `idle` after `idle_after` without events and
    /// `active` again once events flow, and publishes how many hosts are in
    /// each status (a bounded label set) and the budgets' aggregate use
    /// (remaining hourly/daily events, hosts past 80% of a budget). Run
    /// periodically.
    pub fn update_idle(&self, idle_after: std::time::Duration, now_micros: u64) {
        let mut counts: std::collections::BTreeMap<HostStatus, u64> =
            HostStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        let (mut hour_left, mut day_left, mut near_limit, mut near) = (0u64, 0u64, 0u64, false);
        for host in self.all() {
            let last = host.last_event_micros.load(Ordering::Relaxed);
            let quiet = now_micros.saturating_sub(last) > idle_after.as_micros() as u64;
            match host.status() {
                HostStatus::Active if quiet => host.set_status(HostStatus::Idle),
                HostStatus::Idle if !quiet => host.set_status(HostStatus::Active),
                _ => {}
            }
            *counts.entry(host.status()).or_default() += 1;
            let u = host.budget.usage();
            if u.limits.per_hour > 0 {
                hour_left += u.limits.per_hour.saturating_sub(u.hour_count);
                near |= u.hour_count * 5 >= u.limits.per_hour * 4;
            }
            if u.limits.per_day > 0 {
                day_left += u.limits.per_day.saturating_sub(u.day_count);
                near |= u.day_count * 5 >= u.limits.per_day * 4;
            }
            near_limit += u64::from(std::mem::take(&mut near));
        }
        for (status, n) in counts {
            metrics::gauge!(HOSTS, "status" => status.as_str()).set(n as f64);
        }
        // Aggregates only: a label per host would grow with the network.
        metrics::gauge!(BUDGET_HOUR_REMAINING).set(hour_left as f64);
        metrics::gauge!(BUDGET_DAY_REMAINING).set(day_left as f64);
        metrics::gauge!(BUDGET_HOSTS_NEAR_LIMIT).set(near_limit as f64);
    }

    /// Every host.
    pub fn all(&self) -> Vec<Arc<HostEntry>> {
        self.map.iter().map(|e| e.value().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cursor: u64) -> HostEntry {
        HostEntry::new(
            HostName::parse("h.example.com").unwrap(),
            HostState {
                status: HostStatus::Active,
                cursor,
                account_count: 0,
                first_seen_micros: 0,
                last_seq_seen: cursor,
            },
            HostBudget::new(Limits::default(), Clock::system()),
            RefreshBudget::default(),
        )
    }

    #[test]
    fn watermark_waits_for_the_finished_prefix() {
        let h = entry(10);
        for s in [11, 12, 15, 20] {
            h.begin(s);
        }
        assert_eq!(h.finish(15), 10, "11 and 12 are still in flight");
        assert_eq!(h.finish(11), 11);
        assert_eq!(h.finish(20), 11);
        assert_eq!(h.in_flight(), 1);
        assert_eq!(h.finish(12), 20, "12 completes the prefix up to 20");
        assert_eq!(h.snapshot().cursor, 20);
        assert_eq!(h.in_flight(), 0);
        // Finishing an unknown seq is harmless.
        assert_eq!(h.finish(99), 20);
    }

    #[test]
    fn other_spellings_stored_by_older_versions_fold_into_one_host() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), crate::log::LogOptions::default()).unwrap();
        let at = |cursor| HostState {
            cursor,
            last_seq_seen: cursor,
            ..HostState::new(0)
        };
        log.put_host("127.0.0.1:042181", &at(70)).unwrap();
        log.put_host("127.0.0.1:42181", &at(50)).unwrap();
        log.put_host("pds.example.com", &at(9)).unwrap();
        log.put_host("pds.example.com:443", &at(3)).unwrap();
        log.put_host("not a host", &at(1)).unwrap();
        let policy = Policy::load(&log, &crate::config::RelayConfig::default()).unwrap();
        let hosts = Hosts::load(&log, policy, Clock::system(), RefreshBudget::default()).unwrap();
        let mut names: Vec<String> = hosts.all().iter().map(|h| h.hostname.to_string()).collect();
        names.sort();
        assert_eq!(names, ["127.0.0.1:42181", "pds.example.com"]);
        // The furthest cursor wins, and the store now says so.
        assert_eq!(hosts.get("127.0.0.1:42181").unwrap().watermark(), 70);
        assert_eq!(hosts.get("pds.example.com").unwrap().watermark(), 9);
        let stored: Vec<(String, u64)> = log
            .list_hosts()
            .unwrap()
            .into_iter()
            .map(|(h, s)| (h, s.cursor))
            .collect();
        assert_eq!(
            stored,
            [
                ("127.0.0.1:42181".to_owned(), 70),
                ("not a host".to_owned(), 1),
                ("pds.example.com".to_owned(), 9)
            ]
        );
    }

    #[test]
    fn administrative_writes_never_store_a_cursor_ahead_of_the_log() {
        let h = entry(10);
        for s in [11, 12, 13] {
            h.begin(s);
        }
        // The sequencer finishes a batch's events before writing it, so
        // that the batch carries its own cursor.
        h.finish(11);
        h.finish(12);
        assert_eq!(h.snapshot().cursor, 12, "the batch's cursor");
        assert_eq!(h.snapshot_durable().cursor, 10, "not written yet");
        h.cursor_written(12);
        assert_eq!(h.snapshot_durable().cursor, 12);
        // An operator's reset is durable as it is set.
        h.reset_cursor(5);
        assert_eq!(h.snapshot_durable().cursor, 5);
    }
}
