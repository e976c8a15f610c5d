//! Fan-out metrics (`atrelay_fanout_*`), recorded through the `metrics`
//! facade; the HTTP layer exports them.
//!
//! No label identifies a subscriber (address, cursor, user agent): label sets
//! stay bounded whatever the number of connections. Counters are bumped once
//! per written batch, not per frame, to keep the hot path cheap.

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, Unit};
use tokio::time::Instant;

use super::SessionEnd;
use crate::metrics::{Family, KnownLabel};

/// Gauge: subscriber sessions currently running.
pub const SUBSCRIBERS: &str = "atrelay_fanout_subscribers";
/// Counter: firehose frames fully written to subscriber sockets.
pub const FRAMES_DELIVERED: &str = "atrelay_fanout_frames_delivered_total";
/// Counter: payload bytes of those frames (WebSocket headers excluded).
pub const BYTES_DELIVERED: &str = "atrelay_fanout_bytes_delivered_total";
/// Counter, label `reason` (see [`SessionEnd::reason`](super::SessionEnd::reason)):
/// sessions ended.
pub const SESSIONS_ENDED: &str = "atrelay_fanout_sessions_ended_total";
/// Counter: batches read from the log (replays and catch-up after falling
/// behind the ring).
pub const CATCHUP_READS: &str = "atrelay_fanout_catchup_reads_total";
/// Histogram: how many events a session is behind the ring's head, sampled
/// when it finishes writing a batch, at most once per [`LAG_SAMPLE_EVERY`]
/// per session.
pub const SUBSCRIBER_LAG: &str = "atrelay_fanout_subscriber_lag_events";
/// Counter: sessions dropped with `ConsumerTooSlow` (also in
/// [`SESSIONS_ENDED`] as `reason="too_slow"`; named for alerting).
pub const CONSUMER_TOO_SLOW: &str = "atrelay_fanout_consumer_too_slow_total";

/// Counter: `subscribeRepos` upgrades refused because the subscriber cap
/// (`fanout.max_subscribers`) was reached.
pub const SUBSCRIBERS_REFUSED: &str = "atrelay_fanout_subscribers_refused_total";
/// Counter, label `when` (`at_publish`, `deferred`): wakes of the caught-up
/// sessions waiting on the ring. Deferred wakes are coalesced ones (see
/// [`Coalescing`](super::Coalescing)); events per wake is what a socket
/// write carries.
pub const RING_WAKES: &str = "atrelay_fanout_ring_wakes_total";

/// Least time between two lag samples of one session.
///
/// Why sampled at batch ends and throttled: the batch end is where the
/// session already knows what it delivered, so a sample costs one atomic
/// load of the ring head and no timer or task; but a caught-up subscriber
/// writes a batch per published event, and the exporter buffers every
/// histogram sample until it is scraped, so unthrottled samples would cost
/// memory per subscriber per event. Once a second per session keeps the
/// histogram a fair picture of "subscriber-seconds at this lag". A session
/// whose socket has stalled writes no batch and so is not sampled until it
/// drains; that case shows up in [`CONSUMER_TOO_SLOW`] instead.
pub const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// [`SESSIONS_ENDED`] reason of a session whose task was aborted (counted by
/// the drop guard, not by [`SessionEnd::reason`]).
const REASON_ABORTED: &str = "aborted";

/// Every `reason` of [`SESSIONS_ENDED`].
const END_REASONS: &[KnownLabel] = &[KnownLabel {
    key: "reason",
    values: || {
        let mut reasons: Vec<_> = [
            SessionEnd::ClientClosed,
            SessionEnd::TooSlow,
            SessionEnd::FutureCursor,
            SessionEnd::Io(String::new()),
            SessionEnd::Protocol(String::new()),
        ]
        .iter()
        .map(SessionEnd::reason)
        .collect();
        reasons.push(REASON_ABORTED);
        reasons
    },
}];

/// Every `when` of [`RING_WAKES`].
const WAKE_TIMES: &[KnownLabel] = &[KnownLabel {
    key: "when",
    values: || vec![WAKE_AT_PUBLISH, WAKE_DEFERRED],
}];

/// Every fan-out family, described and registered at start.
pub const FAMILIES: &[Family] = &[
    Family::gauge(SUBSCRIBERS, "Subscriber sessions currently running"),
    Family::counter(
        FRAMES_DELIVERED,
        "Firehose frames fully written to subscriber sockets",
    ),
    Family::counter(
        BYTES_DELIVERED,
        "Payload bytes of the frames written to subscriber sockets",
    )
    .unit(Unit::Bytes),
    Family::counter(SESSIONS_ENDED, "Subscriber sessions ended, by reason").zero_per(END_REASONS),
    Family::counter(
        CATCHUP_READS,
        "Batches read from the log for replays and catch-up",
    ),
    Family::histogram(
        SUBSCRIBER_LAG,
        "Events a subscriber session is behind the ring head, sampled per session at most once a second",
    ),
    Family::counter(
        CONSUMER_TOO_SLOW,
        "Subscriber sessions dropped with ConsumerTooSlow (socket stopped draining)",
    ),
    Family::counter(
        SUBSCRIBERS_REFUSED,
        "subscribeRepos upgrades refused with 503: the subscriber cap (fanout.max_subscribers) was reached",
    ),
    Family::counter(
        RING_WAKES,
        "Wakes of the caught-up subscriber sessions, at publish or deferred to the end of a coalescing interval",
    )
    .zero_per(WAKE_TIMES),
];

/// [`RING_WAKES`] label: woken by the publish itself.
pub(crate) const WAKE_AT_PUBLISH: &str = "at_publish";
/// [`RING_WAKES`] label: woken at the end of a coalescing interval.
pub(crate) const WAKE_DEFERRED: &str = "deferred";

