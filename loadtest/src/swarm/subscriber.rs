//! What one subscriber counts and checks per frame, whichever client
//! (`raw_client`, `tungstenite_client`) read the frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atrelay::wire::frame::{decode_header, Event, EventKind};

use super::frame_peek::peek;
use crate::emit_time;
use crate::histogram::Histogram;

/// Frame types counted, by header `t`, named by the relay's labels
/// ([`EventKind::label`]); the last counts every other `t`.
pub const TYPES: [&str; 6] = [
    EventKind::Commit.label(),
    EventKind::Identity.label(),
    EventKind::Account.label(),
    EventKind::Sync.label(),
    EventKind::Info.label(),
    "other",
];

/// `t`'s index in [`TYPES`]: the name after its last `#`.
fn type_index(t: Option<&[u8]>) -> usize {
    let t = t.unwrap_or_default();
    let name = t.rsplit(|b| *b == b'#').next().unwrap_or(t);
    TYPES[..5]
        .iter()
        .position(|n| n.as_bytes() == name)
        .unwrap_or(5)
}

/// What one subscriber saw. Counters are atomics so reports can be read
/// while the subscriber runs.
pub struct SubscriberStats {
    /// Decodes every body: latency and per-repo rev order.
    pub checker: bool,
    pub connected: AtomicBool,
    /// Sequenced events received, each seq once (not `#info` or error
    /// frames, not repeats): what a check against the relay's count reads.
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Last seq received; -1 before any.
    pub last_seq: AtomicI64,
    /// Seqs skipped (sum of the sizes of the holes).
    pub gaps: AtomicU64,
    /// Frames whose seq was not above the previous one.
    pub duplicates: AtomicU64,
    /// Commits or syncs whose rev was not above the repo's previous rev.
    pub rev_violations: AtomicU64,
    pub decode_errors: AtomicU64,
    pub reconnects: AtomicU64,
    /// `ConsumerTooSlow` error frames received.
    pub too_slow: AtomicU64,
    pub by_type: [AtomicU64; 6],
    /// Emit → receive, µs (checkers only).
    pub latency: Mutex<Histogram>,
}

impl SubscriberStats {
    pub fn new(checker: bool) -> SubscriberStats {
        SubscriberStats {
            checker,
            connected: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_seq: AtomicI64::new(-1),
            gaps: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rev_violations: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            too_slow: AtomicU64::new(0),
            by_type: Default::default(),
            latency: Mutex::new(Histogram::new()),
        }
    }
}

/// Per-subscriber checking state that survives reconnects: each repo's
/// last rev (checkers only).
pub struct Checker {
    revs: HashMap<String, String>,
}

impl Checker {
    pub fn new() -> Checker {
        Checker {
            revs: HashMap::new(),
        }
    }
}

impl SubscriberStats {
    /// Where a (re)connection starts: after the last seq received, else at
    /// the swarm's `cursor` (`None`: live).
    pub fn resume_cursor(&self, cursor: Option<u64>) -> Option<u64> {
        let last = self.last_seq.load(Ordering::Relaxed);
        if last >= 0 {
            Some(last as u64)
        } else {
            cursor
        }
    }

