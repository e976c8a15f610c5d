//! Verifier threads, sharded by DID.
//!
//! Verification is CPU-bound, so it runs on dedicated OS threads, not on the
//! async runtime. Events are routed by a hash of the DID, so one DID's events
//! always meet the same [`Verifier`] and are decided in upstream order. When a
//! decision needs a fresh identity ([`Decision::Refresh`]), the DID is put on
//! hold: its later events queue behind it while an async task re-resolves, and
//! the retried event is decided before them.
//!
//! Events travel in batches: a crawler sends each thread the events it has read
//! and not yet dispatched (up to [`MAX_DISPATCH`]), and a thread sends the
//! sequencer what it accepted from everything it found queued, in one message.
//! A wake-up of another thread costs a few microseconds of CPU (a futex call and
//! a context switch, with caches refilled afterwards), as much as all of the
//! relay's other per-event work; batching pays it once per batch.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use tokio::sync::mpsc;

use super::decision::Decision;
use super::hosts::{HostEntry, Hosts};
use super::inbound::Inbound;
use super::metrics::{
    ACCOUNT_CACHE_ENTRIES, EVENTS_DROPPED, EVENTS_IGNORED, IDENTITY_REFRESH_LIMITED, SCOPE_DID,
    VERIFY_SECONDS,
};
use super::refresh_limit::DidRefreshes;
use super::sequencer::{ToSequence, ToSequenceBatch};
use super::verifier::{AccountLookup, AccountSlots, LocalStatusError, Verifier};
use crate::clock::now_micros;
use crate::identity::Resolver;
use crate::log::{AccountState, EventLog, LogError};
use crate::wire::frame::AccountStatus;

/// Most events in one message to a verifier thread.
pub const MAX_DISPATCH: usize = 64;

/// Events queued for one verifier thread, at most: its channel holds this
/// many events' worth of full batches (the bound the crawlers wait on).
pub const QUEUED_EVENTS: usize = 4096;

/// A message to a verifier thread.
#[derive(Debug)]
pub enum ShardMsg {
    /// New events from a crawler, in upstream order (at most
    /// [`MAX_DISPATCH`]).
    Events(Vec<Inbound>),
    /// An event coming back with a refreshed identity.
    Retry(Inbound),
    /// Drop the cached state of a DID (an administrative change).
    Forget(String),
    /// Set or clear the operator's status of a DID (takedown, reversal) and
    /// emit the `#account` event; the reply says whether it was queued.
    SetLocalStatus {
        did: String,
        status: Option<AccountStatus>,
        reply: tokio::sync::oneshot::Sender<Result<(), LocalStatusError>>,
    },
}

/// Sending side of the pool.
#[derive(Clone)]
pub struct Pool {
    shards: Arc<Vec<mpsc::Sender<ShardMsg>>>,
}

/// How a [`Pool`] is set up.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Verifier threads (at least one).
    pub threads: usize,
    /// Accept legacy commits without inversion.
    pub lenient: bool,
    /// Accounts cached in memory, over all threads.
    pub account_cache_capacity: usize,
    /// Forced re-resolutions of one DID: `refresh_burst` at once, then one
    /// per `refresh_interval`. A refresh asked beyond that is refused and
    /// the event decided on the identity at hand: forged events cannot turn
    /// into one directory lookup each.
    pub refresh_interval: Duration,
    /// See `refresh_interval`.
    pub refresh_burst: u32,
}

