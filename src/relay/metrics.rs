//! The relay's metrics: ingest (`atrelay_crawler_*`, `atrelay_relay_*`),
//! the verifier's account cache, hosts, accounts and budgets, and the
//! trust boundary's refusals. Each name is a constant used by the code
//! that records it; [`FAMILIES`] describes them all.

use metrics::Unit;

use super::reason::{DropReason, IgnoreReason};
use crate::metrics::{Family, KnownLabel};
use crate::wire::frame::EventKind;

// Ingest.
/// Counter: frames read from upstream hosts.
pub const CRAWLER_FRAMES: &str = "atrelay_crawler_frames_total";
/// Counter, label `type` ([`EventKind::label`]): upstream frames read,
/// before any check.
pub const EVENTS_RECEIVED: &str = "atrelay_relay_events_received_total";
/// Counter, label `type` ([`EventKind::label`]): events accepted and
/// sequenced.
pub const EVENTS_ACCEPTED: &str = "atrelay_relay_events_accepted_total";
/// Counter, label `reason` ([`DropReason::as_str`]): events dropped.
pub const EVENTS_DROPPED: &str = "atrelay_relay_events_dropped_total";
/// Counter, label `reason` ([`IgnoreReason::as_str`]): events consumed
/// without forwarding.
pub const EVENTS_IGNORED: &str = "atrelay_relay_events_ignored_total";
/// Counter: events written to the log.
pub const EVENTS_SEQUENCED: &str = "atrelay_relay_events_sequenced_total";
/// Counter: verified commits that do not continue the stored chain.
pub const CHAIN_BREAKS: &str = "atrelay_relay_chain_breaks_total";
/// Histogram: seconds to decide one event.
pub const VERIFY_SECONDS: &str = "atrelay_relay_verify_seconds";
/// Histogram: seconds to write and publish one group commit.
pub const GROUP_COMMIT_SECONDS: &str = "atrelay_relay_group_commit_seconds";
/// Histogram: events per group commit.
pub const GROUP_COMMIT_EVENTS: &str = "atrelay_relay_group_commit_events";
/// Gauge: account states in the verifier threads' cache.
pub const ACCOUNT_CACHE_ENTRIES: &str = "atrelay_verifier_account_cache_entries";
/// Counter: account states evicted from the verifier cache.
pub const ACCOUNT_CACHE_EVICTIONS: &str = "atrelay_verifier_account_cache_evictions_total";

// Upstream connections.
/// Gauge: open upstream `subscribeRepos` connections.
pub const CRAWLER_CONNECTIONS: &str = "atrelay_crawler_connections";
/// Counter: upstream reconnection attempts.
pub const CRAWLER_RECONNECTS: &str = "atrelay_crawler_reconnects_total";
/// Counter: upstream connections dropped for broken framing.
pub const CRAWLER_MALFORMED_FRAMES: &str = "atrelay_crawler_malformed_frames_total";
/// Counter: upstream frames skipped because their seq did not increase.
pub const CRAWLER_NON_INCREASING_SEQ: &str = "atrelay_crawler_non_increasing_seq_total";
/// Counter: upstreams that answered `FutureCursor`.
pub const CRAWLER_FUTURE_CURSOR: &str = "atrelay_crawler_future_cursor_total";
/// Counter: hosts paused for spending an hourly or daily budget.
pub const CRAWLER_THROTTLED: &str = "atrelay_crawler_throttled_total";

// Hosts, accounts and budgets.
/// Gauge, label `status`: known hosts.
pub const HOSTS: &str = "atrelay_hosts";
/// Gauge: accounts refused because their host is at its account limit.
pub const ACCOUNTS_THROTTLED: &str = "atrelay_accounts_throttled";
/// Gauge: events left this hour, over hosts with an hourly budget.
pub const BUDGET_HOUR_REMAINING: &str = "atrelay_budget_hour_remaining_events";
/// Gauge: events left today, over hosts with a daily budget.
pub const BUDGET_DAY_REMAINING: &str = "atrelay_budget_day_remaining_events";
/// Gauge: hosts past 80% of a budget.
pub const BUDGET_HOSTS_NEAR_LIMIT: &str = "atrelay_budget_hosts_near_limit";

// The trust boundary.
/// Counter, label `scope` ([`SCOPE_DID`], [`SCOPE_HOST`]): forced identity
/// re-resolutions refused or delayed by their rate limits.
pub const IDENTITY_REFRESH_LIMITED: &str = "atrelay_identity_refresh_limited_total";
/// Counter: forwarded `#identity` events whose handle was removed.
pub const IDENTITY_HANDLES_STRIPPED: &str = "atrelay_relay_identity_handles_stripped_total";

/// [`IDENTITY_REFRESH_LIMITED`] `scope`: one DID asked too often (refused).
pub const SCOPE_DID: &str = "did";
/// [`IDENTITY_REFRESH_LIMITED`] `scope`: one host asked too often (delayed).
pub const SCOPE_HOST: &str = "host";

