//! [`Resolver`]: DID → [`Identity`] with a bounded TTL cache and one in-flight
//! fetch per DID.
//!
//! The relay verifies every commit against its account's current signing key and
//! checks every event's host against the account's PDS, so resolution sits on the
//! hot path of each new or migrated account. The resolver therefore:
//!
//! - answers from the cache while an entry is fresh ([`ResolverConfig::ttl`] for
//!   identities, [`ResolverConfig::negative_ttl`] for definitive failures);
//! - on a miss, runs **one** fetch per DID however many callers ask at once
//!   (single-flight). The fetch runs as its own task, so a caller that gives up
//!   (drops its future) neither cancels it for the others nor loses its result
//!   for the cache;
//! - never caches transient failures, so the next call retries;
//! - bounds the cache ([`ResolverConfig::capacity`]), the response size and the
//!   DID length, since DIDs arrive from untrusted upstreams.
//!
//! [`Resolver::purge`] also detaches a fetch in flight for the DID: its callers
//! still get its answer, but it is not cached, and the next `resolve` starts a
//! new fetch. That is what a forced re-resolve after an `#identity` event or a
//! failed signature needs — an answer fetched after the purge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use tokio::sync::watch;

use super::cache::{Cache, Outcome};
use super::document::{parse_document, Identity};
use super::error::ResolveError;
use super::fetch::fetch_json;
use super::intern::{self, Interner};
use super::metrics::{
    CACHE_HITS, CACHE_MISSES, INVALID_DIDS, IN_FLIGHT, RESOLUTIONS, RESOLVE_ERRORS,
    RESOLVE_SECONDS, RETRIES, SINGLEFLIGHT_JOINS,
};
use super::plc::{plc_document_url, DEFAULT_PLC_URL, PLC_PREFIX};
use super::web::{did_web_url, WEB_PREFIX};
use crate::net::{Dns, Outbound};

/// Longest DID the resolver will look at. A did:plc is 32 characters and a
/// did:web at most `did:web:` + 253-character host + `%3A` + port; anything
/// longer is refused before it is hashed or sent anywhere.
pub const MAX_RESOLVABLE_DID_LEN: usize = 300;

/// Settings for a [`Resolver`]. [`Default`] gives production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Base URL of the PLC directory (default `https://plc.directory`); a
    /// did:plc document is fetched from `{plc_url}/{did}`.
    pub plc_url: String,
    /// Resolve did:web on `localhost` / `127.0.0.1` (with an optional `%3A` port)
    /// over plain `http://`, and let any name resolve to a private address.
    /// For development and tests only; when false such DIDs, and did:web names
    /// that resolve to private addresses, are [`ResolveError::Invalid`].
    pub allow_private: bool,
    /// How long a resolved identity is served from the cache (default 1 hour).
    /// `#identity` events purge earlier.
    pub ttl: Duration,
    /// How long a definitive failure (not found, tombstoned, invalid document) is
    /// served from the cache (default 5 minutes), so a dead DID costs one request
    /// per period rather than one per event.
    pub negative_ttl: Duration,
    /// Most cache entries kept (default 1,000,000). When full, expired, then
    /// least recently read, entries are evicted.
    pub capacity: usize,
    /// Limit on each HTTP request, connect to last body byte (default 10 s).
    pub timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            plc_url: DEFAULT_PLC_URL.to_owned(),
            allow_private: false,
            ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(300),
            capacity: 1_000_000,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Resolves DIDs to [`Identity`]s through a shared cache. Cheap to clone (one
/// `Arc`); clones share the cache and in-flight fetches. `Send + Sync`.
///
/// `resolve` must be called inside a Tokio runtime (fetches run as tasks).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ResolverConfig,
    client: Outbound,
    cache: Cache,
    /// Shares PDS names between cached identities.
    names: Interner,
    in_flight: DashMap<String, Flight>,
    next_flight: AtomicU64,
}

