//! The relay's per-event decision: digest §2.2–§2.6 with stored state.
//!
//! One `Verifier` runs per verifier thread and owns the account state of the
//! DIDs sharded to it, so one DID's events are decided strictly in order and no
//! lock guards the state. It calls the stateless checks in
//! [`crate::repo::verify`] and adds what needs state:
//!
//! - always: host matching (an account's events come only from the host its DID
//!   document names; an unknown account is created only there, and moves when
//!   its document moves), the active-account rule, rev strictly above the
//!   stored rev (older or equal revs are dropped silently as duplicates),
//!   `#sync` ignored unless newer, `#account` only from the current host;
//! - `#identity`: stricter than the reference relay, which forwards it from
//!   any host and only strips a handle it cannot confirm. Here it must come
//!   from the host the DID document names, decided on a document fetched
//!   after the event (one forced refresh, which also catches a migration the
//!   cache has not seen); from any other host it is dropped (`wrong_host`),
//!   and a forwarded one carries its `handle` only when the document
//!   claims that same handle;
//! - chain continuity: a verified commit whose `since`/`prevData` does not
//!   continue the stored state is forwarded (Sync v1.1) and flagged as a chain
//!   break for its host's counters; a commit without `prevData` for an account
//!   with history is dropped, unless lenient;
//! - one forced identity refresh: a signature failure or host mismatch against
//!   a cached document asks the caller to re-resolve once and retry
//!   ([`Decision::Refresh`]) before the event is dropped;
//! - the account limit ([`AccountSlots`]): an account first seen on a host
//!   that has its limit is not created and its events are dropped
//!   (`account_throttled`) until a slot frees (an account deleted or moved
//!   away) or the operator raises the limit; then its next event creates it;
//! - operator statuses: a taken-down account's events are dropped
//!   (`taken_down`), and [`Verifier::set_local_status`] produces the
//!   `#account` event announcing a takedown or its reversal.
//!
//! Not here: resolving identities (the crawler does it before dispatch, holding
//! the host's stream on transient failures), sequencing and persistence (the
//! sequencer writes the returned state together with the event).
//!
//! Account state is held in a bounded [`AccountCache`]: a miss reads the log
//! through [`AccountLookup`], and an update stays cached until the sequencer
//! has written it ([`Verifier::written`]), so evicting never loses a write.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::account_cache::{AccountCache, Written};
use super::metrics::{ACCOUNTS_THROTTLED, IDENTITY_HANDLES_STRIPPED};
use super::outbound::PendingFrame;
pub use super::reason::{DropReason, IgnoreReason};
use crate::identity::Identity;
use crate::log::{AccountState, LogError};
use crate::repo::commit::CommitError;
use crate::repo::verify::{verify_commit, verify_sync, VerifyError, VerifyOptions};
use crate::wire::frame::{Account, AccountStatus, Event, EventKind};
use crate::wire::syntax::format_datetime_micros;

/// An event as received from an upstream, with the identity the crawler
/// resolved for it.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// The upstream connection's host (`hostname[:port]`, lower-case).
    pub host: Arc<str>,
    /// The upstream's seq for this event.
    pub upstream_seq: u64,
    /// The frame exactly as received.
    pub frame: Bytes,
    pub received_micros: u64,
    /// The DID's current identity, when the event needs one.
    pub identity: Option<Arc<Identity>>,
    /// The identity was already force-refreshed for this event (or a
    /// refresh was refused by the rate limits): decide on what is at hand.
    pub refreshed: bool,
}

/// What to do with an event.
#[derive(Debug)]
pub enum Decision {
    /// Forward it and persist the new state.
    Accept(Box<Accepted>),
    /// Invalid: drop and count by reason.
    Drop(DropReason),
    /// Not for downstream (duplicate, stale `#sync`, `#info`, unknown type):
    /// consumed silently.
    Ignore(IgnoreReason),
    /// Re-resolve the DID once (bypassing the cache) and decide again.
    Refresh,
}

/// An accepted event, ready for the sequencer.
#[derive(Debug)]
pub struct Accepted {
    pub did: String,
    /// The event type (counted by its [`EventKind::label`]).
    pub kind: EventKind,
    pub frame: PendingFrame,
    /// New account state to persist with the event (`None`: unchanged).
    pub account: Option<AccountState>,
    /// A verified commit that does not continue the stored chain.
    pub chain_break: bool,
    /// The account was first seen with this event.
    pub created: bool,
    /// The account moved here from this host.
    pub moved_from: Option<String>,
}

