//! TIDs ("timestamp identifiers"): the sortable 64-bit ids atproto uses for record
//! keys and repository revisions (`rev`).
//!
//! Layout of the integer: bit 63 is always 0, the next 53 bits are microseconds
//! since the Unix epoch, the low 10 bits are a "clock id" that keeps ids from
//! different generators apart. The string form is always 13 characters of
//! base32-sortable (`234567abcdefghijklmnopqrstuvwxyz`, 5 bits per character, most
//! significant first, no padding), so string order equals numeric order and revs can
//! be compared either way.
//!
//! [`TidClock`] issues TIDs that only ever increase, which the protocol requires of
//! a repository's successive revs.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::syntax::{is_base32_sortable, SyntaxError, SyntaxKind, TID_LEN};
use crate::clock::now_micros;

/// The base32-sortable alphabet, in value order.
const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Bits of the clock id field.
const CLOCK_ID_BITS: u32 = 10;

/// Largest timestamp a TID can hold: 2^53 - 1 microseconds (about the year 2255).
pub const MAX_TIMESTAMP_MICROS: u64 = (1 << 53) - 1;

/// Largest clock id: 2^10 - 1.
pub const MAX_CLOCK_ID: u16 = (1 << CLOCK_ID_BITS) - 1;

/// Value of a base32-sortable character (the caller has checked membership).
#[inline]
fn char_value(b: u8) -> u64 {
    if b <= b'7' {
        u64::from(b - b'2')
    } else {
        u64::from(b - b'a') + 6
    }
}

/// A timestamp identifier. Ordering, equality and hashing are those of the integer,
/// which agree with the string form's byte order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tid(u64);

impl Tid {
    /// The smallest TID, `2222222222222` (integer 0).
    pub const MIN: Tid = Tid(0);
    /// The largest TID with the top bit clear, `bzzzzzzzzzzzz`.
    pub const MAX: Tid = Tid(u64::MAX >> 1);

    /// Builds a TID from a timestamp in microseconds since the Unix epoch and a clock
    /// id. Out-of-range inputs are truncated to their field widths (53 and 10 bits)
    /// rather than rejected, so this never fails; real clocks are far inside the range.
    pub const fn from_parts(micros: u64, clock_id: u16) -> Tid {
        Tid(((micros & MAX_TIMESTAMP_MICROS) << CLOCK_ID_BITS) | (clock_id & MAX_CLOCK_ID) as u64)
    }

    /// Parses the 13-character string form. Besides the syntax
    /// ([`validate_tid`](super::syntax::validate_tid)), requires the top bit to be 0,
    /// i.e. a first character in `234567ab`: the spec's regex admits `c`–`j`, but
    /// those encode integers with bit 63 set, which the spec says never happens.
    pub fn parse(s: &str) -> Result<Tid, SyntaxError> {
        let b = s.as_bytes();
        if b.len() != TID_LEN {
            return Err(SyntaxError::new(
                SyntaxKind::Tid,
                "must be exactly 13 characters",
            ));
        }
        let mut v = 0u64;
        for &c in b {
            if !is_base32_sortable(c) {
                return Err(SyntaxError::new(
                    SyntaxKind::Tid,
                    "may only contain the base32-sortable characters 234567a-z",
                ));
            }
            // The first character carries 5 bits of which only 4 fit; its value
            // must stay below 8 for the top bit to be 0 (checked below).
            v = (v << 5) | char_value(c);
        }
        if char_value(b[0]) >= 8 {
            return Err(SyntaxError::new(
                SyntaxKind::Tid,
                "top bit set (first character must be one of 234567ab)",
            ));
        }
        Ok(Tid(v))
    }

    /// Microseconds since the Unix epoch (the 53 timestamp bits).
    pub const fn timestamp_micros(self) -> u64 {
        self.0 >> CLOCK_ID_BITS
    }

    /// The 10-bit clock id.
    pub const fn clock_id(self) -> u16 {
        (self.0 & MAX_CLOCK_ID as u64) as u16
    }

    /// The integer form.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// A TID from its integer form; `None` if the top bit is set, which no TID has.
    pub const fn from_u64(v: u64) -> Option<Tid> {
        if v >> 63 == 0 {
            Some(Tid(v))
        } else {
            None
        }
    }

