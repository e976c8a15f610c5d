//! The control plane's clock: wall time that tests can move forward.
//!
//! Budgets reset at the top of each UTC hour and day. A test that floods a
//! host past its hourly budget must see the window reset without waiting an
//! hour, so every budget decision and every "paused until" sleep reads this
//! clock instead of the system's. [`Clock::advance`] shifts it and wakes the
//! sleepers, which re-check their deadline against the new time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Wall-clock time plus an offset only tests change. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    offset_micros: AtomicI64,
    changed: tokio::sync::Notify,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Microseconds since the Unix epoch, as this clock tells it.
    pub fn now_micros(&self) -> u64 {
        let real = crate::clock::now_micros() as i64;
        real.saturating_add(self.inner.offset_micros.load(Ordering::Relaxed))
            .max(0) as u64
    }

    /// Moves this clock (and every clone) forward by `by` and wakes every
    /// [`Clock::sleep_until`]. For tests.
    pub fn advance(&self, by: Duration) {
        self.inner
            .offset_micros
            .fetch_add(by.as_micros() as i64, Ordering::Relaxed);
        self.inner.changed.notify_waiters();
    }

    /// Sleeps until this clock reads at least `deadline_micros`. Wakes early
    /// when the clock is advanced, and re-checks at least once a second, so a
    /// changed deadline source (an operator raising a budget) is seen soon.
    pub async fn sleep_until(&self, deadline_micros: u64) {
        loop {
            // Registered before reading the time, so an advance in between
            // still wakes this turn.
            let changed = self.inner.changed.notified();
            let now = self.now_micros();
            if now >= deadline_micros {
                return;
            }
            let left = Duration::from_micros(deadline_micros - now).min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(left) => {}
                _ = changed => {}
            }
        }
    }
}

/// The clock as governor's rate limiters read it: time since the epoch.
impl governor::clock::Clock for Clock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_micros(self.now_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn advancing_wakes_sleepers() {
        let clock = Clock::system();
        let later = clock.now_micros() + 3_600_000_000;
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(later).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(3600));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken by advance")
            .unwrap();
        assert!(clock.now_micros() >= later);
    }
}