/// One `subscribeRepos` upgrade was refused at the subscriber cap.
pub fn subscriber_refused() {
    counter!(SUBSCRIBERS_REFUSED).increment(1);
}

/// The waiting sessions were woken (`when`: [`WAKE_AT_PUBLISH`] or
/// [`WAKE_DEFERRED`]). Once per wake, never per session or event.
pub(crate) fn ring_woken(when: &'static str) {
    counter!(RING_WAKES, "when" => when).increment(1);
}

/// Handles resolved once per session (a registry lookup each), then bumped
/// per batch without lookups.
pub(crate) struct SessionMetrics {
    subscribers: Gauge,
    frames: Counter,
    bytes: Counter,
    catchup_reads: Counter,
    lag: Histogram,
    /// When the next lag sample is due.
    next_lag_sample: Instant,
    ended: bool,
}

impl SessionMetrics {
    /// Resolves the handles and counts the session in the subscribers gauge.
    pub(crate) fn start() -> SessionMetrics {
        let m = SessionMetrics {
            subscribers: gauge!(SUBSCRIBERS),
            frames: counter!(FRAMES_DELIVERED),
            bytes: counter!(BYTES_DELIVERED),
            catchup_reads: counter!(CATCHUP_READS),
            lag: histogram!(SUBSCRIBER_LAG),
            next_lag_sample: Instant::now(),
            ended: false,
        };
        m.subscribers.increment(1.0);
        m
    }

    /// A batch of `frames` firehose frames (`bytes` of payload) was written.
    pub(crate) fn delivered(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            self.frames.increment(frames);
            self.bytes.increment(bytes);
        }
    }

    /// Records the session's lag (computed by `lag` only when a sample is
    /// due; see [`LAG_SAMPLE_EVERY`]). Call when a batch has been written.
    pub(crate) fn observe_lag(&mut self, lag: impl FnOnce() -> u64) {
        let now = Instant::now();
        if now >= self.next_lag_sample {
            self.next_lag_sample = now + LAG_SAMPLE_EVERY;
            self.lag.record(lag() as f64);
        }
    }

    /// One batch was read from the log.
    pub(crate) fn catchup_read(&self) {
        self.catchup_reads.increment(1);
    }

    /// The session ended with `end` (counted once: when it is decided,
    /// before the goodbye is written; later calls do nothing).
    pub(crate) fn ended(&mut self, end: &SessionEnd) {
        if self.ended {
            return;
        }
        self.ended = true;
        counter!(SESSIONS_ENDED, "reason" => end.reason()).increment(1);
        if *end == SessionEnd::TooSlow {
            counter!(CONSUMER_TOO_SLOW).increment(1);
        }
    }
}

impl Drop for SessionMetrics {
    /// Uncounts the session from the gauge however it ends, including when
    /// its task is aborted (then counted with reason `aborted`).
    fn drop(&mut self) {
        if !self.ended {
            counter!(SESSIONS_ENDED, "reason" => REASON_ABORTED).increment(1);
        }
        self.subscribers.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{HistogramFn, Key, KeyName, Metadata, Recorder, SharedString};

    use super::*;

    /// Counters by `name{labels}`, and histogram sample counts by name.
    #[derive(Default)]
    struct Rec {
        counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
        samples: Mutex<HashMap<String, Arc<Samples>>>,
    }

    #[derive(Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl HistogramFn for Samples {
        fn record(&self, v: f64) {
            self.0.lock().unwrap().push(v);
        }
    }

    fn name(key: &Key) -> String {
        let labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Rec {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut c = self.counters.lock().unwrap();
            Counter::from_arc(c.entry(name(key)).or_default().clone())
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let mut c = self.counters.lock().unwrap();
            Gauge::from_arc(c.entry(name(key)).or_default().clone())
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let mut s = self.samples.lock().unwrap();
            Histogram::from_arc(s.entry(name(key)).or_default().clone())
        }
    }

    impl Rec {
        fn counter(&self, key: &str) -> u64 {
            let c = self.counters.lock().unwrap();
            c.get(key).map_or(0, |v| v.load(Ordering::Relaxed))
        }
        fn samples(&self, key: &str) -> Vec<f64> {
            let s = self.samples.lock().unwrap();
            s.get(key)
                .map_or(Vec::new(), |v| v.0.lock().unwrap().clone())
        }
    }

    #[test]
    fn lag_is_sampled_at_most_once_per_interval_and_too_slow_is_counted() {
        let rec = Rec::default();
        metrics::with_local_recorder(&rec, || {
            crate::metrics::describe(FAMILIES);
            let mut m = SessionMetrics::start();
            m.observe_lag(|| 7);
            // Within the interval: not computed, not recorded.
            m.observe_lag(|| panic!("sampled twice within LAG_SAMPLE_EVERY"));
            m.ended(&SessionEnd::TooSlow);
            m.ended(&SessionEnd::TooSlow);
            let mut other = SessionMetrics::start();
            other.ended(&SessionEnd::ClientClosed);
        });
        assert_eq!(rec.samples(&format!("{SUBSCRIBER_LAG}{{}}")), vec![7.0]);
        assert_eq!(rec.counter(&format!("{CONSUMER_TOO_SLOW}{{}}")), 1);
        assert_eq!(
            rec.counter(&format!("{SESSIONS_ENDED}{{reason=too_slow}}")),
            1
        );
        assert_eq!(
            rec.counter(&format!("{SESSIONS_ENDED}{{reason=client_closed}}")),
            1
        );
    }
}
