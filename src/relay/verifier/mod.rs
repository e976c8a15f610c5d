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
//!
//! Laid out as a folder: this file holds the verifier's state and its entry
//! points; each event kind's checks are in their own file
//! (`repo_event` for `#commit`/`#sync`, `account_event`, `identity_event`),
//! and the account limit in `slots`. What a decision is lives in
//! [`super::decision`], the event it is made on in [`super::inbound`].

mod account_event;
mod identity_event;
mod repo_event;
mod slots;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use super::account_cache::{AccountCache, Written};
use super::decision::{accept, Accepted, Decision};
use super::inbound::Inbound;
pub use super::reason::{DropReason, IgnoreReason};
use crate::log::{AccountState, LogError};
use crate::wire::frame::{Account, AccountStatus, Event};
use crate::wire::syntax::format_datetime_micros;
pub use slots::{AccountSlots, Unlimited};

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
