//! The relay endpoints' metrics: refused admin credentials and rate-limited
//! `requestCrawl` calls. Each name is a constant used by the handler that
//! records it; [`FAMILIES`] describes them all.

use crate::metrics::Family;

/// Counter: admin requests refused for bad or missing credentials.
pub const ADMIN_AUTH_FAILURES: &str = "atrelay_admin_auth_failures_total";
/// Counter: admin requests refused (429) for an address that sent too many
/// wrong credentials.
pub const ADMIN_AUTH_RATE_LIMITED: &str = "atrelay_admin_auth_rate_limited_total";
/// Counter: `requestCrawl` calls refused by the per-client rate limit.
pub const REQUEST_CRAWL_RATE_LIMITED: &str = "atrelay_request_crawl_rate_limited_total";

/// Every HTTP family, described and registered at start.
pub const FAMILIES: &[Family] = &[
    Family::counter(
        ADMIN_AUTH_FAILURES,
        "Admin API requests refused for bad or missing credentials",
    ),
    Family::counter(
        ADMIN_AUTH_RATE_LIMITED,
        "Admin API requests refused (429) because their address sent too many wrong credentials",
    ),
    Family::counter(
        REQUEST_CRAWL_RATE_LIMITED,
        "requestCrawl calls refused by the per-client rate limit",
    ),
];
