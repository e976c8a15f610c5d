//! The per-frame counters of one connection, resolved once when it opens.
//!
//! Separate because they are a hot-path detail of the metrics (a registry
//! lookup per frame costs more than the increment), not a crawling rule.

use crate::relay::metrics::{CRAWLER_FRAMES, EVENTS_RECEIVED};
use crate::wire::frame::EventKind;

/// Per-frame counters, resolved once per connection: a registry lookup per
/// frame costs more than the increment.
pub(super) struct FrameCounters {
    pub(super) frames: metrics::Counter,
    /// [`EVENTS_RECEIVED`] by [`EventKind::label`], indexed as
    /// in [`FrameCounters::received`].
    received: [metrics::Counter; 7],
}

impl FrameCounters {
    pub(super) fn new() -> FrameCounters {
        let received = [
            EventKind::Commit,
            EventKind::Sync,
            EventKind::Identity,
            EventKind::Account,
            EventKind::Info,
            EventKind::Error,
            EventKind::Unknown,
        ]
        .map(|k| metrics::counter!(EVENTS_RECEIVED, "type" => k.label()));
        FrameCounters {
            frames: metrics::counter!(CRAWLER_FRAMES),
            received,
        }
    }

    pub(super) fn received(&self, kind: EventKind) -> &metrics::Counter {
        let i = match kind {
            EventKind::Commit => 0,
            EventKind::Sync => 1,
            EventKind::Identity => 2,
            EventKind::Account => 3,
            EventKind::Info => 4,
            EventKind::Error => 5,
            EventKind::Unknown => 6,
        };
        &self.received[i]
    }
}
