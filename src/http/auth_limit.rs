//! Limits on failed authentication attempts: per client address for the
//! admin APIs, per client address *and* per account for PDS logins.
//!
//! ```
//! use std::time::Duration;
//! use atrelay::http::auth_limit::AttemptLimiter;
//! // 3 failures at once, then one more every 10 s.
//! let limit = AttemptLimiter::new(3, Duration::from_secs(10));
//! for _ in 0..3 {
//!     limit.take(&"1.2.3.4").unwrap(); // an attempt that then failed
//! }
//! let refused = limit.take(&"1.2.3.4").unwrap_err();
//! assert!(refused.wait > Duration::from_secs(9));
//! limit.take(&"5.6.7.8").unwrap(); // other keys are not affected
//! ```
//!
//! Why not `governor`, which limits `requestCrawl`: an attempt has to be
//! counted from the moment it *starts* (a password check takes ~0.45 s, and
//! thirty guesses sent at once would all be checked before the first failure
//! were recorded), and a successful one has to be *given back*, so logging in
//! correctly never uses up anyone's budget. A `governor` cell cannot be
//! returned. The rule is the same GCRA: each key has a time at which its
//! budget is whole again; an attempt moves it one `period` later and is
//! refused if that would put it more than `burst` periods ahead of now.
//! Refused attempts cost nothing and move nothing.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;

use super::XrpcError;

/// Failed admin-API authentications one client address may make at once,
/// and how often it regains one ([`ADMIN_FAILURE_PERIOD`]).
pub const ADMIN_FAILURE_BURST: u32 = 10;
/// See [`ADMIN_FAILURE_BURST`]: 2 a minute after the burst.
pub const ADMIN_FAILURE_PERIOD: Duration = Duration::from_secs(30);

/// Failed logins (PDS `createSession`) one client address may make at once.
/// With at most two password checks running at a time (~0.45 s each), a
/// burst from one address delays another address's login by at most three
/// checks.
pub const LOGIN_FAILURE_BURST_PER_ADDRESS: u32 = 5;
/// See [`LOGIN_FAILURE_BURST_PER_ADDRESS`]: 5 a minute after the burst.
pub const LOGIN_FAILURE_PERIOD_PER_ADDRESS: Duration = Duration::from_secs(12);
/// Failed logins to one account, from any addresses, at once. Higher than
/// the per-address burst: an attacker spread over many addresses can keep an
/// account locked, so the lock should not come from a few typos.
pub const LOGIN_FAILURE_BURST_PER_ACCOUNT: u32 = 10;
/// See [`LOGIN_FAILURE_BURST_PER_ACCOUNT`]: one a minute after the burst.
pub const LOGIN_FAILURE_PERIOD_PER_ACCOUNT: Duration = Duration::from_secs(60);

/// Attempts allowed per key: `burst` at once, then one every `period`.
#[derive(Debug)]
pub struct AttemptLimiter<K: Eq + Hash> {
    burst: u32,
    period: Duration,
    keys: DashMap<K, KeyState>,
    /// Takes so far; every 1,024th also forgets keys whose budget is whole,
    /// so the map holds only keys that failed recently.
    takes: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
struct KeyState {
    /// When the key's budget is whole again.
    full_at: Instant,
    /// Whether a refusal was already reported since the last allowed take.
    refusal_reported: bool,
}

/// An attempt refused by an [`AttemptLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// How long until an attempt would be allowed.
    pub wait: Duration,
    /// Whether this is the first refusal since the key was last allowed an
    /// attempt: log it then, not for each refusal (a guesser that keeps
    /// going must not flood the log).
    pub first: bool,
}

impl<K: Eq + Hash + Clone> AttemptLimiter<K> {
    /// `burst` attempts at once, then one every `period` (both at least 1).
    pub fn new(burst: u32, period: Duration) -> AttemptLimiter<K> {
        AttemptLimiter {
            burst: burst.max(1),
            period: period.max(Duration::from_millis(1)),
            keys: DashMap::new(),
            takes: AtomicU64::new(0),
        }
    }

    /// Takes one attempt for `key`, or refuses it (taking nothing) if the
    /// key's budget is spent. An attempt that then succeeds should be
    /// [given back](Self::give_back).
    pub fn take(&self, key: &K) -> Result<(), Refused> {
        let now = Instant::now();
        if self.takes.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            self.retain_recent();
        }
        let horizon = now + self.period * self.burst;
        let mut state = self.keys.entry(key.clone()).or_insert(KeyState {
            full_at: now,
            refusal_reported: false,
        });
        let next = state.full_at.max(now) + self.period;
        if next > horizon {
            let first = !state.refusal_reported;
            state.refusal_reported = true;
            return Err(Refused {
                wait: next - horizon,
                first,
            });
        }
        state.full_at = next;
        state.refusal_reported = false;
        Ok(())
    }

    /// Returns an attempt [taken](Self::take) for `key` that succeeded.
    pub fn give_back(&self, key: &K) {
        if let Some(mut state) = self.keys.get_mut(key) {
            state.full_at = state
                .full_at
                .checked_sub(self.period)
                .unwrap_or(state.full_at);
        }
    }

    /// Forgets the keys whose budget is whole again.
    pub fn retain_recent(&self) {
        let now = Instant::now();
        self.keys.retain(|_, s| s.full_at > now);
    }

    /// Keys currently remembered (tests, diagnostics).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The key a client address is limited under: an IPv4 address (also when it
/// arrives IPv4-mapped), or an IPv6 address's /64 network, since one host
/// commonly holds a whole /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Which limit refused a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Too many failed logins from the client's address.
    Address(Refused),
    /// Too many failed logins to the account.
    Account(Refused),
}

