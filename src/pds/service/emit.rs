//! Emitting this PDS's firehose events (`#identity`, `#account`,
//! `#commit`) once a change is durable, and publishing the last seq the
//! crawl notifier waits on. Its own file because every operation ends here,
//! and the event shapes are nobody else's concern.

use super::{Pds, PdsError};
use crate::clock::now_micros;
use crate::repo::builder::BuiltCommit;
use crate::wire::frame::{Account, Event, Identity};
use crate::wire::syntax::format_datetime_micros;

impl Pds {
    fn emit(&self, event: Event<'_>) -> Result<u64, PdsError> {
        let seq = self.inner.events.emit(event, now_micros())?;
        self.inner.last_seq.send_replace(seq);
        Ok(seq)
    }

    pub(super) fn emit_identity(&self, did: &str, handle: Option<&str>) -> Result<u64, PdsError> {
        let time = format_datetime_micros(now_micros());
        self.emit(Event::Identity(Identity {
            seq: 0,
            did,
            time: &time,
            handle,
        }))
    }

    pub(super) fn emit_account(&self, did: &str, status: Option<&str>) -> Result<u64, PdsError> {
        let time = format_datetime_micros(now_micros());
        self.emit(Event::Account(Account {
            seq: 0,
            did,
            time: &time,
            active: status.is_none(),
            status,
        }))
    }

    pub(super) fn emit_commit(&self, built: &BuiltCommit) -> Result<u64, PdsError> {
        let time = format_datetime_micros(now_micros());
        let strings = built.frame_strings();
        self.emit(Event::Commit(built.to_frame(&strings, 0, &time)))
    }
}
