//! Fan-out metrics (`atrelay_fanout_*`), recorded through the `metrics`
//! facade; the HTTP layer exports them.
//!
//! No label identifies a subscriber (address, cursor, user agent): label sets
//! stay bounded whatever the number of connections. Counters are bumped once
//! per written batch, not per frame, to keep the hot path cheap.

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge, Unit};

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

/// Registers the descriptions and units of the fan-out metrics with the
/// installed recorder (call once at start, after installing the exporter).
pub fn describe() {
    describe_gauge!(SUBSCRIBERS, "Subscriber sessions currently running");
    describe_counter!(
        FRAMES_DELIVERED,
        "Firehose frames fully written to subscriber sockets"
    );
    describe_counter!(
        BYTES_DELIVERED,
        Unit::Bytes,
        "Payload bytes of the frames written to subscriber sockets"
    );
    describe_counter!(SESSIONS_ENDED, "Subscriber sessions ended, by reason");
    describe_counter!(
        CATCHUP_READS,
        "Batches read from the log for replays and catch-up"
    );
}

/// Handles resolved once per session (a registry lookup each), then bumped
/// per batch without lookups.
pub(crate) struct SessionMetrics {
    subscribers: Gauge,
    frames: Counter,
    bytes: Counter,
    catchup_reads: Counter,
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

    /// One batch was read from the log.
    pub(crate) fn catchup_read(&self) {
        self.catchup_reads.increment(1);
    }

    /// The session ended for `reason`.
    pub(crate) fn ended(&mut self, reason: &'static str) {
        self.ended = true;
        counter!(SESSIONS_ENDED, "reason" => reason).increment(1);
    }
}

impl Drop for SessionMetrics {
    /// Uncounts the session from the gauge however it ends, including when
    /// its task is aborted (then counted with reason `aborted`).
    fn drop(&mut self) {
        if !self.ended {
            counter!(SESSIONS_ENDED, "reason" => "aborted").increment(1);
        }
        self.subscribers.decrement(1.0);
    }
}
