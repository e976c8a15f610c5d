//! The checks of a `#commit` or `#sync` (and the routing of an `#account`
//! that shares their host matching): host matching and migration, account
//! status, rev order, the signature and CAR checks of
//! [`crate::repo::verify`], chain continuity, and the account slot.
//!
//! Separate from the other event kinds: these are the checks that need the
//! stored account state and the repo verification.

use super::{new_account, AccountLookup, Verifier};
use crate::relay::decision::{accept, Decision};
use crate::relay::inbound::Inbound;
use crate::relay::reason::{DropReason, IgnoreReason};
use crate::repo::commit::CommitError;
use crate::repo::verify::{verify_commit, verify_sync, VerifyError, VerifyOptions};
use crate::wire::frame::Event;

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

impl<L: AccountLookup> Verifier<L> {
    pub(super) fn decide_repo_event(
        &mut self,
        ev: &Inbound,
        event: Event,
        now_micros: u64,
    ) -> Decision {
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
}
