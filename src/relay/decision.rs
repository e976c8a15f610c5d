//! What a verifier decided about one event ([`Decision`]) and, for an
//! accepted one, what the sequencer is handed ([`Accepted`]): the forwarded
//! frame and the account state to persist with it.
//!
//! Separate from the verifier, which produces decisions, because the pool
//! acts on them (refresh and retry, count drops) and the sequencer consumes
//! the accepted ones; none of them needs the verifier's state to do so.

use super::outbound::PendingFrame;
use super::reason::{DropReason, IgnoreReason};
use crate::log::AccountState;
use crate::wire::frame::{Event, EventKind};

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

/// An accepted event of `event` (its frame ready to be sequenced), or
/// `NotForwarded` when it has no frame to forward.
pub(super) fn accept(
    event: &Event,
    account: Option<AccountState>,
    moved_from: Option<String>,
) -> Decision {
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