/// Which [`DropReason`] a failed commit or sync check is.
impl DropReason {
    fn of(err: &VerifyError) -> DropReason {
        use VerifyError as E;
        match err {
            E::BlocksTooLarge(_) | E::TooManyOps(_) | E::RecordTooLarge { .. } => {
                DropReason::Oversize
            }
            E::EmptyBlocks
            | E::Car(_)
            | E::NoRoot
            | E::RootMismatch { .. }
            | E::CommitMissing(_) => DropReason::BadCar,
            E::Commit(CommitError::Signature(_)) => DropReason::BadSignature,
            E::Commit(_) | E::BadRev(_) => DropReason::BadCommit,
            E::DidMismatch { .. } | E::RevMismatch { .. } => DropReason::FieldMismatch,
            E::FutureRev(_) => DropReason::FutureRev,
            E::Rebase | E::TooBig => DropReason::Deprecated,
            E::NotInvertible => DropReason::OpShape,
            E::RecordMissing { .. } => DropReason::RecordMissing,
            E::Invert(crate::repo::invert::InvertError::OpShape { .. })
            | E::Invert(crate::repo::invert::InvertError::DuplicatePath(_)) => DropReason::OpShape,
            E::Invert(_) => DropReason::Inversion,
            E::PrevDataMismatch { .. } => DropReason::PrevDataMismatch,
        }
    }
}

/// Why the operator's status of an account was not set.
#[derive(Debug, thiserror::Error)]
pub enum LocalStatusError {
    /// The account's stored state could not be read.
    #[error(transparent)]
    Load(#[from] LogError),
    /// The `#account` event announcing it was not accepted (a bug).
    #[error("could not encode #account: {0}")]
    Encode(String),
    /// The relay is shutting down; nothing was changed.
    #[error("the relay is stopping")]
    Stopping,
    /// The sequencer is gone, so the event cannot be written.
    #[error("the sequencer stopped")]
    SequencerStopped,
}

/// Where account state comes from when it is not in the verifier's memory.
pub trait AccountLookup {
    /// The persisted state of `did`.
    fn load(&self, did: &str) -> Result<Option<AccountState>, LogError>;
}

/// The account limit: how many accounts each host may have.
///
/// Counted here, when an account is created, moves or is deleted, because
/// the verifier threads are where those decisions are made; the sequencer
/// only persists the counts with the events.
pub trait AccountSlots: Send {
    /// Whether `host` could take one more account now.
    fn has_room(&self, host: &str) -> bool;
    /// Takes a slot on `host` for a new account; false at the limit.
    fn try_take(&self, host: &str) -> bool;
    /// Changes `host`'s count (an account moved, was deleted or came back).
    fn adjust(&self, host: &str, delta: i64);
}

/// No account limit (tests, tools).
pub struct Unlimited;

impl AccountSlots for Unlimited {
    fn has_room(&self, _: &str) -> bool {
        true
    }
    fn try_take(&self, _: &str) -> bool {
        true
    }
    fn adjust(&self, _: &str, _: i64) {}
}

/// Accounts one [`Verifier`] caches by default (a relay sets its share of
/// `verify.account_cache_capacity` with [`Verifier::with_cache_capacity`]).
pub const DEFAULT_CACHE_CAPACITY: usize = 65_536;

/// One verifier thread's state and policy.
pub struct Verifier<L> {
    accounts: AccountCache,
    lookup: L,
    lenient: bool,
    slots: Box<dyn AccountSlots>,
    /// DIDs refused a slot, for the throttled-accounts gauge.
    throttled: HashSet<String>,
}

impl<L: AccountLookup> Verifier<L> {
    /// A verifier reading persisted state through `lookup`, without an
    /// account limit.
    pub fn new(lookup: L, lenient: bool) -> Verifier<L> {
        Verifier {
            accounts: AccountCache::new(DEFAULT_CACHE_CAPACITY),
            lookup,
            lenient,
            slots: Box::new(Unlimited),
            throttled: HashSet::new(),
        }
    }

    /// Caches at most `capacity` accounts (plus those whose updates are not
    /// yet written).
    pub fn with_cache_capacity(mut self, capacity: usize) -> Verifier<L> {
        self.accounts = AccountCache::new(capacity);
        self
    }

    /// Enforces an account limit through `slots`.
    pub fn with_slots(mut self, slots: Box<dyn AccountSlots>) -> Verifier<L> {
        self.slots = slots;
        self
    }

    /// Accounts currently refused a slot (this verifier's share).
    pub fn throttled_accounts(&self) -> usize {
        self.throttled.len()
    }

    /// Remembers `did` as refused a slot on `host`.
    fn refuse_slot(&mut self, did: &str) -> Decision {
        if self.throttled.insert(did.to_owned()) {
            metrics::gauge!(ACCOUNTS_THROTTLED).increment(1.0);
        }
        Decision::Drop(DropReason::AccountThrottled)
    }