    /// The 13-character string form as ASCII bytes, without allocating.
    pub fn encode(self) -> [u8; TID_LEN] {
        let mut out = [0u8; TID_LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (TID_LEN - 1 - i);
            *slot = ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        out
    }
}

impl fmt::Display for Tid {
    /// Writes the 13-character base32-sortable form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.encode();
        // Every byte comes from ALPHABET, so this is always ASCII.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Tid {
    /// `Tid("3jzfcijpj2z2a")`: the string form is what people recognize.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tid(\"{self}\")")
    }
}

impl FromStr for Tid {
    type Err = SyntaxError;

    /// Same as [`Tid::parse`].
    fn from_str(s: &str) -> Result<Tid, SyntaxError> {
        Tid::parse(s)
    }
}

/// Marks "nothing issued yet"; no TID has bit 63 set, so it cannot collide.
const NONE_ISSUED: u64 = u64::MAX;

/// A monotonic TID generator, safe to share between threads.
///
/// Every TID it issues is strictly greater than every TID it issued before, even
/// when several are requested within one microsecond or the system clock steps
/// back: the timestamp is the current time or one microsecond past the last issued
/// one, whichever is later. The clock id is fixed per generator (random by
/// default), so two generators rarely collide even at the same instant.
///
/// The one exception to strict increase is saturation: a generator that has reached
/// [`MAX_TIMESTAMP_MICROS`] (about the year 2255, or after [`next_after`](Self::next_after)
/// with a forged maximal TID) keeps returning that value.
#[derive(Debug)]
pub struct TidClock {
    /// The integer form of the last TID issued, or [`NONE_ISSUED`].
    last: AtomicU64,
    clock_id: u16,
}

impl Default for TidClock {
    /// Same as [`TidClock::new`].
    fn default() -> Self {
        TidClock::new()
    }
}

impl TidClock {
    /// A generator with a random clock id.
    pub fn new() -> TidClock {
        TidClock::with_clock_id(rand::random::<u16>())
    }

    /// A generator with the given clock id (truncated to 10 bits); for tests and for
    /// services that assign clock ids themselves.
    pub fn with_clock_id(clock_id: u16) -> TidClock {
        TidClock {
            last: AtomicU64::new(NONE_ISSUED),
            clock_id: clock_id & MAX_CLOCK_ID,
        }
    }

    /// This generator's clock id.
    pub fn clock_id(&self) -> u16 {
        self.clock_id
    }

    /// The next TID, from the system clock.
    pub fn next(&self) -> Tid {
        self.issue(now_micros(), None)
    }

    /// The next TID, strictly greater than `prev` as well as everything issued
    /// before: for a repository's new rev, which must exceed its previous rev even
    /// if that came from another generator or a clock that ran ahead.
    pub fn next_after(&self, prev: Tid) -> Tid {
        self.issue(now_micros(), Some(prev))
    }

    /// The next TID as if the current time were `now_micros`: for callers that keep
    /// their own clock, and for testing behaviour under clock steps.
    pub fn next_at(&self, now_micros: u64) -> Tid {
        self.issue(now_micros, None)
    }