impl Pool {
    /// Starts the verifier threads.
    pub fn start(
        cfg: &PoolConfig,
        log: EventLog,
        resolver: Resolver,
        hosts: Hosts,
        sequencer: Sender<ToSequenceBatch>,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Pool> {
        let threads = cfg.threads.max(1);
        let per_thread = cfg.account_cache_capacity.div_ceil(threads);
        let mut shards = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::channel::<ShardMsg>(QUEUED_EVENTS / MAX_DISPATCH);
            let shard = Shard {
                verifier: Verifier::new(LogLookup(log.clone()), cfg.lenient)
                    .with_cache_capacity(per_thread)
                    .with_slots(Box::new(HostSlots(hosts.clone()))),
                verify_seconds: metrics::histogram!(VERIFY_SECONDS),
                cached_accounts: metrics::gauge!(ACCOUNT_CACHE_ENTRIES),
                cached_reported: 0,
                held: HashMap::new(),
                did_refreshes: DidRefreshes::new(cfg.refresh_interval, cfg.refresh_burst),
                self_tx: tx.downgrade(),
                resolver: resolver.clone(),
                hosts: hosts.clone(),
                sequencer: sequencer.clone(),
                runtime: runtime.clone(),
                accepted: Vec::new(),
                last_host: None,
            };
            std::thread::Builder::new()
                .name(format!("atrelay-verify-{i}"))
                .spawn(move || shard.run(rx))?;
            shards.push(tx);
        }
        Ok(Pool {
            shards: Arc::new(shards),
        })
    }

    /// Routes an event to its DID's shard, waiting if that shard is full
    /// (backpressure reaches the crawler, and so the upstream socket).
    pub async fn dispatch(&self, did: &str, ev: Inbound) -> bool {
        self.dispatch_batch(self.shard_of(did), vec![ev]).await
    }

    /// Sends `events` (at most [`MAX_DISPATCH`], all of DIDs that
    /// [`Pool::shard_of`] maps to `shard`, in upstream order) to that shard,
    /// waiting while it is full. False once the pool has stopped.
    pub async fn dispatch_batch(&self, shard: usize, events: Vec<Inbound>) -> bool {
        debug_assert!(events.len() <= MAX_DISPATCH);
        if events.is_empty() {
            return true;
        }
        self.shards[shard]
            .send(ShardMsg::Events(events))
            .await
            .is_ok()
    }

    /// Room for one message to `shard`, waiting while it is full; `None`
    /// once the pool has stopped. Reserving before sending lets a caller
    /// finish its bookkeeping and send without waiting in between.
    pub async fn reserve(&self, shard: usize) -> Option<mpsc::Permit<'_, ShardMsg>> {
        self.shards[shard].reserve().await.ok()
    }

    /// The number of verifier threads.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Sets (`Some`) or clears the operator's status of `did` through its
    /// shard, so the change is ordered with the DID's events, and emits the
    /// `#account` event with the combined status.
    pub async fn set_local_status(
        &self,
        did: &str,
        status: Option<AccountStatus>,
    ) -> Result<(), LocalStatusError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.shards[self.shard_of(did)]
            .send(ShardMsg::SetLocalStatus {
                did: did.to_owned(),
                status,
                reply,
            })
            .await
            .map_err(|_| LocalStatusError::Stopping)?;
        answer.await.map_err(|_| LocalStatusError::Stopping)?
    }

    /// Asks the DID's shard to reload its state from the log.
    pub async fn forget(&self, did: &str) {
        let _ = self.shards[self.shard_of(did)]
            .send(ShardMsg::Forget(did.to_owned()))
            .await;
    }

    /// The verifier thread that decides `did`'s events.
    pub fn shard_of(&self, did: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        did.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }
}

/// The account limit, counted on the hosts' entries.
struct HostSlots(Hosts);

impl AccountSlots for HostSlots {
    fn has_room(&self, host: &str) -> bool {
        self.0.get(host).map_or(true, |h| {
            let limit = h.budget.limits().accounts;
            limit == 0 || h.account_count() < limit
        })
    }

    fn try_take(&self, host: &str) -> bool {
        self.0
            .get(host)
            .map_or(true, |h| h.try_take_account(h.budget.limits().accounts))
    }

    fn adjust(&self, host: &str, delta: i64) {
        if let Some(h) = self.0.get(host) {
            h.add_accounts(delta);
        }
    }
}

/// Account state persisted by the sequencer.
struct LogLookup(EventLog);

impl AccountLookup for LogLookup {
    fn load(&self, did: &str) -> Result<Option<AccountState>, LogError> {
        self.0.get_account(did)
    }
}