    /// Marks a connection made, counting it as a reconnect unless it is the
    /// subscriber's `first`.
    pub fn mark_connected(&self, first: &mut bool) {
        if !*first {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *first = false;
        self.connected.store(true, Ordering::Relaxed);
    }
}

/// An `#identity` frame with `seq`, for tests of the counting.
#[cfg(test)]
pub fn identity_frame(seq: i64) -> Vec<u8> {
    let mut out = Vec::new();
    Event::Identity(atrelay::wire::frame::Identity {
        seq,
        did: "did:plc:abcdefghijklmnopqrstuvwx",
        time: "2026-11-25T00:00:00.000Z",
        handle: None,
    })
    .encode(&mut out);
    out
}

/// Sleeps until a subscriber limited to `rate` frames per second since
/// `started` is due to read again (the slow-consumer mode, `max_rate`).
pub async fn pace(stats: &SubscriberStats, rate: f64, started: Instant) {
    let n = stats.frames.load(Ordering::Relaxed) as f64;
    let due = Duration::from_secs_f64(n / rate);
    let elapsed = started.elapsed();
    if due > elapsed + Duration::from_millis(2) {
        tokio::time::sleep(due - elapsed).await;
    }
}

/// Counts and checks one firehose frame (a whole binary message): every
/// subscriber peeks only the header and `seq` (`frame_peek`, unchecked);
/// checkers then decode the frame strictly.
pub fn handle(frame: &[u8], stats: &SubscriberStats, checker: &mut Checker) {
    stats.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
    let Ok(peeked) = peek(frame) else {
        stats.decode_errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if peeked.op == -1 {
        // Rare (once before a slow consumer is closed): decode it whole.
        if let Ok(Event::Error(e)) = Event::decode(frame) {
            if e.error == "ConsumerTooSlow" {
                stats.too_slow.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    stats.by_type[type_index(peeked.t)].fetch_add(1, Ordering::Relaxed);
    if let Some(seq) = peeked.seq {
        let last = stats.last_seq.load(Ordering::Relaxed);
        if last >= 0 {
            if seq > last + 1 {
                stats
                    .gaps
                    .fetch_add((seq - last - 1) as u64, Ordering::Relaxed);
            } else if seq <= last {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        stats.last_seq.store(seq, Ordering::Relaxed);
        // Only sequenced events count: an `#info` or error frame (say
        // ConsumerTooSlow before a reconnect) is not a delivery.
        stats.frames.fetch_add(1, Ordering::Relaxed);
    }
    if !stats.checker {
        return;
    }
    let now = emit_time::now_micros();
    let Ok((header, body)) = decode_header(frame) else {
        stats.decode_errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let event = match Event::decode_body(&header, body) {
        Ok(e) => e,
        Err(_) => {
            stats.decode_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if let Some(sent) = event.time().and_then(emit_time::emitted_at) {
        stats
            .latency
            .lock()
            .expect("latency lock")
            .record(now.saturating_sub(sent));
    }
    let rev = match &event {
        Event::Commit(c) => Some((c.repo, c.rev)),
        Event::Sync(s) => Some((s.did, s.rev)),
        _ => None,
    };
    if let Some((did, rev)) = rev {
        match checker.revs.get_mut(did) {
            Some(prev) if rev <= prev.as_str() => {
                stats.rev_violations.fetch_add(1, Ordering::Relaxed);
            }
            Some(prev) => {
                prev.clear();
                prev.push_str(rev);
            }
            None => {
                checker.revs.insert(did.to_owned(), rev.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atrelay::wire::frame::{ErrorFrame, Event};

    #[test]
    fn gaps_and_repeats_are_counted() {
        let stats = SubscriberStats::new(true);
        let mut checker = Checker::new();
        for seq in [1, 2, 3, 6, 6, 4, 7] {
            handle(&identity_frame(seq), &stats, &mut checker);
        }
        assert_eq!(
            stats.frames.load(Ordering::Relaxed),
            5,
            "repeats are not deliveries"
        );
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 2);
        assert_eq!(stats.duplicates.load(Ordering::Relaxed), 2);
        assert_eq!(stats.last_seq.load(Ordering::Relaxed), 7);
        assert_eq!(stats.by_type[1].load(Ordering::Relaxed), 7);
        handle(b"\xff\x00", &stats, &mut checker);
        assert_eq!(stats.decode_errors.load(Ordering::Relaxed), 1);
        // An error frame before a reconnect is counted as such, not as an event.
        let mut too_slow = Vec::new();
        Event::Error(ErrorFrame {
            error: "ConsumerTooSlow",
            message: None,
        })
        .encode(&mut too_slow);
        handle(&too_slow, &stats, &mut checker);
        assert_eq!(stats.too_slow.load(Ordering::Relaxed), 1);
        assert_eq!(stats.frames.load(Ordering::Relaxed), 5);
    }
}
