//! Waking caught-up sessions when the ring publishes: at once while few
//! wait, at most once per short shared tick when many do.
//!
//! ```
//! use std::time::Duration;
//! use atrelay::fanout::Coalescing;
//!
//! let c = Coalescing::default(); // 10 ms, 20,000 writes per second
//! // 20 sessions waiting: a wake at most every millisecond (events further
//! // apart than that wake them at once).
//! assert_eq!(c.interval(20), Duration::from_millis(1));
//! // 100 waiting: at most one wake per 5 ms.
//! assert_eq!(c.interval(100), Duration::from_millis(5));
//! // 1,000 waiting: at most one per 10 ms, the bound on added latency.
//! assert_eq!(c.interval(1_000), Duration::from_millis(10));
//! ```
//!
//! # Why
//!
//! Every wake-up costs every waiting session a task wake, a poll and a
//! socket write, and on loopback or a LAN that write (the kernel's TCP work
//! for both ends) is most of a delivery's cost whether it carries one frame
//! or twenty. Measured through the real binary, waking every session for
//! every event made a delivery cost 5 to 15 µs at live rates against 0.5 µs
//! in big batches (BENCHMARKS.md, "Fan-out at live rate"). So the number of
//! wakes, not the number of events, is what to bound.
//!
//! The rule: wakes are at least [`Coalescing::interval`] apart, an interval
//! that grows with the number of waiting sessions so that
//! `waiting × wakes per second` stays near [`Coalescing::writes_per_sec`],
//! and never exceeds [`Coalescing::max_delay`]. A publish that comes at
//! least an interval after the previous wake wakes at once: with few
//! subscribers, or events further apart than the interval, nothing is
//! delayed. Otherwise the wake is deferred to the end of the interval and
//! carries every event published meanwhile, so each session writes them
//! with one vectored write. The added latency is at most the interval.
//!
//! Deferred wakes are done by one small thread per ring (`fanout-wake`),
//! started the first time a wake is deferred: the publisher (the
//! sequencer) never waits or sleeps, and no session arms a timer of its own
//! per event (a per-session timer was `fanout.linger_ms`, which saved 4–21%;
//! this saves the wakes themselves).

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam::utils::CachePadded;
use tokio::sync::Notify;

use super::metrics;

/// How wakes are coalesced; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coalescing {
    /// The longest a wake is deferred (the bound on added latency);
    /// `ZERO` wakes on every publish.
    pub max_delay: Duration,
    /// Socket writes per second the caught-up sessions together aim to stay
    /// near: the interval between wakes is `waiting / writes_per_sec`,
    /// capped at `max_delay`. 0 means "always `max_delay`".
    pub writes_per_sec: u64,
}

impl Coalescing {
    /// Wake on every publish: no added latency, one write per session per
    /// publish.
    pub const OFF: Coalescing = Coalescing {
        max_delay: Duration::ZERO,
        writes_per_sec: 0,
    };

    /// The shortest time between two wakes while `waiting` sessions wait.
    pub fn interval(&self, waiting: usize) -> Duration {
        if self.max_delay.is_zero() {
            return Duration::ZERO;
        }
        if self.writes_per_sec == 0 {
            return self.max_delay;
        }
        let nanos = (waiting as u128 * 1_000_000_000) / u128::from(self.writes_per_sec);
        Duration::from_nanos(nanos.min(self.max_delay.as_nanos()) as u64)
    }
}

impl Default for Coalescing {
    /// The relay's defaults: at most 10 ms added, aiming at 20,000 writes
    /// per second, so the interval grows with the subscribers: 1 ms at 20
    /// waiting, 5 ms at 100, the 10 ms bound from 200. Measured
    /// (BENCHMARKS.md, "Fan-out at live rate"): at 100 subscribers the
    /// 5 ms interval cut the relay's CPU per event by 31–48% at 500–2,000
    /// events/s against no coalescing, for a p50 of 3.6 ms (10 ms there put
    /// p50 at 6.2 ms); at 1,000 subscribers 10 ms cost 4.04 / 1.13 µs per
    /// delivery at 200 / 1,000 events/s against 5.26 / 1.24 at 5 ms
    /// (`cargo bench --bench fanout_live`).
    fn default() -> Coalescing {
        Coalescing {
            max_delay: Duration::from_millis(10),
            writes_per_sec: 20_000,
        }
    }
}

/// The wake-up side of a ring: the waiters' count, the `Notify` they sleep
/// on, and the deferred-wake state.
pub(crate) struct Wakeup {
    /// How many tasks are inside `Ring::wait_beyond`. Lets a publish skip
    /// the `Notify` (which takes a mutex) when nobody is waiting — the
    /// common case under load, when every subscriber is busy writing.
    pub(crate) waiting: CachePadded<AtomicUsize>,
    pub(crate) notify: Notify,
    /// `Coalescing::max_delay` in nanoseconds (0: off) and
    /// `Coalescing::writes_per_sec`, read per publish.
    max_delay_nanos: AtomicU64,
    writes_per_sec: AtomicU64,
    /// Nanoseconds after `epoch` of the last wake.
    last_wake: AtomicU64,
    /// A deferred wake is due (the waker thread will do it).
    pending: AtomicBool,
    epoch: Instant,
    /// The waker thread, once started.
    thread: Mutex<Option<Thread>>,
    /// Wakes done at once / deferred (for the metrics).
    pub(crate) wakes_immediate: AtomicU64,
    pub(crate) wakes_deferred: AtomicU64,
}

