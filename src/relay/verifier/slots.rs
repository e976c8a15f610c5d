//! The account limit as the verifier applies it: the [`AccountSlots`] it
//! asks, and the accounts it has refused a slot (for the throttled-accounts
//! gauge).
//!
//! Separate from the checks because it is policy the operator sets per
//! host, applied at the points where an account is created, moves or is
//! deleted; the checks only call [`Verifier::take_slot`] and
//! [`Verifier::refuse_slot`].

use super::Verifier;
use crate::relay::decision::Decision;
use crate::relay::metrics::ACCOUNTS_THROTTLED;
use crate::relay::reason::DropReason;

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

impl<L> Verifier<L> {
    /// Remembers `did` as refused a slot on `host`.
    pub(super) fn refuse_slot(&mut self, did: &str) -> Decision {
        if self.throttled.insert(did.to_owned()) {
            metrics::gauge!(ACCOUNTS_THROTTLED).increment(1.0);
        }
        Decision::Drop(DropReason::AccountThrottled)
    }

    /// Takes a slot for a new account on `host`; refuses the event otherwise.
    pub(super) fn take_slot(&mut self, did: &str, host: &str) -> Result<(), Decision> {
        if !self.slots.try_take(host) {
            return Err(self.refuse_slot(did));
        }
        if self.throttled.remove(did) {
            metrics::gauge!(ACCOUNTS_THROTTLED).decrement(1.0);
        }
        Ok(())
    }
}
