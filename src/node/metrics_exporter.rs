//! The Prometheus exporter: installs the recorder, describes every family
//! of every module ([`CATALOGUE`]), and serves `/metrics`.
//!
//! Every metric is named `atrelay_*` and its labels come from small fixed
//! sets (event type, drop reason, host status, session end reason, error
//! kind): never a DID, a hostname or a client address, so the series count
//! stays bounded however large the network. Per-host and per-subscriber
//! detail is in the admin API instead. Each module names and describes its
//! own families (its `metrics.rs`, see [`crate::metrics`]).
//!
//! Histograms get explicit buckets so Grafana can compute quantiles across
//! instances (`histogram_quantile`); without them the exporter would render
//! per-process summaries.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metrics::Family;
use crate::net::fd_limit::METRICS_CONNECTIONS;
use crate::net::http_server::{self, ServerLimits};
use crate::net::metrics::SERVER_METRICS;

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
/// family ([`describe`]) and starts its upkeep on the current runtime.
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
        SERVER_METRICS,
        limits,
        stop,
    )))
}

/// Every metric family the relay can export, module by module: each
/// module's table names, describes and says which series exist at start
/// ([`Family`]). A mirror describes the relay's families too (at zero), and
/// a relay the mirror's: one dashboard charts both.
pub const CATALOGUE: &[&[Family]] = &[
    crate::relay::metrics::FAMILIES,
    crate::identity::metrics::FAMILIES,
    crate::http::metrics::FAMILIES,
    crate::net::metrics::FAMILIES,
    crate::log::metrics::FAMILIES,
    crate::fanout::metrics::FAMILIES,
    crate::mirror::metrics::FAMILIES,
];

/// Describes every family of the [`CATALOGUE`] to the installed recorder
/// and registers its starting series at zero ([`crate::metrics::describe`]).
pub fn describe() {
    for families in CATALOGUE {
        crate::metrics::describe(families);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::metrics::Kind;

    #[test]
    fn every_family_is_named_once_and_described() {
        let mut names = HashSet::new();
        for family in CATALOGUE.iter().flat_map(|families| families.iter()) {
            assert!(family.name.starts_with("atrelay_"), "{}", family.name);
            assert!(!family.help.is_empty(), "{} has help text", family.name);
            assert!(names.insert(family.name), "{} listed twice", family.name);
            // A histogram without buckets would render as a per-process
            // summary that Grafana cannot aggregate.
            if family.kind == Kind::Histogram {
                assert!(
                    family.name.ends_with("_seconds") || family.name.ends_with("_events"),
                    "{} gets no buckets from exporter()",
                    family.name
                );
            }
        }
        assert!(names.len() >= 50, "{} families", names.len());
    }
}
