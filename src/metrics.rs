//! The Prometheus exporter and the descriptions of the relay's metrics.
//!
//! Every metric is named `atrelay_*` and its labels come from small fixed
//! sets (event type, drop reason, host status, session end reason, error
//! kind): never a DID, a hostname or a client address, so the series count
//! stays bounded however large the network. Per-host and per-subscriber
//! detail is in the admin API instead.
//!
//! Histograms get explicit buckets so Grafana can compute quantiles across
//! instances (`histogram_quantile`); without them the exporter would render
//! per-process summaries.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::net::fd_limit::METRICS_CONNECTIONS;
use crate::net::http_server::{self, ServerLimits};

/// Latency buckets in seconds: 50 µs to 10 s.
const SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Count buckets (events per group commit, events of lag).
const COUNTS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
];

/// How often the recorder's upkeep (draining histogram samples into their
/// buckets) runs, as the exporter's own listener would.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The exporter's builder, with the relay's buckets.
pub fn exporter() -> PrometheusBuilder {
    let with = |b: PrometheusBuilder, suffix: &str, buckets: &[f64]| {
        b.set_buckets_for_metric(Matcher::Suffix(suffix.to_owned()), buckets)
            .expect("bucket lists are not empty")
    };
    // Buckets apply to histograms only: gauges ending in `_events` are
    // unaffected.
    let builder = with(PrometheusBuilder::new(), "_seconds", SECONDS);
    with(builder, "_events", COUNTS)
}

/// Installs the Prometheus recorder as the global one, describes every
/// metric ([`describe`]) and starts its upkeep on the current runtime.
/// Returns the handle `/metrics` renders.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = exporter().install_recorder()?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `GET /metrics`: the Prometheus text exposition of `handle`.
pub fn router(handle: PrometheusHandle) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

/// Binds `addr` and serves `/metrics` from `handle` through the same HTTP
/// server as the relay ([`http_server::serve`], label `server="metrics"`),
/// with a small connection cap, until `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    limits: ServerLimits,
    stop: crate::lifecycle::StopSignal,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let limits = ServerLimits {
        max_connections: METRICS_CONNECTIONS,
        ..limits
    };
    Ok(tokio::spawn(http_server::serve(
        listener,
        router(handle),
        "metrics",
        limits,
        stop,
    )))
}