struct Shard {
    verifier: Verifier<LogLookup>,
    /// [`VERIFY_SECONDS`], resolved once.
    verify_seconds: metrics::Histogram,
    /// [`ACCOUNT_CACHE_ENTRIES`], summed over the threads:
    /// each adds the change since it last reported.
    cached_accounts: metrics::Gauge,
    cached_reported: usize,
    /// DIDs waiting for a refreshed identity, with the events queued behind.
    held: HashMap<String, VecDeque<Inbound>>,
    /// How often each of this thread's DIDs may still be re-fetched.
    did_refreshes: DidRefreshes,
    /// Weak, so the shard's own handle does not keep its channel open: when
    /// the pool is dropped the thread sees the end and exits.
    self_tx: mpsc::WeakSender<ShardMsg>,
    resolver: Resolver,
    hosts: Hosts,
    sequencer: Sender<ToSequenceBatch>,
    runtime: tokio::runtime::Handle,
    /// Accepted events not yet sent to the sequencer.
    accepted: Vec<ToSequence>,
    /// The host of the last event: a batch comes from one crawler, so one
    /// lookup serves it.
    last_host: Option<Arc<HostEntry>>,
}

impl Shard {
    fn run(mut self, mut rx: mpsc::Receiver<ShardMsg>) {
        while let Some(msg) = rx.blocking_recv() {
            self.on_message(msg);
            // Whatever else is queued already joins the same sequencer batch.
            while self.accepted.len() < MAX_DISPATCH {
                match rx.try_recv() {
                    Ok(msg) => self.on_message(msg),
                    Err(_) => break,
                }
            }
            if !self.send_accepted() {
                tracing::error!("sequencer stopped; dropping accepted events");
            }
            self.report_cache();
        }
    }

    fn on_message(&mut self, msg: ShardMsg) {
        match msg {
            ShardMsg::Events(events) => {
                for ev in events {
                    // Nearly always nothing is held: skip the DID lookup then.
                    let held = if self.held.is_empty() {
                        None
                    } else {
                        did_of(&ev).filter(|d| self.held.contains_key(d))
                    };
                    match held {
                        Some(did) => self.queue_behind(&did, ev),
                        None => self.handle(ev),
                    }
                }
            }
            ShardMsg::Retry(ev) => {
                self.count_held(&ev, -1);
                let did = did_of(&ev);
                let queued = did
                    .as_ref()
                    .and_then(|d| self.held.remove(d))
                    .unwrap_or_default();
                // A refreshed event is never refreshed again, so this
                // decides it for good.
                self.handle(ev);
                for next in queued {
                    self.count_held(&next, -1);
                    // An earlier queued event may have put the DID on hold
                    // again: the rest wait behind it, in order.
                    match did.as_ref().filter(|d| self.held.contains_key(*d)) {
                        Some(d) => self.queue_behind(&d.clone(), next),
                        None => self.handle(next),
                    }
                }
            }
            ShardMsg::Forget(did) => {
                self.verifier.forget(&did);
            }
            ShardMsg::SetLocalStatus { did, status, reply } => {
                let result = self
                    .verifier
                    .set_local_status(&did, status, now_micros())
                    .and_then(|accepted| {
                        self.accepted.push(ToSequence {
                            accepted,
                            host: None,
                            moved_from: None,
                            upstream_seq: 0,
                            received_micros: now_micros(),
                        });
                        // Queued (with anything accepted before it) before
                        // the caller hears back.
                        self.send_accepted()
                            .then_some(())
                            .ok_or(LocalStatusError::SequencerStopped)
                    });
                let _ = reply.send(result);
            }
        }
    }

    /// Sends the accepted events to the sequencer in one message, with the
    /// mark that lets the cache evict their accounts once they are written.
    /// False if the sequencer has stopped.
    fn send_accepted(&mut self) -> bool {
        if self.accepted.is_empty() {
            return true;
        }
        let batch = ToSequenceBatch {
            events: std::mem::take(&mut self.accepted),
            written: Some(self.verifier.written()),
        };
        self.sequencer.send(batch).is_ok()
    }

    fn report_cache(&mut self) {
        let now = self.verifier.cached_accounts();
        if now != self.cached_reported {
            self.cached_accounts
                .increment(now as f64 - self.cached_reported as f64);
            self.cached_reported = now;
        }
    }