impl Wakeup {
    pub(crate) fn new(coalescing: Coalescing) -> Wakeup {
        Wakeup {
            waiting: CachePadded::new(AtomicUsize::new(0)),
            notify: Notify::new(),
            max_delay_nanos: AtomicU64::new(coalescing.max_delay.as_nanos() as u64),
            writes_per_sec: AtomicU64::new(coalescing.writes_per_sec),
            last_wake: AtomicU64::new(0),
            pending: AtomicBool::new(false),
            epoch: Instant::now(),
            thread: Mutex::new(None),
            wakes_immediate: AtomicU64::new(0),
            wakes_deferred: AtomicU64::new(0),
        }
    }

    /// Changes the policy; takes effect from the next publish.
    pub(crate) fn set(&self, coalescing: Coalescing) {
        self.writes_per_sec
            .store(coalescing.writes_per_sec, Ordering::Relaxed);
        self.max_delay_nanos
            .store(coalescing.max_delay.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Coalescing {
        Coalescing {
            max_delay: Duration::from_nanos(self.max_delay_nanos.load(Ordering::Relaxed)),
            writes_per_sec: self.writes_per_sec.load(Ordering::Relaxed),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Called by the publisher after the head moved. `this` is the `Arc`
    /// holding `self`, so the waker thread can hold a `Weak` to it.
    ///
    /// No lost wake-up: the head store comes before the `waiting` load
    /// (both SeqCst, paired with `wait_beyond`'s increment and re-check);
    /// a deferred wake is done after `pending` is cleared, so a publish
    /// that sees `pending` still set is covered by that wake, which reads
    /// the head after it.
    pub(crate) fn published(this: &Arc<Wakeup>) {
        let waiting = this.waiting.load(Ordering::SeqCst);
        if waiting == 0 {
            return;
        }
        if this.max_delay_nanos.load(Ordering::Relaxed) == 0 {
            this.wake_now();
            return;
        }
        if this.pending.load(Ordering::SeqCst) {
            return; // the deferred wake will carry this publish too
        }
        let interval = this.get().interval(waiting).as_nanos() as u64;
        let now = this.now();
        let last = this.last_wake.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= interval {
            this.last_wake.store(now, Ordering::Relaxed);
            this.wake_now();
            return;
        }
        if !this.pending.swap(true, Ordering::SeqCst) {
            this.defer();
        }
    }

    /// Wakes every waiter now.
    fn wake_now(&self) {
        self.wakes_immediate.fetch_add(1, Ordering::Relaxed);
        metrics::ring_woken(metrics::WAKE_AT_PUBLISH);
        self.notify.notify_waiters();
    }

    /// Hands a deferred wake to the waker thread, starting it on first use.
    /// If it cannot be started, coalescing is turned off and the waiters
    /// are woken now, so no wake is ever lost.
    fn defer(self: &Arc<Wakeup>) {
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let weak = Arc::downgrade(self);
            match std::thread::Builder::new()
                .name("fanout-wake".into())
                .spawn(move || run_waker(weak))
            {
                Ok(handle) => *slot = Some(handle.thread().clone()),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start the fan-out waker thread; coalescing off");
                    self.max_delay_nanos.store(0, Ordering::Relaxed);
                    self.pending.store(false, Ordering::SeqCst);
                    self.wake_now();
                    return;
                }
            }
        }
        if let Some(t) = slot.as_ref() {
            t.unpark();
        }
    }
}

impl Drop for Wakeup {
    /// The ring is gone: the waker thread, holding only a `Weak`, finds
    /// nothing to upgrade once unparked (or once its sleep ends) and exits.
    fn drop(&mut self) {
        let slot = self.thread.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = slot.as_ref() {
            t.unpark();
        }
    }
}

/// The waker thread: sleeps until a wake is pending, then until the
/// interval since the last wake has passed, then wakes every waiter.
/// Exits once the ring is gone.
fn run_waker(weak: Weak<Wakeup>) {
    loop {
        let Some(w) = weak.upgrade() else { return };
        if !w.pending.load(Ordering::SeqCst) {
            drop(w);
            std::thread::park();
            continue;
        }
        let waiting = w.waiting.load(Ordering::Relaxed);
        let interval = w.get().interval(waiting).as_nanos() as u64;
        let due = w.last_wake.load(Ordering::Relaxed) + interval;
        let now = w.now();
        if now < due {
            drop(w);
            std::thread::sleep(Duration::from_nanos(due - now));
            continue;
        }
        w.last_wake.store(now, Ordering::Relaxed);
        w.pending.store(false, Ordering::SeqCst);
        w.wakes_deferred.fetch_add(1, Ordering::Relaxed);
        metrics::ring_woken(metrics::WAKE_DEFERRED);
        w.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_grows_with_waiters_up_to_the_bound() {
        let c = Coalescing {
            max_delay: Duration::from_millis(10),
            writes_per_sec: 100_000,
        };
        assert_eq!(c.interval(0), Duration::ZERO);
        assert_eq!(c.interval(1), Duration::from_micros(10));
        assert_eq!(c.interval(100), Duration::from_millis(1));
        assert_eq!(c.interval(5_000), Duration::from_millis(10));
        assert_eq!(Coalescing::OFF.interval(1_000_000), Duration::ZERO);
        let always = Coalescing {
            max_delay: Duration::from_millis(3),
            writes_per_sec: 0,
        };
        assert_eq!(always.interval(1), Duration::from_millis(3));
    }
}