/// Describes every metric (help text and unit) to the installed recorder,
/// then registers each family at zero (see [`register_at_zero`]).
pub fn describe() {
    crate::fanout::metrics::describe();
    crate::identity::describe();
    crate::mirror::metrics::describe();
    // Ingest.
    describe_counter!(
        "atrelay_crawler_frames_total",
        "Frames read from upstream hosts"
    );
    describe_counter!(
        "atrelay_relay_events_received_total",
        "Upstream frames read, by type (every frame whose header decodes, #info, errors and unknown types included), before any check"
    );
    describe_counter!(
        "atrelay_relay_events_accepted_total",
        "Events accepted and sequenced, by type"
    );
    describe_counter!(
        "atrelay_relay_events_dropped_total",
        "Events dropped, by reason (invalid, throttled account, taken down, ...)"
    );
    describe_counter!(
        "atrelay_relay_events_ignored_total",
        "Events consumed without forwarding (duplicates, stale #sync, #info), by reason"
    );
    describe_counter!(
        "atrelay_relay_events_sequenced_total",
        "Events written to the log"
    );
    describe_counter!(
        "atrelay_relay_chain_breaks_total",
        "Verified commits that do not continue their account's stored chain"
    );
    describe_histogram!(
        "atrelay_relay_verify_seconds",
        Unit::Seconds,
        "Time to decide one event (decode, signature, MST inversion)"
    );
    describe_histogram!(
        "atrelay_relay_group_commit_seconds",
        Unit::Seconds,
        "Time to write and publish one group commit"
    );
    describe_histogram!(
        "atrelay_relay_group_commit_events",
        "Events per group commit"
    );
    describe_gauge!(
        "atrelay_verifier_account_cache_entries",
        "Account states held in the verifier threads' cache, all threads together"
    );
    describe_counter!(
        "atrelay_verifier_account_cache_evictions_total",
        "Account states evicted from the verifier cache to stay within its capacity"
    );
    // Upstream connections.
    describe_gauge!(
        "atrelay_crawler_connections",
        "Open upstream subscribeRepos connections"
    );
    describe_counter!(
        "atrelay_crawler_reconnects_total",
        "Upstream reconnection attempts"
    );
    describe_counter!(
        "atrelay_crawler_malformed_frames_total",
        "Upstream connections dropped for broken framing"
    );
    describe_counter!(
        "atrelay_crawler_non_increasing_seq_total",
        "Upstream frames skipped because their seq did not increase"
    );
    describe_counter!(
        "atrelay_crawler_future_cursor_total",
        "Upstreams that answered FutureCursor (their crawler stops)"
    );
    describe_counter!(
        "atrelay_crawler_identity_retries_total",
        "Identity lookups retried while holding a host's events"
    );
    describe_counter!(
        "atrelay_crawler_throttled_total",
        "Times a host was paused for spending an hourly or daily budget"
    );
    // Hosts, accounts and budgets.
    describe_gauge!("atrelay_hosts", "Known hosts, by status");
    describe_gauge!(
        "atrelay_accounts_throttled",
        "Accounts refused because their host is at its account limit"
    );
    describe_gauge!(
        "atrelay_budget_hour_remaining_events",
        "Events left in the current hour, summed over hosts with an hourly budget"
    );
    describe_gauge!(
        "atrelay_budget_day_remaining_events",
        "Events left today, summed over hosts with a daily budget"
    );
    describe_gauge!(
        "atrelay_budget_hosts_near_limit",
        "Hosts past 80% of their hourly or daily budget"
    );
    describe_counter!(
        "atrelay_admin_auth_failures_total",
        "Admin API requests refused for bad or missing credentials"
    );
    describe_counter!(
        "atrelay_admin_auth_rate_limited_total",
        "Admin API requests refused (429) because their address sent too many wrong credentials"
    );
    describe_counter!(
        "atrelay_request_crawl_rate_limited_total",
        "requestCrawl calls refused by the per-client rate limit"
    );
    // The trust boundary.
    describe_counter!(
        "atrelay_identity_refresh_limited_total",
        "Forced identity re-resolutions refused (scope did) or delayed (scope host) by their rate limits"
    );
    describe_counter!(
        "atrelay_relay_identity_handles_stripped_total",
        "Forwarded #identity events whose handle the DID document does not claim (handle removed)"
    );
    describe_counter!(
        "atrelay_dns_lookups_total",
        "Host names resolved for outbound connections"
    );
    describe_counter!(
        "atrelay_dns_refused_total",
        "Outbound connections refused because the host is or resolves to a local or private address"
    );
    // The log.
    describe_counter!(
        "atrelay_log_append_batches_total",
        "Batches appended to the log"
    );
    describe_counter!(
        "atrelay_log_appended_events_total",
        "Events appended to the log"
    );
    describe_counter!(
        "atrelay_log_appended_frame_bytes_total",
        Unit::Bytes,
        "Frame bytes appended to the log"
    );
    describe_histogram!(
        "atrelay_log_append_seconds",
        Unit::Seconds,
        "Time to write one batch durably (with fsync in fsync durability)"
    );
    describe_counter!(
        "atrelay_log_read_events_total",
        "Events read back from the log (replays, catch-up)"
    );
    describe_gauge!(
        "atrelay_log_events_bytes",
        Unit::Bytes,
        "Approximate size of the retained events"
    );
    describe_gauge!("atrelay_log_last_seq", "Newest seq in the log (the head)");
    describe_gauge!("atrelay_log_oldest_seq", "Oldest retained seq");
    describe_counter!(
        "atrelay_log_retention_removed_events_total",
        "Events removed by retention"
    );
    describe_counter!(
        "atrelay_log_retention_removed_bytes_total",
        Unit::Bytes,
        "Bytes removed by retention"
    );
    describe_counter!(
        "atrelay_log_append_retries_total",
        "Failed log appends retried, by cause (descriptors, disk_full, memory, io): nonzero means the writer stalled"
    );
    describe_gauge!(
        "atrelay_log_writer_stalled",
        "1 while the log writer retries a failed append (no event is accepted meanwhile), else 0"
    );
    describe_counter!(
        "atrelay_log_reopens_total",
        "Times the log's database was reopened in place after a failed write"
    );
    // Inbound HTTP connections (src/net/http_server.rs), by server.
    describe_gauge!(
        http_server::CONNECTIONS,
        "Open inbound connections, upgraded websockets included, by server"
    );
    describe_gauge!(
        http_server::MAX_CONNECTIONS,
        "The inbound connection cap, by server"
    );
    describe_counter!(
        http_server::REFUSED,
        "Connections refused with 503 at the cap (every slot busy), by server"
    );
    describe_counter!(
        http_server::EVICTED,
        "Idle or header-reading connections closed at the cap to admit a new one, by server"
    );
    describe_counter!(
        http_server::HEADER_TIMEOUTS,
        "Connections closed for not sending a complete request head in time, by server"
    );
    describe_counter!(
        http_server::IDLE_TIMEOUTS,
        "Keep-alive connections closed after the idle timeout, by server"
    );
    describe_counter!(
        http_server::ACCEPT_ERRORS,
        "Failed accepts, by server and kind (emfile, enfile, enobufs, enomem, other)"
    );
    register_at_zero();
    crate::mirror::metrics::register_at_zero();
}