    /// The entry of `hostname`, looked up once per run of events from it.
    fn host(&mut self, hostname: &Arc<str>) -> Option<Arc<HostEntry>> {
        if let Some(h) = &self.last_host {
            if Arc::ptr_eq(&h.hostname, hostname) || *h.hostname == **hostname {
                return Some(h.clone());
            }
        }
        let h = self.hosts.get(hostname);
        self.last_host.clone_from(&h);
        h
    }

    fn handle(&mut self, ev: Inbound) {
        let host = self.host(&ev.host);
        let started = std::time::Instant::now();
        let decision = self.verifier.decide(&ev, now_micros());
        self.verify_seconds.record(started.elapsed().as_secs_f64());
        match decision {
            Decision::Accept(accepted) => {
                let Some(host) = host else { return };
                let moved_from = accepted
                    .moved_from
                    .as_deref()
                    .and_then(|h| self.hosts.get(h));
                self.accepted.push(ToSequence {
                    accepted,
                    host: Some(host),
                    moved_from,
                    upstream_seq: ev.upstream_seq,
                    received_micros: ev.received_micros,
                });
            }
            Decision::Drop(reason) => {
                metrics::counter!(EVENTS_DROPPED, "reason" => reason.as_str()).increment(1);
                tracing::debug!(host = %ev.host, seq = ev.upstream_seq, reason = reason.as_str(), "dropped event");
                if let Some(h) = host {
                    h.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    h.finish(ev.upstream_seq);
                }
            }
            Decision::Ignore(reason) => {
                metrics::counter!(EVENTS_IGNORED, "reason" => reason.as_str()).increment(1);
                if let Some(h) = host {
                    h.finish(ev.upstream_seq);
                }
            }
            Decision::Refresh => self.refresh(ev),
        }
    }

    /// Queues `ev` behind its DID's held events.
    fn queue_behind(&mut self, did: &str, ev: Inbound) {
        self.count_held(&ev, 1);
        if let Some(queue) = self.held.get_mut(did) {
            queue.push_back(ev);
        }
    }

    /// Counts an event on hold (or no longer) against its host's cap.
    fn count_held(&mut self, ev: &Inbound, n: isize) {
        if let Some(host) = self.host(&ev.host) {
            host.add_held(n);
        }
    }

    /// Puts the DID on hold and re-resolves it off-thread, when its host's
    /// refresh budget allows; the event comes back as a [`ShardMsg::Retry`].
    /// A DID past its own allowance (`refresh_burst`, then one per
    /// `refresh_interval`) is not refreshed: the event is decided on the
    /// identity at hand.
    fn refresh(&mut self, mut ev: Inbound) {
        let Some(did) = did_of(&ev) else { return };
        if !self.did_refreshes.allow(&did, Instant::now()) {
            metrics::counter!(IDENTITY_REFRESH_LIMITED, "scope" => SCOPE_DID).increment(1);
            // The cache holds what the last refresh fetched, which may be
            // newer than what the crawler attached: a key rotated with an
            // `#identity` just before.
            if let Some(current) = self.resolver.cached(&did) {
                ev.identity = Some(current);
            }
            ev.refreshed = true;
            self.handle(ev);
            return;
        }
        let Some(tx) = self.self_tx.upgrade() else {
            return; // the relay is stopping
        };
        self.held.entry(did.clone()).or_default();
        self.count_held(&ev, 1);
        let resolver = self.resolver.clone();
        let host = self.host(&ev.host);
        self.runtime.spawn(async move {
            if let Some(host) = host {
                host.refresh_turn().await;
            }
            ev.identity = resolver.resolve_patiently(&did, true).await;
            ev.refreshed = true;
            let _ = tx.send(ShardMsg::Retry(ev)).await;
        });
    }
}

/// The DID an event is about, read without decoding the whole frame.
fn did_of(ev: &Inbound) -> Option<String> {
    let (header, body) = crate::wire::frame::decode_header(&ev.frame).ok()?;
    crate::wire::frame::peek_did(header.kind(), body)
        .ok()
        .flatten()
        .map(str::to_owned)
}
