//! `atrelay_mirror_*`: how far a mirror is behind its upstream, and what it
//! dropped. Labels come from fixed sets (drop reasons, notice names, status
//! classes), never from upstream content.

use metrics::Unit;

use super::frame_check::Dropped;
use crate::metrics::{Family, KnownLabel};

/// Highest seq received from the upstream (stored or not yet).
pub const UPSTREAM_SEQ: &str = "atrelay_mirror_upstream_seq";
/// The mirror's log head: the highest seq durable and served.
pub const HEAD_SEQ: &str = "atrelay_mirror_head_seq";
/// Publish time minus the event's `time`, for the newest stored event.
pub const LAG_SECONDS: &str = "atrelay_mirror_lag_seconds";
/// 1 while the upstream firehose is connected.
pub const CONNECTED: &str = "atrelay_mirror_upstream_connected";
/// Connections to the upstream that ended or failed (each one a reconnect).
pub const RECONNECTS: &str = "atrelay_mirror_reconnects_total";
/// Events stored.
pub const EVENTS: &str = "atrelay_mirror_events_total";
/// Frames dropped, by [`Dropped::label`].
pub const DROPPED: &str = "atrelay_mirror_frames_dropped_total";
/// `#info` and error frames from the upstream, by [`notice_label`].
pub const NOTICES: &str = "atrelay_mirror_upstream_notices_total";
/// Passed-through queries, by [`status_class`].
pub const PROXIED: &str = "atrelay_mirror_proxy_requests_total";

const OUTDATED_CURSOR: &str = "outdated_cursor";
const FUTURE_CURSOR: &str = "future_cursor";
const CONSUMER_TOO_SLOW: &str = "consumer_too_slow";
const OTHER_INFO: &str = "other_info";
const OTHER_ERROR: &str = "other_error";

/// The `name` labels of [`NOTICES`].
pub const NOTICE_LABELS: [&str; 5] = [
    OUTDATED_CURSOR,
    FUTURE_CURSOR,
    CONSUMER_TOO_SLOW,
    OTHER_INFO,
    OTHER_ERROR,
];

const STATUS_2XX: &str = "2xx";
const STATUS_3XX: &str = "3xx";
const STATUS_4XX: &str = "4xx";
const STATUS_5XX: &str = "5xx";
const STATUS_FAILED: &str = "failed";

/// The `status` labels of [`PROXIED`].
pub const STATUS_CLASSES: [&str; 5] = [
    STATUS_2XX,
    STATUS_3XX,
    STATUS_4XX,
    STATUS_5XX,
    STATUS_FAILED,
];

/// The label of an upstream `#info` (`is_error` false) or error frame name.
pub fn notice_label(name: &str, is_error: bool) -> &'static str {
    match (name, is_error) {
        ("OutdatedCursor", _) => OUTDATED_CURSOR,
        ("FutureCursor", _) => FUTURE_CURSOR,
        ("ConsumerTooSlow", _) => CONSUMER_TOO_SLOW,
        (_, false) => OTHER_INFO,
        (_, true) => OTHER_ERROR,
    }
}

/// The label of an HTTP status (`None`: no answer from the upstream).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => STATUS_2XX,
        Some(300..=399) => STATUS_3XX,
        Some(400..=499) => STATUS_4XX,
        Some(_) => STATUS_5XX,
        None => STATUS_FAILED,
    }
}

/// Every `reason` of [`DROPPED`].
const DROP_REASONS: &[KnownLabel] = &[KnownLabel {
    key: "reason",
    values: || Dropped::ALL.map(Dropped::label).to_vec(),
}];

/// Every `name` of [`NOTICES`].
const NOTICE_NAMES: &[KnownLabel] = &[KnownLabel {
    key: "name",
    values: || NOTICE_LABELS.to_vec(),
}];

/// Every `status` of [`PROXIED`].
const PROXY_STATUSES: &[KnownLabel] = &[KnownLabel {
    key: "status",
    values: || STATUS_CLASSES.to_vec(),
}];

/// Every mirror family, registered at zero on a relay too (a dashboard
/// panel then says 0, not "no data"): the dashboard charts them.
pub const FAMILIES: &[Family] = &[
    Family::gauge(
        UPSTREAM_SEQ,
        "Mirror: highest seq received from the upstream relay",
    ),
    Family::gauge(
        HEAD_SEQ,
        "Mirror: the log head, highest upstream seq stored and served",
    ),
    Family::gauge(
        LAG_SECONDS,
        "Mirror: when the newest stored event was published here minus its upstream time field",
    )
    .unit(Unit::Seconds),
    Family::gauge(
        CONNECTED,
        "Mirror: 1 while the upstream firehose is connected",
    ),
    Family::counter(
        RECONNECTS,
        "Mirror: upstream connections that ended or failed to open",
    ),
    Family::counter(EVENTS, "Mirror: events stored from the upstream"),
    Family::counter(
        DROPPED,
        "Mirror: upstream frames dropped, by reason (oversize, malformed, unsequenced, non_increasing, text)",
    )
    .zero_per(DROP_REASONS),
    Family::counter(
        NOTICES,
        "Mirror: #info and error frames from the upstream, by name",
    )
    .zero_per(NOTICE_NAMES),
    Family::counter(
        PROXIED,
        "Mirror: queries passed through to the upstream, by status class",
    )
    .zero_per(PROXY_STATUSES),
];