/// Registers every family the relay can export at zero: counters and gauges
/// at 0, histograms with no observations, and labelled counters at 0 for
/// each of their known label values.
///
/// Why: the exporter renders a family only once it has a series, and many
/// of ours only get one on a rare event (a forgery, a slow consumer, a
/// retention pass). Until then a dashboard panel would say "no data", which
/// reads as "not scraped" rather than "none happened", and `rate()` or
/// `increase()` over a counter that appears at its first increment misses
/// that increment. Registering is not recording: a counter is incremented by
/// 0 and a gauge moved by 0, so nothing already counted is reset.
///
/// Labelled families that always get their series when the relay starts
/// crawling or resolving (`atrelay_relay_events_received_total`,
/// `atrelay_hosts`, the identity fetch outcomes and latency) are not listed:
/// their label values come with the traffic. A label value missing here
/// (say, a new drop reason) only means that series appears at its first
/// increment, as before.
fn register_at_zero() {
    use crate::fanout::metrics as fanout;
    use crate::fanout::SessionEnd;
    use crate::identity::{telemetry as identity, ResolveError};
    use crate::relay::verifier::{DropReason, IgnoreReason};
    use crate::wire::frame::EventKind;

    for name in [
        "atrelay_crawler_frames_total",
        "atrelay_relay_events_sequenced_total",
        "atrelay_relay_chain_breaks_total",
        "atrelay_crawler_reconnects_total",
        "atrelay_crawler_malformed_frames_total",
        "atrelay_crawler_non_increasing_seq_total",
        "atrelay_crawler_future_cursor_total",
        "atrelay_crawler_identity_retries_total",
        "atrelay_crawler_throttled_total",
        "atrelay_admin_auth_failures_total",
        "atrelay_admin_auth_rate_limited_total",
        "atrelay_request_crawl_rate_limited_total",
        "atrelay_relay_identity_handles_stripped_total",
        "atrelay_dns_lookups_total",
        "atrelay_dns_refused_total",
        "atrelay_log_append_batches_total",
        "atrelay_log_appended_events_total",
        "atrelay_log_appended_frame_bytes_total",
        "atrelay_log_read_events_total",
        "atrelay_log_retention_removed_events_total",
        "atrelay_log_retention_removed_bytes_total",
        "atrelay_log_reopens_total",
        fanout::FRAMES_DELIVERED,
        fanout::BYTES_DELIVERED,
        fanout::CATCHUP_READS,
        fanout::CONSUMER_TOO_SLOW,
        identity::CACHE_HITS,
        identity::CACHE_MISSES,
        identity::SINGLEFLIGHT_JOINS,
        identity::CACHE_EVICTIONS,
        identity::INVALID_DIDS,
    ] {
        metrics::counter!(name).increment(0);
    }
    for name in [
        "atrelay_crawler_connections",
        "atrelay_accounts_throttled",
        "atrelay_budget_hour_remaining_events",
        "atrelay_budget_day_remaining_events",
        "atrelay_budget_hosts_near_limit",
        "atrelay_log_events_bytes",
        "atrelay_log_last_seq",
        "atrelay_log_oldest_seq",
        "atrelay_log_writer_stalled",
        fanout::SUBSCRIBERS,
        identity::IN_FLIGHT,
        identity::CACHE_ENTRIES,
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    for name in [
        "atrelay_relay_verify_seconds",
        "atrelay_relay_group_commit_seconds",
        "atrelay_relay_group_commit_events",
        "atrelay_log_append_seconds",
        fanout::SUBSCRIBER_LAG,
    ] {
        // Registering the handle is enough: the exporter renders a
        // registered histogram with zero counts.
        let _ = metrics::histogram!(name);
    }
    for cause in ["descriptors", "disk_full", "memory", "io"] {
        metrics::counter!("atrelay_log_append_retries_total", "cause" => cause).increment(0);
    }
    // The types the sequencer forwards (#info and the like are ignored).
    for kind in [
        EventKind::Commit,
        EventKind::Sync,
        EventKind::Identity,
        EventKind::Account,
    ] {
        metrics::counter!("atrelay_relay_events_accepted_total", "type" => kind.label())
            .increment(0);
    }
    for reason in DropReason::ALL {
        metrics::counter!("atrelay_relay_events_dropped_total", "reason" => reason.as_str())
            .increment(0);
    }
    for reason in IgnoreReason::ALL {
        metrics::counter!("atrelay_relay_events_ignored_total", "reason" => reason.as_str())
            .increment(0);
    }
    for scope in ["did", "host"] {
        metrics::counter!("atrelay_identity_refresh_limited_total", "scope" => scope).increment(0);
    }
    for end in [
        SessionEnd::ClientClosed,
        SessionEnd::TooSlow,
        SessionEnd::FutureCursor,
        SessionEnd::Io(String::new()),
        SessionEnd::Protocol(String::new()),
    ] {
        metrics::counter!(fanout::SESSIONS_ENDED, "reason" => end.reason()).increment(0);
    }
    for server in ["relay", "metrics"] {
        http_server::register_at_zero(server);
    }
    // The drop guard's reason for a session whose task was aborted.
    metrics::counter!(fanout::SESSIONS_ENDED, "reason" => "aborted").increment(0);
    for err in [
        ResolveError::Transient(String::new()),
        ResolveError::NotFound,
        ResolveError::Tombstoned,
        ResolveError::Invalid(String::new()),
    ] {
        metrics::counter!(identity::RESOLVE_ERRORS, "kind" => err.label()).increment(0);
    }
}