/// The kinds the sequencer forwards (`#info` and the like are ignored):
/// the `type`s of [`EVENTS_ACCEPTED`] registered at zero.
const FORWARDED: [EventKind; 4] = [
    EventKind::Commit,
    EventKind::Sync,
    EventKind::Identity,
    EventKind::Account,
];

const ACCEPTED_TYPES: &[KnownLabel] = &[KnownLabel {
    key: "type",
    values: || FORWARDED.map(EventKind::label).to_vec(),
}];
const DROP_REASONS: &[KnownLabel] = &[KnownLabel {
    key: "reason",
    values: || DropReason::ALL.map(DropReason::as_str).to_vec(),
}];
const IGNORE_REASONS: &[KnownLabel] = &[KnownLabel {
    key: "reason",
    values: || IgnoreReason::ALL.map(IgnoreReason::as_str).to_vec(),
}];
const REFRESH_SCOPES: &[KnownLabel] = &[KnownLabel {
    key: "scope",
    values: || vec![SCOPE_DID, SCOPE_HOST],
}];

/// Every relay family. Those whose labels come with the traffic (event
/// types read, host statuses) appear when the crawlers connect and the
/// hosts are first counted; the verifier cache's appear when the verifier
/// pool starts.
pub const FAMILIES: &[Family] = &[
    // Ingest.
    Family::counter(CRAWLER_FRAMES, "Frames read from upstream hosts"),
    Family::counter(
        EVENTS_RECEIVED,
        "Upstream frames read, by type (every frame whose header decodes, #info, errors and unknown types included), before any check",
    )
    .with_traffic(),
    Family::counter(EVENTS_ACCEPTED, "Events accepted and sequenced, by type")
        .zero_per(ACCEPTED_TYPES),
    Family::counter(
        EVENTS_DROPPED,
        "Events dropped, by reason (invalid, throttled account, taken down, ...)",
    )
    .zero_per(DROP_REASONS),
    Family::counter(
        EVENTS_IGNORED,
        "Events consumed without forwarding (duplicates, stale #sync, #info), by reason",
    )
    .zero_per(IGNORE_REASONS),
    Family::counter(EVENTS_SEQUENCED, "Events written to the log"),
    Family::counter(
        CHAIN_BREAKS,
        "Verified commits that do not continue their account's stored chain",
    ),
    Family::histogram(
        VERIFY_SECONDS,
        "Time to decide one event (decode, signature, MST inversion)",
    )
    .unit(Unit::Seconds),
    Family::histogram(
        GROUP_COMMIT_SECONDS,
        "Time to write and publish one group commit",
    )
    .unit(Unit::Seconds),
    Family::histogram(GROUP_COMMIT_EVENTS, "Events per group commit"),
    Family::gauge(
        ACCOUNT_CACHE_ENTRIES,
        "Account states held in the verifier threads' cache, all threads together",
    )
    .with_traffic(),
    Family::counter(
        ACCOUNT_CACHE_EVICTIONS,
        "Account states evicted from the verifier cache to stay within its capacity",
    )
    .with_traffic(),
    // Upstream connections.
    Family::gauge(
        CRAWLER_CONNECTIONS,
        "Open upstream subscribeRepos connections",
    ),
    Family::counter(CRAWLER_RECONNECTS, "Upstream reconnection attempts"),
    Family::counter(
        CRAWLER_MALFORMED_FRAMES,
        "Upstream connections dropped for broken framing",
    ),
    Family::counter(
        CRAWLER_NON_INCREASING_SEQ,
        "Upstream frames skipped because their seq did not increase",
    ),
    Family::counter(
        CRAWLER_FUTURE_CURSOR,
        "Upstreams that answered FutureCursor (their crawler stops)",
    ),
    Family::counter(
        CRAWLER_THROTTLED,
        "Times a host was paused for spending an hourly or daily budget",
    ),
    // Hosts, accounts and budgets.
    Family::gauge(HOSTS, "Known hosts, by status").with_traffic(),
    Family::gauge(
        ACCOUNTS_THROTTLED,
        "Accounts refused because their host is at its account limit",
    ),
    Family::gauge(
        BUDGET_HOUR_REMAINING,
        "Events left in the current hour, summed over hosts with an hourly budget",
    ),
    Family::gauge(
        BUDGET_DAY_REMAINING,
        "Events left today, summed over hosts with a daily budget",
    ),
    Family::gauge(
        BUDGET_HOSTS_NEAR_LIMIT,
        "Hosts past 80% of their hourly or daily budget",
    ),
    // The trust boundary.
    Family::counter(
        IDENTITY_REFRESH_LIMITED,
        "Forced identity re-resolutions refused (scope did) or delayed (scope host) by their rate limits",
    )
    .zero_per(REFRESH_SCOPES),
    Family::counter(
        IDENTITY_HANDLES_STRIPPED,
        "Forwarded #identity events whose handle the DID document does not claim (handle removed)",
    ),
];
