//! Metric names for identity resolution (`atrelay_identity_*`) and their
//! help text ([`FAMILIES`]).
//!
//! Recorded through the `metrics` facade, so they cost next to nothing until an
//! exporter is installed. Pass [`FAMILIES`] to [`crate::metrics::describe`]
//! once after installing one to attach help text.

use metrics::Unit;

use super::ResolveError;
use crate::metrics::{Family, KnownLabel};

/// Counter: `resolve` calls answered from a fresh cache entry (positive or negative).
pub const CACHE_HITS: &str = "atrelay_identity_cache_hits_total";
/// Counter: `resolve` calls that found no fresh entry and joined or started a fetch.
pub const CACHE_MISSES: &str = "atrelay_identity_cache_misses_total";
/// Counter: cache misses that joined a fetch already in flight (single-flight savings).
pub const SINGLEFLIGHT_JOINS: &str = "atrelay_identity_singleflight_joins_total";
/// Counter, label `outcome` (`ok`, `not_found`, `tombstoned`, `invalid`,
/// `transient`) and `method` (`plc`, `web`): completed document fetches.
pub const RESOLUTIONS: &str = "atrelay_identity_resolutions_total";
/// Counter, label `kind` ([`ResolveError::label`](super::ResolveError::label):
/// `not_found`, `tombstoned`, `invalid`, `transient`): document fetches that
/// failed. Counted once per fetch, not per waiting caller, so a burst for one
/// dead DID counts once; DIDs refused before any fetch are in
/// [`INVALID_DIDS`] instead.
pub const RESOLVE_ERRORS: &str = "atrelay_identity_resolve_errors_total";
/// Histogram, label `method`: seconds per document fetch, parse included.
pub const RESOLVE_SECONDS: &str = "atrelay_identity_resolve_seconds";
/// Gauge: document fetches in flight right now.
pub const IN_FLIGHT: &str = "atrelay_identity_inflight";
/// Gauge: entries in the cache (fresh and expired-but-not-yet-evicted).
pub const CACHE_ENTRIES: &str = "atrelay_identity_cache_entries";
/// Counter: entries dropped to keep the cache within its capacity, expired ones included.
pub const CACHE_EVICTIONS: &str = "atrelay_identity_cache_evictions_total";
/// Counter: `resolve` calls refused before any lookup because the DID is
/// malformed, too long, or of an unsupported method.
pub const INVALID_DIDS: &str = "atrelay_identity_invalid_dids_total";

/// Counter: lookups retried after a transient failure while the caller's
/// events wait ([`Resolver::resolve_patiently`](super::Resolver::resolve_patiently)).
/// Named for the crawler, whose events wait, as before it moved here.
pub const RETRIES: &str = "atrelay_crawler_identity_retries_total";

/// Every `kind` of [`RESOLVE_ERRORS`].
const ERROR_KINDS: &[KnownLabel] = &[KnownLabel {
    key: "kind",
    values: || {
        [
            ResolveError::Transient(String::new()),
            ResolveError::NotFound,
            ResolveError::Tombstoned,
            ResolveError::Invalid(String::new()),
        ]
        .iter()
        .map(ResolveError::label)
        .collect()
    },
}];

/// Every identity family. The fetch outcomes and latency
/// ([`RESOLUTIONS`], [`RESOLVE_SECONDS`]) get their series with the first
/// resolution.
pub const FAMILIES: &[Family] = &[
    Family::counter(CACHE_HITS, "identity resolutions served from the cache"),
    Family::counter(CACHE_MISSES, "identity resolutions that needed a fetch"),
    Family::counter(
        SINGLEFLIGHT_JOINS,
        "identity cache misses that joined a fetch already in flight",
    ),
    Family::counter(RESOLUTIONS, "DID document fetches by method and outcome").with_traffic(),
    Family::counter(RESOLVE_ERRORS, "DID document fetches that failed, by kind")
        .zero_per(ERROR_KINDS),
    Family::histogram(RESOLVE_SECONDS, "DID document fetch latency")
        .unit(Unit::Seconds)
        .with_traffic(),
    Family::gauge(IN_FLIGHT, "DID document fetches in flight"),
    Family::gauge(CACHE_ENTRIES, "entries in the identity cache"),
    Family::counter(CACHE_EVICTIONS, "identity cache entries evicted"),
    Family::counter(INVALID_DIDS, "resolve calls refused for a malformed DID"),
    Family::counter(
        RETRIES,
        "Identity lookups retried while holding a host's events",
    ),
];
