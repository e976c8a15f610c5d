//! One clock: the wall time every layer stamps events, revs and deadlines with.
//!
//! It sits at the ground of the crate (it imports nothing of it) so `wire`'s
//! TID generator, the verifier, the stores and the load generator all read
//! the same function instead of writing their own. Code that must be moved
//! forward in tests takes the time as a parameter, or reads the control
//! plane's `control::clock::Clock`, which adds its test offset to this one.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch: 0 if the system clock is set before
/// the epoch, `u64::MAX` past the year 586,000.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