/// A fetch in progress: its identity (to tell it from a later one for the same
/// DID) and the channel its result is published on.
struct Flight {
    id: u64,
    result: watch::Receiver<Option<Outcome>>,
}

/// Which DID method, with the document URL.
#[derive(Debug, Clone, Copy)]
enum Method {
    Plc,
    Web,
}

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::Plc => "plc",
            Method::Web => "web",
        }
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("cfg", &self.inner.cfg)
            .field("cached", &self.inner.cache.len())
            .field("in_flight", &self.inner.in_flight.len())
            .finish()
    }
}

impl Resolver {
    /// A resolver with an empty cache and its own HTTP client, resolving
    /// names with the system resolver under the SSRF rule (private answers
    /// allowed only with [`ResolverConfig::allow_private`]; the PLC
    /// directory's own host is the operator's choice and always allowed).
    pub fn new(cfg: ResolverConfig) -> Resolver {
        let plc_host = reqwest::Url::parse(&cfg.plc_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        let dns = Dns::system().with_policy(cfg.allow_private, plc_host);
        Resolver::with_dns(cfg, dns)
    }

    /// A resolver fetching through `dns` (which carries the SSRF policy:
    /// the relay shares one between its crawlers and its resolver).
    pub fn with_dns(cfg: ResolverConfig, dns: Dns) -> Resolver {
        let client = Outbound::new(dns, cfg.timeout, "identity");
        Resolver {
            inner: Arc::new(Inner {
                cache: Cache::new(cfg.capacity),
                names: Interner::new(intern::DEFAULT_CAPACITY),
                client,
                cfg,
                in_flight: DashMap::new(),
                next_flight: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration this resolver was built with.
    pub fn config(&self) -> &ResolverConfig {
        &self.inner.cfg
    }

    /// Resolves `did` to its current [`Identity`].
    ///
    /// A fresh cache entry answers at once (a cached definitive failure is
    /// returned as that error). Otherwise the caller joins the fetch already in
    /// flight for `did`, or starts one: all concurrent callers share one request.
    /// Identities are cached for the TTL, definitive failures for the negative
    /// TTL, transient failures not at all. A malformed DID, or one that is neither
    /// did:plc nor did:web, is [`ResolveError::Invalid`] without any request.
    pub async fn resolve(&self, did: &str) -> Result<Arc<Identity>, ResolveError> {
        if did.len() > MAX_RESOLVABLE_DID_LEN {
            metrics::counter!(INVALID_DIDS).increment(1);
            return Err(ResolveError::Invalid("DID too long".into()));
        }
        if let Some(outcome) = self.inner.cache.get(did, Instant::now()) {
            metrics::counter!(CACHE_HITS).increment(1);
            return outcome;
        }
        metrics::counter!(CACHE_MISSES).increment(1);
        let (method, url) = match self.document_url(did) {
            Ok(target) => target,
            Err(e) => {
                metrics::counter!(INVALID_DIDS).increment(1);
                return Err(e);
            }
        };
        let mut result = match self.join_or_start(did, method, url) {
            Joined::Done(outcome) => return outcome,
            Joined::Wait(rx) => rx,
        };
        let outcome = match result.wait_for(Option::is_some).await {
            Ok(published) => published.clone(),
            Err(_) => None,
        };
        outcome.unwrap_or_else(|| Err(lost_flight()))
    }

    /// The cached identity for `did` if it is fresh; never waits or fetches.
    /// For synchronous callers (and a cheap first try before `resolve`). A cached
    /// failure is `None` too.
    pub fn cached(&self, did: &str) -> Option<Arc<Identity>> {
        self.inner.cache.get(did, Instant::now())?.ok()
    }

    /// Forgets what is known about `did`: drops its cache entry and detaches any
    /// fetch in flight (whose result then goes to its existing callers only). Call
    /// on an `#identity` event, or before a forced re-resolve.
    pub fn purge(&self, did: &str) {
        // In-flight first: a fetch finishing between the two steps would
        // otherwise cache its (possibly stale) result after the cache removal.
        self.inner.in_flight.remove(did);
        self.inner.cache.remove(did);
    }

    /// [`Resolver::purge`] then [`Resolver::resolve`]: an answer fetched after
    /// this call, e.g. when a commit's signature fails against the cached key.
    pub async fn refresh(&self, did: &str) -> Result<Arc<Identity>, ResolveError> {
        self.purge(did);
        self.resolve(did).await
    }

    /// Resolves `did`, retrying transient failures with capped backoff for
    /// as long as they last (the caller's events wait meanwhile, and with
    /// them the upstream: an outage of the directory delays events, never
    /// lets one through unverified). `None` after a definitive failure. With
    /// `refresh`, the first attempt bypasses the cache ([`Resolver::refresh`]).
    pub async fn resolve_patiently(&self, did: &str, refresh: bool) -> Option<Arc<Identity>> {
        let mut attempt = 0u32;
        loop {
            let result = if refresh && attempt == 0 {
                self.refresh(did).await
            } else {
                self.resolve(did).await
            };
            match result {
                Ok(identity) => return Some(identity),
                Err(e) if e.is_transient() => {
                    attempt += 1;
                    metrics::counter!(RETRIES).increment(1);
                    tracing::warn!(%did, error = %e, attempt, "identity lookup failed transiently; holding events");
                    tokio::time::sleep(crate::net::backoff(attempt, Duration::from_secs(30))).await;
                }
                Err(e) => {
                    tracing::debug!(%did, error = %e, "identity lookup failed");
                    return None;
                }
            }
        }
    }

    /// Entries in the cache, fresh or expired-but-not-yet-evicted (for metrics,
    /// tests and debugging).
    pub fn cache_len(&self) -> usize {
        self.inner.cache.len()
    }

    /// Document fetches in flight right now.
    pub fn in_flight_len(&self) -> usize {
        self.inner.in_flight.len()
    }

    /// The method and document URL for `did`, or why it cannot be resolved.
    fn document_url(&self, did: &str) -> Result<(Method, String), ResolveError> {
        crate::wire::syntax::validate_did(did)
            .map_err(|e| ResolveError::Invalid(format!("bad DID syntax: {e}")))?;
        if did.starts_with(PLC_PREFIX) {
            Ok((Method::Plc, plc_document_url(&self.inner.cfg.plc_url, did)?))
        } else if did.starts_with(WEB_PREFIX) {
            Ok((Method::Web, did_web_url(did, self.inner.cfg.allow_private)?))
        } else {
            Err(ResolveError::Invalid(
                "unsupported DID method (only did:plc and did:web)".into(),
            ))
        }
    }

    /// Joins the fetch in flight for `did`, or registers and spawns a new one.
    fn join_or_start(&self, did: &str, method: Method, url: String) -> Joined {
        let (id, rx, tx) = match self.inner.in_flight.entry(did.to_owned()) {
            MapEntry::Occupied(flight) => {
                metrics::counter!(SINGLEFLIGHT_JOINS).increment(1);
                return Joined::Wait(flight.get().result.clone());
            }
            MapEntry::Vacant(slot) => {
                // A fetch that finished since our cache miss stored its result
                // before leaving this map (under this same shard lock), so
                // re-checking here closes the window for a duplicate fetch.
                if let Some(outcome) = self.inner.cache.get(did, Instant::now()) {
                    return Joined::Done(outcome);
                }
                let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = watch::channel(None);
                slot.insert(Flight {
                    id,
                    result: rx.clone(),
                });
                (id, rx, tx)
            }
        };
        // Spawned outside the map lock. The guard unregisters the flight even if
        // the task panics or is cancelled at runtime shutdown.
        let guard = FlightGuard {
            inner: self.inner.clone(),
            did: did.to_owned(),
            id,
        };
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        tokio::spawn(run_flight(guard, method, url, tx));
        Joined::Wait(rx)
    }
}

/// What `join_or_start` found.
enum Joined {
    /// The answer was already in the cache.
    Done(Outcome),
    /// Wait for a flight's result on this channel.
    Wait(watch::Receiver<Option<Outcome>>),
}

fn lost_flight() -> ResolveError {
    ResolveError::Transient("identity fetch task ended without a result".into())
}

/// Unregisters a flight when its task ends, however it ends.
struct FlightGuard {
    inner: Arc<Inner>,
    did: String,
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let id = self.id;
        self.inner
            .in_flight
            .remove_if(&self.did, |_, flight| flight.id == id);
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}

/// One fetch: GET, parse, cache (unless detached or transient), publish.
async fn run_flight(
    guard: FlightGuard,
    method: Method,
    url: String,
    tx: watch::Sender<Option<Outcome>>,
) {
    let started = Instant::now();
    let did = guard.did.as_str();
    let outcome: Outcome =
        match fetch_json(&guard.inner.client, &url, guard.inner.cfg.timeout).await {
            Ok(doc) => parse_document(did, &doc)
                .map(|identity| Arc::new(guard.inner.names.identity(identity))),
            Err(e) => Err(e),
        };
    let label = match &outcome {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    metrics::counter!(RESOLUTIONS, "outcome" => label, "method" => method.label()).increment(1);
    metrics::histogram!(RESOLVE_SECONDS, "method" => method.label())
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = &outcome {
        metrics::counter!(RESOLVE_ERRORS, "kind" => e.label()).increment(1);
        tracing::debug!(did, error = %e, "DID resolution failed");
    }

    let ttl = match &outcome {
        Ok(_) => Some(guard.inner.cfg.ttl),
        Err(e) if e.is_transient() => None,
        Err(_) => Some(guard.inner.cfg.negative_ttl),
    };
    let inner = &guard.inner;
    // Cache and unregister atomically with respect to `join_or_start` and
    // `purge`: only if this flight is still the registered one (not purged).
    if let MapEntry::Occupied(entry) = inner.in_flight.entry(did.to_owned()) {
        if entry.get().id == guard.id {
            if let Some(ttl) = ttl {
                inner
                    .cache
                    .insert(did, outcome.clone(), ttl, Instant::now());
            }
            entry.remove();
        }
    }
    if ttl.is_some() {
        inner.cache.enforce_capacity(Instant::now());
    }
    // Receivers may all be gone (callers gave up); the cache has the answer.
    let _ = tx.send(Some(outcome));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let cfg = ResolverConfig::default();
        assert_eq!(cfg.plc_url, "https://plc.directory");
        assert!(!cfg.allow_private);
        assert_eq!(cfg.ttl, Duration::from_secs(3600));
        assert_eq!(cfg.negative_ttl, Duration::from_secs(300));
        assert_eq!(cfg.capacity, 1_000_000);
        assert_eq!(cfg.timeout, Duration::from_secs(10));
    }

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn resolver_is_send_sync_clone() {
        assert_send_sync::<Resolver>();
    }

    #[tokio::test]
    async fn invalid_dids_make_no_request() {
        // An unroutable directory: any request would fail as Transient, not Invalid.
        let resolver = Resolver::new(ResolverConfig {
            plc_url: "http://127.0.0.1:9".into(),
            ..ResolverConfig::default()
        });
        let long = format!("did:web:{}.com", "a".repeat(400));
        for did in [
            "",
            "did:plc:",
            "did:plc:short",
            "DID:PLC:ewvi7nxzyoun6zhxrhs64oiz",
            "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc",
            "did:example:123",
            "did:web:example.com:path",
            "did:web:localhost%3A1234",
            "did:plc:ewvi7nxzyoun6zhxrhs64oiz#frag",
            long.as_str(),
        ] {
            let r = resolver.resolve(did).await;
            assert!(matches!(r, Err(ResolveError::Invalid(_))), "{did}: {r:?}");
        }
        assert_eq!(resolver.cache_len(), 0);
        assert_eq!(resolver.in_flight_len(), 0);
    }
}