    /// Takes a slot for a new account on `host`; refuses the event otherwise.
    fn take_slot(&mut self, did: &str, host: &str) -> Result<(), Decision> {
        if !self.slots.try_take(host) {
            return Err(self.refuse_slot(did));
        }
        if self.throttled.remove(did) {
            metrics::gauge!(ACCOUNTS_THROTTLED).decrement(1.0);
        }
        Ok(())
    }

    /// Sets (`Some`) or clears the operator's status of `did` (a takedown and
    /// its reversal) and returns the `#account` event announcing the combined
    /// status, with the state to persist. An unknown DID gets a state (with no
    /// host yet), so a takedown can precede the account's first event.
    pub fn set_local_status(
        &mut self,
        did: &str,
        status: Option<AccountStatus>,
        now_micros: u64,
    ) -> Result<Box<Accepted>, LocalStatusError> {
        let mut state = self.state(did)?.unwrap_or_else(|| new_account(""));
        state.local_status = status.map(|s| s.as_str().to_owned());
        self.accounts.update(did, &state, None);
        let time = format_datetime_micros(now_micros);
        let combined = state.status().map(str::to_owned);
        let event = Event::Account(Account {
            seq: 0,
            did,
            time: &time,
            active: combined.is_none(),
            status: combined.as_deref(),
        });
        match accept(&event, Some(state), None) {
            Decision::Accept(a) => Ok(a),
            other => Err(LocalStatusError::Encode(format!("{other:?}"))),
        }
    }

    /// Decides one event at time `now_micros`. On [`Decision::Accept`] the
    /// verifier's own view of the account is already updated.
    pub fn decide(&mut self, ev: &Inbound, now_micros: u64) -> Decision {
        let event = match Event::decode(&ev.frame) {
            Ok(e) => e,
            Err(_) => return Decision::Drop(DropReason::Malformed),
        };
        match event {
            Event::Commit(_) | Event::Sync(_) | Event::Account(_) => {
                self.decide_repo_event(ev, event, now_micros)
            }
            Event::Identity(identity) => Self::decide_identity(ev, identity),
            Event::Info(_) | Event::Error(_) | Event::Unknown { .. } => {
                Decision::Ignore(IgnoreReason::NotForwarded)
            }
        }
    }

    fn decide_repo_event(&mut self, ev: &Inbound, event: Event, now_micros: u64) -> Decision {
        let Some(did) = event.did() else {
            return Decision::Drop(DropReason::Malformed);
        };
        let stored = match self.state(did) {
            Ok(s) => s,
            Err(_) => return Decision::Drop(DropReason::Storage),
        };
        let Some(identity) = ev.identity.as_deref() else {
            return Decision::Drop(DropReason::NoIdentity);
        };

        // Host matching (§2.6): the stored host, else the DID document's PDS.
        let on_stored_host = stored.as_ref().is_some_and(|s| *s.host == *ev.host);
        if !on_stored_host && identity.pds_host.as_deref() != Some(&*ev.host) {
            return if ev.refreshed {
                Decision::Drop(DropReason::WrongHost)
            } else {
                Decision::Refresh
            };
        }
        let moved_from = stored
            .as_ref()
            .filter(|_| !on_stored_host)
            .map(|s| s.host.clone());

        if let Event::Account(a) = &event {
            return self.decide_account(ev, a, stored, moved_from);
        }
        match &stored {
            Some(s) if s.local_status.is_some() => return Decision::Drop(DropReason::TakenDown),
            Some(s) if !s.is_active() => return Decision::Drop(DropReason::Inactive),
            // Refused before the costly checks; the slot is taken on accept.
            None if !self.slots.has_room(&ev.host) => return self.refuse_slot(did),
            _ => {}
        }
        let stored_rev = stored.as_ref().and_then(|s| s.rev.clone());
        let rev = match &event {
            Event::Commit(c) => c.rev,
            Event::Sync(s) => s.rev,
            _ => return Decision::Drop(DropReason::Malformed),
        };
        if let Some(prev) = &stored_rev {
            if rev <= prev.as_str() {
                return Decision::Ignore(match event {
                    Event::Sync(_) => IgnoreReason::StaleSync,
                    _ => IgnoreReason::Duplicate,
                });
            }
        }
        let Some(key) = identity.signing_key.as_ref() else {
            return Decision::Drop(DropReason::NoSigningKey);
        };
        let opts = VerifyOptions {
            lenient: self.lenient,
            now_micros,
        };
        let verified = match &event {
            Event::Commit(c) => verify_commit(c, key, &opts),
            Event::Sync(s) => verify_sync(s, key, &opts),
            _ => return Decision::Drop(DropReason::Malformed),
        };
        let verified = match verified {
            Ok(v) => v,
            Err(VerifyError::Commit(CommitError::Signature(_))) if !ev.refreshed => {
                return Decision::Refresh
            }
            Err(e) => return Decision::Drop(DropReason::of(&e)),
        };

        let mut chain_break = false;
        if let (Event::Commit(c), Some(s)) = (&event, &stored) {
            if s.rev.is_some() {
                match c.prev_data {
                    Some(prev_data) => {
                        chain_break = s.data != Some(prev_data) || c.since != s.rev.as_deref();
                    }
                    None if self.lenient => chain_break = c.since != s.rev.as_deref(),
                    None => return Decision::Drop(DropReason::MissingPrevData),
                }
            }
        }

        let created = stored.is_none();
        if created {
            if let Err(refused) = self.take_slot(did, &ev.host) {
                return refused;
            }
        }
        if let Some(old) = &moved_from {
            self.slots.adjust(old, -1);
            self.slots.adjust(&ev.host, 1);
        }
        let mut state = stored.clone().unwrap_or_else(|| new_account(&ev.host));
        state.host = ev.host.to_string();
        state.rev = Some(rev.to_owned());
        state.commit = Some(verified.commit);
        state.data = Some(verified.data);
        self.accounts.update(did, &state, Some(&ev.host));
        match accept(&event, Some(state), moved_from) {
            Decision::Accept(mut a) => {
                a.chain_break = chain_break;
                a.created = created;
                Decision::Accept(a)
            }
            other => other,
        }
    }

