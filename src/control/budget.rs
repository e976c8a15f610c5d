//! One host's event budget: a per-second pace and hourly and daily windows.
//!
//! The hourly and daily budgets are fixed windows aligned to the UTC hour and
//! day, as the early-access network describes them: past the budget "we stop
//! crawling the PDS until the rate limit period resets". A token bucket (GCRA)
//! would instead let an over-budget host trickle on at its average rate and
//! never say when it may send again. The per-second limit is a pace, not a
//! pause, and there governor's GCRA is exactly right: the crawler waits the
//! few milliseconds it names and reads on.
//!
//! The crawler asks [`HostBudget::admit`] before dispatching each event. An
//! event refused with [`Admit::Throttled`] is not dispatched and the
//! upstream cursor stays before it, so the upstream sends it again when the
//! crawler resumes: a budget never loses an event.

use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Serialize;

use super::clock::Clock;
use super::limits::Limits;

const HOUR_MICROS: u64 = 3_600_000_000;
const DAY_MICROS: u64 = 24 * HOUR_MICROS;

type Pacer = RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<Duration>>;

/// What the crawler may do with the next event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Dispatch it (it has been counted).
    Go,
    /// Wait this long, then ask again (per-second pace).
    Pace(Duration),
    /// A window's budget is spent: stop reading until `until_micros`.
    Throttled {
        until_micros: u64,
        window: &'static str,
    },
}

/// A host's budget use, for the admin API and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub limits: Limits,
    /// Events counted in the current UTC hour and day.
    pub hour_count: u64,
    pub day_count: u64,
    /// When the current windows end (Unix micros).
    pub hour_resets_micros: u64,
    pub day_resets_micros: u64,
    /// Set while a window's budget is spent: when reading resumes.
    pub throttled_until_micros: Option<u64>,
}

/// One host's budget state.
pub struct HostBudget {
    clock: Clock,
    state: Mutex<State>,
}

struct State {
    limits: Limits,
    hour: Window,
    day: Window,
    pacer: Option<Pacer>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
struct Window {
    start_micros: u64,
    count: u64,
}

/// The hourly and daily windows' counts, persisted so a restart does not
/// hand every host a fresh budget in the middle of a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Windows {
    hour: Window,
    day: Window,
}

impl Window {
    /// Starts a new window if `now` has left this one.
    fn roll(&mut self, now: u64, len: u64) {
        let start = now - now % len;
        if start != self.start_micros {
            self.start_micros = start;
            self.count = 0;
        }
    }

    /// Whether the window's budget is spent (`limit` 0 = none).
    fn spent(&self, limit: u64) -> bool {
        limit > 0 && self.count >= limit
    }
}

impl std::fmt::Debug for HostBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HostBudget").field(&self.usage()).finish()
    }
}

