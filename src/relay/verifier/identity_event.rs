//! The checks of an `#identity`: decided on a freshly fetched document,
//! only from the host that document names, with its handle forwarded only
//! when the document claims it.
//!
//! Separate because an `#identity` touches no account state: it needs only
//! the event and the identity.

use super::{AccountLookup, Verifier};
use crate::relay::decision::{accept, Decision};
use crate::relay::inbound::Inbound;
use crate::relay::metrics::IDENTITY_HANDLES_STRIPPED;
use crate::relay::reason::DropReason;
use crate::wire::frame::Event;

impl<L: AccountLookup> Verifier<L> {
    /// `#identity`: the document may have changed, so it is decided on a
    /// fresh one (a refresh first, which also purges the cached document),
    /// and only from the host that document names.
    pub(super) fn decide_identity(ev: &Inbound, event: crate::wire::frame::Identity) -> Decision {
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
}
