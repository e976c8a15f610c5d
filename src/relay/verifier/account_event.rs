//! The checks of an `#account`: the upstream status recorded, the account's
//! slot counted as it is deleted, comes back or moves, and the relay's
//! combined status (a local takedown overrides the upstream) forwarded.
//!
//! Separate from `repo_event`, which routes an `#account` here after the
//! host matching they share.

use super::{new_account, AccountLookup, Verifier};
use crate::log::AccountState;
use crate::relay::decision::{accept, Decision};
use crate::relay::inbound::Inbound;
use crate::wire::frame::{Account, AccountStatus, Event};

impl<L: AccountLookup> Verifier<L> {
    /// combined view (a local takedown overrides the upstream).
    pub(super) fn decide_account(
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
}