    /// `#identity`: the document may have changed, so it is decided on a
    /// fresh one (a refresh first, which also purges the cached document),
    /// and only from the host that document names.
    fn decide_identity(ev: &Inbound, event: crate::wire::frame::Identity) -> Decision {
        if !ev.refreshed {
            return Decision::Refresh;
        }
        let Some(identity) = ev.identity.as_deref() else {
            return Decision::Drop(DropReason::NoIdentity);
        };
        if identity.pds_host.as_deref() != Some(&*ev.host) {
            return Decision::Drop(DropReason::WrongHost);
        }
        let confirmed = event.handle.filter(|h| {
            identity
                .handle
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(h))
        });
        if confirmed.is_none() && event.handle.is_some() {
            metrics::counter!(IDENTITY_HANDLES_STRIPPED).increment(1);
        }
        accept(
            &Event::Identity(crate::wire::frame::Identity {
                handle: confirmed,
                ..event
            }),
            None,
            None,
        )
    }

    /// `#account`: records the upstream status and forwards the relay's
    /// combined view (a local takedown overrides the upstream).
    fn decide_account(
        &mut self,
        ev: &Inbound,
        a: &Account,
        stored: Option<AccountState>,
        moved_from: Option<String>,
    ) -> Decision {
        let created = stored.is_none();
        let upstream_status = if a.active {
            None
        } else {
            Some(a.status.unwrap_or("inactive").to_owned())
        };
        // Deleted accounts hold no slot; any other status keeps its slot.
        let deleted = |s: &Option<String>| {
            s.as_deref().and_then(AccountStatus::parse) == Some(AccountStatus::Deleted)
        };
        let was_deleted = stored.as_ref().is_some_and(|s| deleted(&s.upstream_status));
        let counted_before = stored.is_some() && !was_deleted;
        let counted_after = !deleted(&upstream_status);
        match (&moved_from, counted_before, counted_after) {
            (None, false, true) => {
                if let Err(refused) = self.take_slot(a.did, &ev.host) {
                    return refused;
                }
            }
            (None, true, false) => self.slots.adjust(&ev.host, -1),
            (Some(old), before, after) => {
                if before {
                    self.slots.adjust(old, -1);
                }
                if after {
                    self.slots.adjust(&ev.host, 1);
                }
            }
            _ => {}
        }
        let mut state = stored.unwrap_or_else(|| new_account(&ev.host));
        state.host = ev.host.to_string();
        state.upstream_status = upstream_status;
        let local = state.local_status.clone();
        let mut out = a.clone();
        if let Some(local) = &local {
            out.active = false;
            out.status = Some(local.as_str());
        }
        self.accounts.update(a.did, &state, Some(&ev.host));
        match accept(&Event::Account(out), Some(state), moved_from) {
            Decision::Accept(mut acc) => {
                acc.created = created;
                Decision::Accept(acc)
            }
            other => other,
        }
    }

    /// The state of `did`: from memory, else from the lookup (remembered,
    /// including absence).
    fn state(&mut self, did: &str) -> Result<Option<AccountState>, LogError> {
        if let Some(s) = self.accounts.get(did) {
            return Ok(s);
        }
        let s = self.lookup.load(did)?;
        self.accounts.insert_loaded(did, s.as_ref());
        Ok(s)
    }

