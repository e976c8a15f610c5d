//! Capped exponential backoff with jitter, for every retry loop that talks
//! to another machine (upstream reconnects, identity lookups, accept errors).

use std::time::Duration;

/// The wait before attempt `failures + 1`: 0.5 s, 1 s, 2 s, … doubling per
/// failure up to `max`, each ±25% at random so that many clients failing
/// together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use atrelay::net::backoff;
/// let max = Duration::from_secs(60);
/// assert!(backoff(1, max) <= Duration::from_millis(625));
/// assert!(backoff(100, max) <= Duration::from_secs(75));
/// ```
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1u32 << failures.min(16).saturating_sub(1))
        .min(max);
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let max = Duration::from_secs(60);
        assert!(backoff(1, max) <= Duration::from_millis(625));
        assert!(backoff(5, max) >= Duration::from_secs(6));
        for f in [20, 1000] {
            assert!(backoff(f, max) <= Duration::from_secs(75));
        }
    }
}