impl LoginRefused {
    /// Whether this is the first refusal of its key since it was last
    /// allowed an attempt (log it then).
    pub fn first(&self) -> bool {
        match self {
            LoginRefused::Address(r) | LoginRefused::Account(r) => r.first,
        }
    }

    /// The 429 answer.
    pub fn response(&self) -> Response {
        match self {
            LoginRefused::Address(r) => {
                too_many_attempts(r.wait, "too many failed logins from this address")
            }
            LoginRefused::Account(r) => {
                too_many_attempts(r.wait, "too many failed logins to this account")
            }
        }
    }
}

/// Failed logins limited per client address and per account together.
#[derive(Debug)]
pub struct LoginLimits {
    by_address: AttemptLimiter<IpAddr>,
    by_account: AttemptLimiter<String>,
}

impl Default for LoginLimits {
    /// The `LOGIN_FAILURE_*` constants.
    fn default() -> LoginLimits {
        LoginLimits {
            by_address: AttemptLimiter::new(
                LOGIN_FAILURE_BURST_PER_ADDRESS,
                LOGIN_FAILURE_PERIOD_PER_ADDRESS,
            ),
            by_account: AttemptLimiter::new(
                LOGIN_FAILURE_BURST_PER_ACCOUNT,
                LOGIN_FAILURE_PERIOD_PER_ACCOUNT,
            ),
        }
    }
}

impl LoginLimits {
    /// Starts a login by `client` (when known) to `account` (a stable key:
    /// the DID when the identifier names an account). Counts as a failure
    /// unless [`LoginAttempt::succeeded`] is called, so a client that hangs
    /// up mid-check has used its attempt.
    pub fn begin(
        &self,
        client: Option<IpAddr>,
        account: &str,
    ) -> Result<LoginAttempt<'_>, LoginRefused> {
        let client = client.map(client_key);
        if let Some(ip) = &client {
            self.by_address.take(ip).map_err(LoginRefused::Address)?;
        }
        let account = account.to_owned();
        if let Err(r) = self.by_account.take(&account) {
            if let Some(ip) = &client {
                self.by_address.give_back(ip);
            }
            return Err(LoginRefused::Account(r));
        }
        Ok(LoginAttempt {
            limits: self,
            client,
            account,
        })
    }
}

/// A login in progress: a failure unless it [`succeeded`](Self::succeeded).
#[derive(Debug)]
pub struct LoginAttempt<'a> {
    limits: &'a LoginLimits,
    client: Option<IpAddr>,
    account: String,
}

impl LoginAttempt<'_> {
    /// The password was right (or the check never ran): gives the attempt
    /// back to both limits.
    pub fn succeeded(self) {
        if let Some(ip) = &self.client {
            self.limits.by_address.give_back(ip);
        }
        self.limits.by_account.give_back(&self.account);
    }
}

/// 429 `RateLimitExceeded` with `Retry-After` (whole seconds, at least 1).
pub fn too_many_attempts(wait: Duration, what: &str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut res = XrpcError::named(
        StatusCode::TOO_MANY_REQUESTS,
        "RateLimitExceeded",
        format!("{what}: try again in {secs} s"),
    )
    .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_and_give_back() {
        let limit = AttemptLimiter::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            limit.take(&1).unwrap();
        }
        let r = limit.take(&1).unwrap_err();
        assert!(r.first);
        assert!(r.wait > Duration::from_millis(150) && r.wait <= Duration::from_millis(200));
        let again = limit.take(&1).unwrap_err();
        assert!(!again.first, "reported once per episode");
        // A success gives its attempt back at once.
        limit.give_back(&1);
        limit.take(&1).unwrap();
        limit.take(&1).unwrap_err();
        // Refill: one attempt per period.
        std::thread::sleep(Duration::from_millis(220));
        limit.take(&1).unwrap();
        assert!(limit.take(&1).unwrap_err().first);
        // Whole again after burst × period; then forgotten.
        std::thread::sleep(Duration::from_millis(620));
        limit.retain_recent();
        assert!(limit.is_empty());
    }

    #[test]
    fn successes_never_run_out() {
        let limit = AttemptLimiter::new(2, Duration::from_secs(60));
        for _ in 0..100 {
            limit.take(&"k").unwrap();
            limit.give_back(&"k");
        }
        limit.take(&"k").unwrap();
        limit.take(&"k").unwrap();
        assert!(limit.take(&"k").is_err());
    }

    #[test]
    fn client_keys() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(client_key(a), client_key(other));
    }

    #[test]
    fn logins_are_limited_by_address_and_by_account() {
        let limits = LoginLimits::default();
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..LOGIN_FAILURE_BURST_PER_ADDRESS {
            drop(limits.begin(Some(attacker), &format!("acct{i}")).unwrap());
        }
        let refused = limits.begin(Some(attacker), "acct-new").unwrap_err();
        assert!(matches!(refused, LoginRefused::Address(_)), "{refused:?}");
        let res = refused.response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "12");
        // Another address is not affected; its successes cost nothing.
        let user: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..20 {
            limits.begin(Some(user), "alice").unwrap().succeeded();
        }
        // One account, many addresses: the account limit.
        for i in 0..LOGIN_FAILURE_BURST_PER_ACCOUNT {
            let ip: IpAddr = format!("203.0.113.{i}").parse().unwrap();
            drop(limits.begin(Some(ip), "bob").unwrap());
        }
        let fresh: IpAddr = "203.0.113.200".parse().unwrap();
        assert!(matches!(
            limits.begin(Some(fresh), "bob"),
            Err(LoginRefused::Account(_))
        ));
        // The refused account attempt did not use the address's budget.
        for _ in 0..LOGIN_FAILURE_BURST_PER_ADDRESS {
            drop(limits.begin(Some(fresh), "carol").unwrap());
        }
    }
}