impl HostBudget {
    /// A budget under `limits`, reading `clock`.
    pub fn new(limits: Limits, clock: Clock) -> HostBudget {
        let pacer = pacer(limits.per_second, &clock);
        HostBudget {
            clock,
            state: Mutex::new(State {
                limits,
                hour: Window::default(),
                day: Window::default(),
                pacer,
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.lock().limits
    }

    /// Replaces the limits; counts in the current windows are kept, so
    /// raising a budget lets a throttled host resume at once.
    pub fn set_limits(&self, limits: Limits) {
        let mut s = self.lock();
        if s.limits.per_second != limits.per_second {
            s.pacer = pacer(limits.per_second, &self.clock);
        }
        s.limits = limits;
    }

    /// Asks to dispatch one event now; counts it when the answer is
    /// [`Admit::Go`].
    pub fn admit(&self) -> Admit {
        let now = self.clock.now_micros();
        let mut s = self.lock();
        if let Some((until_micros, window)) = s.throttled(now) {
            return Admit::Throttled {
                until_micros,
                window,
            };
        }
        if let Some(pacer) = &s.pacer {
            if let Err(not_until) = pacer.check() {
                let wait = not_until.wait_time_from(Duration::from_micros(now));
                return Admit::Pace(wait.max(Duration::from_millis(1)));
            }
        }
        s.hour.count += 1;
        s.day.count += 1;
        Admit::Go
    }

    /// When reading may resume, if a window's budget is spent now.
    pub fn throttled_until(&self) -> Option<u64> {
        let now = self.clock.now_micros();
        self.lock().throttled(now).map(|(until, _)| until)
    }

    /// The windows' counts, to persist.
    pub fn windows(&self) -> Windows {
        let s = self.lock();
        Windows {
            hour: s.hour,
            day: s.day,
        }
    }

    /// Restores persisted counts (windows that have ended since are reset
    /// on the next decision).
    pub fn restore(&self, w: Windows) {
        let mut s = self.lock();
        s.hour = w.hour;
        s.day = w.day;
    }

    /// Current use, for display.
    pub fn usage(&self) -> Usage {
        let now = self.clock.now_micros();
        let mut s = self.lock();
        let throttled_until_micros = s.throttled(now).map(|(until, _)| until);
        Usage {
            limits: s.limits,
            hour_count: s.hour.count,
            day_count: s.day.count,
            hour_resets_micros: s.hour.start_micros + HOUR_MICROS,
            day_resets_micros: s.day.start_micros + DAY_MICROS,
            throttled_until_micros,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Rolls the windows to `now`; the later reset among spent windows.
    fn throttled(&mut self, now: u64) -> Option<(u64, &'static str)> {
        self.hour.roll(now, HOUR_MICROS);
        self.day.roll(now, DAY_MICROS);
        if self.day.spent(self.limits.per_day) {
            Some((self.day.start_micros + DAY_MICROS, "day"))
        } else if self.hour.spent(self.limits.per_hour) {
            Some((self.hour.start_micros + HOUR_MICROS, "hour"))
        } else {
            None
        }
    }
}

fn pacer(per_second: u64, clock: &Clock) -> Option<Pacer> {
    let n = NonZeroU32::new(per_second.min(u32::MAX as u64) as u32)?;
    Some(RateLimiter::direct_with_clock(
        Quota::per_second(n),
        clock.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_hour: u64, per_day: u64) -> Limits {
        Limits {
            accounts: 0,
            per_second: 0,
            per_hour,
            per_day,
        }
    }

    #[test]
    fn hourly_budget_throttles_until_the_top_of_the_hour() {
        let clock = Clock::system();
        let b = HostBudget::new(limits(3, 0), clock.clone());
        for _ in 0..3 {
            assert_eq!(b.admit(), Admit::Go);
        }
        let Admit::Throttled {
            until_micros,
            window,
        } = b.admit()
        else {
            panic!("budget spent")
        };
        assert_eq!(window, "hour");
        assert_eq!(
            until_micros % HOUR_MICROS,
            0,
            "resets at the top of the hour"
        );
        assert!(until_micros > clock.now_micros());
        assert_eq!(b.usage().hour_count, 3, "refused events are not counted");
        clock.advance(Duration::from_micros(until_micros - clock.now_micros()));
        assert_eq!(b.throttled_until(), None);
        assert_eq!(b.admit(), Admit::Go);
    }

    #[test]
    fn restored_windows_keep_their_counts_until_they_end() {
        let clock = Clock::system();
        let b = HostBudget::new(limits(2, 0), clock.clone());
        b.admit();
        b.admit();
        let saved = b.windows();
        let json = serde_json::to_string(&saved).unwrap();
        let again = HostBudget::new(limits(2, 0), clock.clone());
        again.restore(serde_json::from_str(&json).unwrap());
        assert!(
            again.throttled_until().is_some(),
            "still spent after a restart"
        );
        clock.advance(Duration::from_secs(3600));
        assert_eq!(again.admit(), Admit::Go);
    }

    #[test]
    fn raising_the_limit_lifts_the_throttle() {
        let b = HostBudget::new(limits(1, 0), Clock::system());
        assert_eq!(b.admit(), Admit::Go);
        assert!(b.throttled_until().is_some());
        b.set_limits(limits(10, 0));
        assert_eq!(b.admit(), Admit::Go);
    }

    #[test]
    fn daily_budget_wins_over_hourly() {
        let clock = Clock::system();
        let b = HostBudget::new(limits(100, 2), clock.clone());
        b.admit();
        b.admit();
        let Admit::Throttled { window, .. } = b.admit() else {
            panic!()
        };
        assert_eq!(window, "day");
        // A new hour does not help; a new day does.
        clock.advance(Duration::from_secs(3600));
        assert!(b.throttled_until().is_some());
        clock.advance(Duration::from_secs(24 * 3600));
        assert_eq!(b.admit(), Admit::Go);
    }

    #[test]
    fn per_second_paces_without_counting() {
        let clock = Clock::system();
        let b = HostBudget::new(
            Limits {
                per_second: 2,
                ..limits(0, 0)
            },
            clock.clone(),
        );
        assert_eq!(b.admit(), Admit::Go);
        assert_eq!(b.admit(), Admit::Go);
        let Admit::Pace(wait) = b.admit() else {
            panic!("third event within the second waits")
        };
        assert!(wait <= Duration::from_secs(1));
        assert_eq!(b.usage().hour_count, 2);
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.admit(), Admit::Go);
    }
}