    fn issue(&self, now_micros: u64, floor: Option<Tid>) -> Tid {
        // Only this one atomic is involved, and read-modify-write operations on it
        // are totally ordered whatever the ordering argument, so Relaxed suffices.
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let mut ts = now_micros;
            if last != NONE_ISSUED {
                ts = ts.max(Tid(last).timestamp_micros().saturating_add(1));
            }
            if let Some(prev) = floor {
                ts = ts.max(prev.timestamp_micros().saturating_add(1));
            }
            let next = Tid::from_parts(ts.min(MAX_TIMESTAMP_MICROS), self.clock_id);
            match self.last.compare_exchange_weak(
                last,
                next.0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::syntax::parse_datetime;

    #[test]
    fn known_values() {
        let t = Tid::parse("3jzfcijpj2z2a").unwrap();
        let micros = parse_datetime("2023-06-30T15:03:01.887007Z").unwrap();
        assert_eq!(t.timestamp_micros() as i64, micros);
        assert_eq!(t.clock_id(), 6);
        let t = Tid::parse("3lmxrbvasth2t").unwrap();
        let micros = parse_datetime("2025-04-16T23:40:33.54Z").unwrap();
        assert_eq!(t.timestamp_micros() / 10_000, micros as u64 / 10_000);
        assert_eq!(Tid::parse("2222222222222"), Ok(Tid::MIN));
        assert_eq!(Tid::MIN.as_u64(), 0);
        assert_eq!(Tid::MAX.to_string(), "bzzzzzzzzzzzz");
        assert_eq!(Tid::parse("bzzzzzzzzzzzz"), Ok(Tid::MAX));
        assert_eq!(
            Tid::from_parts(MAX_TIMESTAMP_MICROS, MAX_CLOCK_ID),
            Tid::MAX
        );
        assert_eq!(format!("{:?}", Tid::MIN), "Tid(\"2222222222222\")");
    }

    #[test]
    fn round_trips() {
        for s in [
            "3jzfcijpj2z2a",
            "7777777777777",
            "3zzzzzzzzzzzz",
            "2222222222222",
        ] {
            let t: Tid = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
            assert_eq!(Tid::from_u64(t.as_u64()), Some(t));
            assert_eq!(Tid::from_parts(t.timestamp_micros(), t.clock_id()), t);
        }
        assert_eq!(Tid::from_u64(1 << 63), None);
    }

    #[test]
    fn rejects() {
        for bad in [
            "c222222222222",
            "jzzzzzzzzzzzz",
            "kjzfcijpj2z2a",
            "3jzfcijpj2z2",
            "3JZFCIJPJ2Z2A",
            "3jzfcijpj2z21",
        ] {
            assert!(Tid::parse(bad).is_err(), "{bad}");
        }
        // c–j pass the spec regex but not Tid::parse
        assert!(crate::wire::syntax::validate_tid("c222222222222").is_ok());
    }

    #[test]
    fn string_order_is_numeric_order() {
        let mut tids: Vec<Tid> = (0..200u64)
            .map(|i| {
                Tid::from_parts(
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11,
                    (i % 1024) as u16,
                )
            })
            .collect();
        let mut strings: Vec<String> = tids.iter().map(Tid::to_string).collect();
        tids.sort();
        strings.sort();
        let sorted: Vec<String> = tids.iter().map(Tid::to_string).collect();
        assert_eq!(sorted, strings);
    }

    #[test]
    fn from_parts_truncates() {
        let t = Tid::from_parts(u64::MAX, u16::MAX);
        assert_eq!(t, Tid::MAX);
        assert_eq!(Tid::from_parts(5, 1024 + 3).clock_id(), 3);
    }

    #[test]
    fn clock_is_monotonic_across_steps_back() {
        let clock = TidClock::with_clock_id(7);
        let a = clock.next_at(1_000_000);
        let b = clock.next_at(1_000_000); // same microsecond
        let c = clock.next_at(500_000); // clock stepped back
        let d = clock.next_at(2_000_000);
        assert!(a < b && b < c && c < d, "{a:?} {b:?} {c:?} {d:?}");
        assert_eq!(a.timestamp_micros(), 1_000_000);
        assert_eq!(c.timestamp_micros(), 1_000_002);
        assert_eq!(d.timestamp_micros(), 2_000_000);
        assert!(a.clock_id() == 7 && d.clock_id() == 7);
        // prev from elsewhere, ahead of us
        let prev = Tid::from_parts(5_000_000, 1000);
        let e = clock.next_after(prev);
        assert!(e > prev && e > d);
        assert!(clock.next_at(0) > e);
    }

    #[test]
    fn clock_saturates_without_panicking() {
        let clock = TidClock::with_clock_id(1);
        let t = clock.next_after(Tid::MAX);
        assert_eq!(t.timestamp_micros(), MAX_TIMESTAMP_MICROS);
        assert_eq!(clock.next(), t);
    }

    #[test]
    fn clock_is_unique_across_threads() {
        let clock = TidClock::new();
        let mut all: Vec<Tid> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..2000).map(|_| clock.next()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(all.iter().all(|t| t.clock_id() == clock.clock_id()));
    }
}