    /// Forgets cached state (after an administrative change persisted
    /// elsewhere), unless an update of it is not yet written: reloading it
    /// then would read older state. Returns whether it was forgotten.
    pub fn forget(&mut self, did: &str) -> bool {
        self.accounts.forget(did)
    }

    /// Accounts held in memory.
    pub fn cached_accounts(&self) -> usize {
        self.accounts.len()
    }

    /// Accounts evicted from memory so far.
    pub fn cache_evictions(&self) -> u64 {
        self.accounts.evictions()
    }

    /// To send to the sequencer with the events accepted so far: once it has
    /// written them, it marks every account update they carry as written,
    /// which lets the cache evict those accounts.
    pub fn written(&self) -> Written {
        self.accounts.written()
    }
}

fn new_account(host: &str) -> AccountState {
    AccountState {
        host: host.to_owned(),
        upstream_status: None,
        local_status: None,
        rev: None,
        commit: None,
        data: None,
    }
}

fn accept(event: &Event, account: Option<AccountState>, moved_from: Option<String>) -> Decision {
    let Some(did) = event.did() else {
        return Decision::Drop(DropReason::Malformed);
    };
    match PendingFrame::new(event) {
        Some(frame) => Decision::Accept(Box::new(Accepted {
            did: did.to_owned(),
            kind: event.kind(),
            frame,
            account,
            chain_break: false,
            created: false,
            moved_from,
        })),
        None => Decision::Ignore(IgnoreReason::NotForwarded),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use super::*;
    use crate::clock::now_micros;
    use crate::crypto::{Curve, PrivateKey};
    use crate::repo::builder::{BuiltCommit, RecordWrite, RepoHead};
    use crate::wire::cid::Cid;
    use crate::wire::frame::{Info, Sync};
    use crate::wire::tid::TidClock;

    const DID: &str = "did:plc:abcdefghijklmnopqrstuvwx";
    const HOST: &str = "127.0.0.1:2583";
    const TIME: &str = "2026-11-24T12:00:00.000Z";

    struct NoState;
    impl AccountLookup for NoState {
        fn load(&self, _: &str) -> Result<Option<AccountState>, LogError> {
            Ok(None)
        }
    }

    /// A repo that commits one post at a time.
    struct TestRepo {
        did: String,
        key: PrivateKey,
        head: RepoHead,
        store: Map<Cid, Vec<u8>>,
        clock: TidClock,
        seq: i64,
    }

    impl TestRepo {
        fn new() -> TestRepo {
            TestRepo::of(DID)
        }

        fn of(did: &str) -> TestRepo {
            let mut store = Map::new();
            let head = RepoHead::empty(did, &mut store);
            TestRepo {
                did: did.to_owned(),
                key: PrivateKey::generate(Curve::K256),
                head,
                store,
                clock: TidClock::new(),
                seq: 0,
            }
        }

        fn post(&mut self) -> BuiltCommit {
            let path = format!("app.bsky.feed.post/{}", self.clock.next());
            let built = self
                .head
                .commit(
                    &self.store,
                    vec![RecordWrite::Create {
                        path,
                        record: vec![0xa1, 0x61, b'n', 0x01],
                    }],
                    &self.key,
                    self.clock.next(),
                )
                .unwrap();
            built.store_into(&mut self.store);
            self.head = built.head.clone();
            built
        }

        fn frame(&mut self, built: &BuiltCommit) -> Bytes {
            self.seq += 1;
            let s = built.frame_strings();
            let mut out = Vec::new();
            Event::Commit(built.to_frame(&s, self.seq, TIME)).encode(&mut out);
            Bytes::from(out)
        }

        fn identity(&self, host: &str) -> Arc<Identity> {
            Arc::new(Identity {
                did: self.did.as_str().into(),
                handle: None,
                signing_key: Some(self.key.public_key()),
                pds_endpoint: Some(format!("http://{host}").into()),
                pds_host: Some(host.into()),
            })
        }
    }

    fn inbound(frame: Bytes, host: &str, identity: Arc<Identity>) -> Inbound {
        Inbound {
            host: host.into(),
            upstream_seq: 1,
            frame,
            received_micros: 0,
            identity: Some(identity),
            refreshed: false,
        }
    }

    fn decide<L: AccountLookup>(v: &mut Verifier<L>, ev: &Inbound) -> Decision {
        v.decide(ev, now_micros())
    }

    fn accepted(d: Decision) -> Box<Accepted> {
        match d {
            Decision::Accept(a) => a,
            other => panic!("expected Accept, got {other:?}"),
        }
    }

    fn frame_of(ev: Event) -> Bytes {
        let mut out = Vec::new();
        ev.encode(&mut out);
        Bytes::from(out)
    }

    #[test]
    fn the_reason_lists_hold_every_reason_once_in_declaration_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        assert_eq!(
            DropReason::ALL.len(),
            DropReason::TakenDown as usize + 1,
            "TakenDown is the last DropReason; a new one goes in ALL"
        );
        for (i, r) in IgnoreReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        assert_eq!(
            IgnoreReason::ALL.len(),
            IgnoreReason::NotForwarded as usize + 1
        );
    }

    #[test]
    fn chained_commits_are_accepted_and_replays_ignored() {
        let mut repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let id = repo.identity(HOST);
        let c1 = repo.post();
        let f1 = repo.frame(&c1);
        let a = accepted(decide(&mut v, &inbound(f1.clone(), HOST, id.clone())));
        assert!(a.created && !a.chain_break);
        assert_eq!(a.account.as_ref().unwrap().data, Some(c1.data));
        let out = a.frame.with_seq(77);
        let Event::Commit(c) = Event::decode(&out).unwrap() else {
            panic!()
        };
        assert_eq!(c.seq, 77);
        assert_eq!(c.commit, c1.commit);

        let c2 = repo.post();
        let f2 = repo.frame(&c2);
        let a = accepted(decide(&mut v, &inbound(f2.clone(), HOST, id.clone())));
        assert!(!a.created && !a.chain_break);

        for replay in [f1, f2] {
            assert!(matches!(
                decide(&mut v, &inbound(replay, HOST, id.clone())),
                Decision::Ignore(IgnoreReason::Duplicate)
            ));
        }
    }

    #[test]
    fn forged_signature_refreshes_once_then_drops() {
        let mut repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let c1 = repo.post();
        let f1 = repo.frame(&c1);
        let mut wrong = (*repo.identity(HOST)).clone();
        wrong.signing_key = Some(PrivateKey::generate(Curve::K256).public_key());
        let mut ev = inbound(f1, HOST, Arc::new(wrong));
        assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
        ev.refreshed = true;
        assert!(matches!(
            decide(&mut v, &ev),
            Decision::Drop(DropReason::BadSignature)
        ));
        // The right key after a refresh is accepted.
        ev.identity = Some(repo.identity(HOST));
        accepted(decide(&mut v, &ev));
    }

    #[test]
    fn host_matching_and_migration() {
        let mut repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let c1 = repo.post();
        let f1 = repo.frame(&c1);
        // The document names another PDS: refresh, then drop.
        let mut ev = inbound(f1.clone(), HOST, repo.identity("pds.example.com"));
        assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
        ev.refreshed = true;
        assert!(matches!(
            decide(&mut v, &ev),
            Decision::Drop(DropReason::WrongHost)
        ));

        accepted(decide(&mut v, &inbound(f1, HOST, repo.identity(HOST))));
        // The account migrates: its document now names the new host.
        let c2 = repo.post();
        let f2 = repo.frame(&c2);
        let new_host = "127.0.0.1:2999";
        let a = accepted(decide(
            &mut v,
            &inbound(f2, new_host, repo.identity(new_host)),
        ));
        assert_eq!(a.moved_from.as_deref(), Some(HOST));
        assert_eq!(a.account.unwrap().host, new_host);
        // The old host may no longer speak for it.
        let c3 = repo.post();
        let f3 = repo.frame(&c3);
        let mut ev = inbound(f3, HOST, repo.identity(new_host));
        ev.refreshed = true;
        assert!(matches!(
            decide(&mut v, &ev),
            Decision::Drop(DropReason::WrongHost)
        ));
    }

    #[test]
    fn inactive_accounts_are_dropped_until_reactivated() {
        let mut repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let id = repo.identity(HOST);
        let c1 = repo.post();
        let f1 = repo.frame(&c1);
        accepted(decide(&mut v, &inbound(f1, HOST, id.clone())));
        let deactivate = frame_of(Event::Account(Account {
            seq: 9,
            did: DID,
            time: TIME,
            active: false,
            status: Some("deactivated"),
        }));
        let a = accepted(decide(&mut v, &inbound(deactivate, HOST, id.clone())));
        assert_eq!(
            a.account.unwrap().upstream_status.as_deref(),
            Some("deactivated")
        );
        let c2 = repo.post();
        let f2 = repo.frame(&c2);
        assert!(matches!(
            decide(&mut v, &inbound(f2.clone(), HOST, id.clone())),
            Decision::Drop(DropReason::Inactive)
        ));
        let activate = frame_of(Event::Account(Account {
            seq: 10,
            did: DID,
            time: TIME,
            active: true,
            status: None,
        }));
        accepted(decide(&mut v, &inbound(activate, HOST, id.clone())));
        // c2 continues the chain from c1 (its inversion proves prevData).
        accepted(decide(&mut v, &inbound(f2, HOST, id)));
    }

    #[test]
    fn chain_breaks_are_forwarded_and_flagged() {
        let mut repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let id = repo.identity(HOST);
        let c1 = repo.post();
        let f1 = repo.frame(&c1);
        accepted(decide(&mut v, &inbound(f1, HOST, id.clone())));
        let _missed = repo.post();
        let c3 = repo.post();
        let f3 = repo.frame(&c3);
        let a = accepted(decide(&mut v, &inbound(f3, HOST, id)));
        assert!(
            a.chain_break,
            "since/prevData skip a commit the relay never saw"
        );
    }

    #[test]
    fn missing_prev_data_with_history() {
        let mut repo = TestRepo::new();
        let id = repo.identity(HOST);
        let c1 = repo.post();
        let f1 = repo.frame(&c1);
        let c2 = repo.post();
        let s = c2.frame_strings();
        let mut ev2 = c2.to_frame(&s, 2, TIME);
        ev2.prev_data = None;
        let f2 = frame_of(Event::Commit(ev2));
        for lenient in [false, true] {
            let mut v = Verifier::new(NoState, lenient);
            accepted(decide(&mut v, &inbound(f1.clone(), HOST, id.clone())));
            let d = decide(&mut v, &inbound(f2.clone(), HOST, id.clone()));
            if lenient {
                accepted(d);
            } else {
                assert!(matches!(d, Decision::Drop(DropReason::MissingPrevData)));
            }
        }
    }

    #[test]
    fn bad_input_is_dropped() {
        let mut repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let id = repo.identity(HOST);
        let garbage = Bytes::from_static(b"\xa2\x61t\x67#commit\x62op\x01\xff");
        assert!(matches!(
            decide(&mut v, &inbound(garbage, HOST, id.clone())),
            Decision::Drop(DropReason::Malformed)
        ));
        // A tampered record block fails its hash.
        let c1 = repo.post();
        let mut tampered = repo.frame(&c1).to_vec();
        // The record {n: 1} inside the diff CAR.
        let at = tampered
            .windows(4)
            .position(|w| w == [0xa1, 0x61, b'n', 0x01])
            .unwrap();
        tampered[at + 3] = 0x02;
        assert!(matches!(
            decide(&mut v, &inbound(Bytes::from(tampered), HOST, id.clone())),
            Decision::Drop(DropReason::BadCar)
        ));
        // No identity at all.
        let mut ev = inbound(repo.frame(&c1), HOST, id);
        ev.identity = None;
        assert!(matches!(
            decide(&mut v, &ev),
            Decision::Drop(DropReason::NoIdentity)
        ));
    }

    #[test]
    fn sync_and_info() {
        let mut repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let id = repo.identity(HOST);
        let c1 = repo.post();
        let c2 = repo.post();
        let f2 = repo.frame(&c2);
        accepted(decide(&mut v, &inbound(f2, HOST, id.clone())));

        // A #sync for the older c1 is stale; one for a newer commit resets.
        let sync_for = |c: &BuiltCommit| {
            let car = crate::wire::car::Car::parse(&c.car, crate::wire::car::CarLimits::FIREHOSE)
                .unwrap();
            let mut w = crate::wire::car::CarWriter::new(&[c.commit]);
            w.push(&c.commit, car.get(&c.commit).unwrap());
            let blocks = w.finish();
            let rev = c.rev.to_string();
            frame_of(Event::Sync(Sync {
                seq: 3,
                did: DID,
                blocks: &blocks,
                rev: &rev,
                time: TIME,
            }))
        };
        assert!(matches!(
            decide(&mut v, &inbound(sync_for(&c1), HOST, id.clone())),
            Decision::Ignore(IgnoreReason::StaleSync)
        ));
        let c3 = repo.post();
        let a = accepted(decide(&mut v, &inbound(sync_for(&c3), HOST, id.clone())));
        assert_eq!(a.account.unwrap().data, Some(c3.data));

        let info = frame_of(Event::Info(Info {
            name: "OutdatedCursor",
            message: None,
        }));
        assert!(matches!(
            decide(&mut v, &inbound(info, HOST, id)),
            Decision::Ignore(IgnoreReason::NotForwarded)
        ));
    }

    #[test]
    fn identity_only_from_the_current_host_and_handles_only_when_confirmed() {
        let repo = TestRepo::new();
        let mut v = Verifier::new(NoState, false);
        let mut doc = (*repo.identity(HOST)).clone();
        doc.handle = Some("alice.example.com".into());
        let doc = Arc::new(doc);
        let ident = |handle: Option<&str>| {
            frame_of(Event::Identity(crate::wire::frame::Identity {
                seq: 4,
                did: DID,
                time: TIME,
                handle,
            }))
        };
        // Always decided on a document fetched after the event.
        let mut ev = inbound(ident(Some("alice.example.com")), HOST, doc.clone());
        assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
        ev.refreshed = true;
        let a = accepted(decide(&mut v, &ev));
        let frame = a.frame.with_seq(1);
        let Event::Identity(out) = Event::decode(&frame).unwrap() else {
            panic!()
        };
        assert_eq!(out.handle, Some("alice.example.com"));
        assert!(a.account.is_none(), "an #identity changes no account state");

        // A handle the document does not claim is not forwarded.
        let mut ev = inbound(ident(Some("hijacked.example.com")), HOST, doc.clone());
        ev.refreshed = true;
        let a = accepted(decide(&mut v, &ev));
        let frame = a.frame.with_seq(2);
        let Event::Identity(out) = Event::decode(&frame).unwrap() else {
            panic!()
        };
        assert_eq!(out.handle, None);

        // From a host the document does not name: dropped.
        let mut ev = inbound(ident(Some("hijacked.example.com")), "evil.example.com", doc);
        assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
        ev.refreshed = true;
        assert!(matches!(
            decide(&mut v, &ev),
            Decision::Drop(DropReason::WrongHost)
        ));
        ev.identity = None;
        assert!(matches!(
            decide(&mut v, &ev),
            Decision::Drop(DropReason::NoIdentity)
        ));
    }

    /// The log as the verifier sees it through [`AccountLookup`]: written
    /// by the test, standing in for the sequencer.
    #[derive(Clone, Default)]
    struct Store(std::rc::Rc<std::cell::RefCell<Map<String, AccountState>>>);

    impl AccountLookup for Store {
        fn load(&self, did: &str) -> Result<Option<AccountState>, LogError> {
            Ok(self.0.borrow().get(did).cloned())
        }
    }

    #[test]
    fn chains_verify_across_cache_evictions() {
        const CAPACITY: usize = 16;
        let store = Store::default();
        let mut v = Verifier::new(store.clone(), false).with_cache_capacity(CAPACITY);
        let mut repos: Vec<TestRepo> = (0..40)
            .map(|i: u8| {
                let tail = [b'a' + i / 26, b'a' + i % 26];
                let did = format!(
                    "did:plc:{}{}",
                    "a".repeat(22),
                    std::str::from_utf8(&tail).unwrap()
                );
                TestRepo::of(&did)
            })
            .collect();
        let ids: Vec<Arc<Identity>> = repos.iter().map(|r| r.identity(HOST)).collect();
        // Written to the store once "the sequencer" gets to them.
        let mut unwritten: Vec<(String, AccountState)> = Vec::new();
        let write_all = |v: &Verifier<Store>, unwritten: &mut Vec<(String, AccountState)>| {
            let done = v.written();
            for (did, state) in unwritten.drain(..) {
                store.0.borrow_mut().insert(did, state);
            }
            done.done();
        };

        for round in 0..8 {
            for (repo, id) in repos.iter_mut().zip(&ids) {
                let built = repo.post();
                let frame = repo.frame(&built);
                let a = accepted(decide(&mut v, &inbound(frame, HOST, id.clone())));
                // prevData and since continue the state the verifier holds,
                // whether it stayed cached or was reloaded from the store.
                assert!(!a.chain_break, "round {round}: chain continues");
                assert_eq!(a.created, round == 0);
                assert_eq!(a.account.as_ref().unwrap().data, Some(built.data));
                unwritten.push((a.did.clone(), a.account.unwrap()));
                // A replay is a duplicate even across evictions.
                if round > 1 {
                    let old = repo.frame(&built);
                    assert!(matches!(
                        decide(&mut v, &inbound(old, HOST, id.clone())),
                        Decision::Ignore(IgnoreReason::Duplicate)
                    ));
                }
                // Rounds 1, 3, 5: nothing is written until the round ends,
                // so all 40 updates are pending at once, far more than the
                // capacity; evicting any of them would reload the previous
                // state and break the chain next round. The other rounds
                // are written at once, so entries may be evicted right away.
                if round % 2 == 1 && round < 6 {
                    assert!(v.cached_accounts() >= unwritten.len());
                } else {
                    write_all(&v, &mut unwritten);
                }
            }
            write_all(&v, &mut unwritten);
        }
        assert!(v.cache_evictions() > 100, "{}", v.cache_evictions());
        assert!(v.cached_accounts() <= CAPACITY, "{}", v.cached_accounts());
    }
}
