//! `com.atproto.sync.requestCrawl`: a PDS asks to be crawled.
//!
//! The checks, in order, each with its own answer:
//! 1. hostname syntax (`InvalidRequest`);
//! 2. domain bans and blocked hosts (`HostBanned`);
//! 3. the SSRF guard: no loopback/private/reserved address, literally or
//!    after DNS resolution, unless private hosts are allowed (`InvalidRequest`);
//! 4. in allowlist mode, an unlisted new host is recorded as pending for the
//!    operator (`InvalidRequest` saying so);
//! 5. a `describeServer` probe, which also refuses relays (loop guard);
//! 6. the daily cap on new hosts (`RateLimitExceeded`, 429).
//!
//! A host the relay already knows skips 4 and 6: asking again re-activates
//! an idle or offline host instead of erroring.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::XrpcError;
use super::metrics::REQUEST_CRAWL_RATE_LIMITED;
use super::AppState;
use crate::log::HostStatus;
use crate::net::HostName;

/// How long the `describeServer` probe may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The request body.
#[derive(Deserialize)]
pub struct CrawlRequest {
    pub hostname: String,
}

/// Burst and refill of `requestCrawl` calls per client address: generous
/// for a PDS that asks now and then, tight for a script.
pub fn crawl_request_quota() -> governor::Quota {
    governor::Quota::per_minute(std::num::NonZeroU32::new(30).expect("non-zero"))
        .allow_burst(std::num::NonZeroU32::new(20).expect("non-zero"))
}

/// Validates, probes and subscribes.
pub async fn request_crawl(
    State(app): State<AppState>,
    super::PeerAddr(peer): super::PeerAddr,
    body: Result<Json<CrawlRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, XrpcError> {
    if let Some(addr) = peer {
        if app.crawl_requests.check_key(&addr.ip()).is_err() {
            metrics::counter!(REQUEST_CRAWL_RATE_LIMITED).increment(1);
            return Err(XrpcError::named(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceeded",
                "too many requestCrawl calls from this address; try again in a minute",
            ));
        }
    }
    let Json(req) =
        body.map_err(|e| XrpcError::invalid(format!("expected JSON {{\"hostname\": ...}}: {e}")))?;
    let hostname = parse_hostname(&req.hostname)?;
    let known = app.hosts.get(hostname.as_str());
    if let Some(ban) = app.hosts.policy().ban_of(hostname.as_str()) {
        return Err(banned(format!(
            "{hostname} is under this relay's ban of {ban}"
        )));
    }
    if known
        .as_ref()
        .is_some_and(|h| h.status() == HostStatus::Banned)
    {
        return Err(banned(format!(
            "{hostname} is blocked by this relay's operator"
        )));
    }
    let local = hostname.is_local();
    if local && !app.allow_private_hosts {
        return Err(XrpcError::invalid(format!(
            "{hostname} is a local or private address; this relay does not crawl those"
        )));
    }
    // Resolved (and every address checked) before anything is recorded.
    app.dns
        .resolve(&hostname.host_str(), hostname.port())
        .await
        .map_err(|e| XrpcError::invalid(e.to_string()))?;
    let now = app.hosts.clock().now_micros();
    if known.is_none() && !app.hosts.policy().admits(hostname.as_str()) {
        app.hosts
            .policy()
            .record_pending(hostname.as_str(), now)
            .map_err(XrpcError::internal)?;
        tracing::info!(%hostname, "requestCrawl from an unlisted host recorded as pending");
        return Err(XrpcError::invalid(format!(
            "this relay crawls only allowlisted hosts; the request for {hostname} is recorded for the operator to review"
        )));
    }
    // The probe goes through the outbound client: the SSRF rule checks the
    // addresses it dials, and it follows no redirects, so it cannot be
    // bounced to an internal address.
    let secure = !(local && app.allow_private_hosts);
    let url = format!(
        "{}/xrpc/com.atproto.server.describeServer",
        hostname.origin(secure, false)
    );
    let probe = app
        .outbound
        .get(&url)
        .map_err(|e| XrpcError::invalid(e.to_string()))?
        .timeout(PROBE_TIMEOUT)
        .send()
        .await;
    if let Ok(r) = &probe {
        let server = r
            .headers()
            .get(axum::http::header::SERVER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if server.contains(super::RELAY_SERVER_MARK) {
            return Err(XrpcError::invalid(format!(
                "{hostname} identifies as a relay ({server:?}); relays are not crawled (loop guard)"
            )));
        }
    }
    match probe {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            return Err(XrpcError::invalid(format!(
                "{hostname} answered describeServer with HTTP {}; is it a PDS?",
                r.status().as_u16()
            )))
        }
        Err(e) => {
            return Err(XrpcError::invalid(format!(
                "could not reach {hostname}: {e}"
            )));
        }
    }
    if known.is_none()
        && !app
            .hosts
            .policy()
            .count_new_host(now)
            .map_err(XrpcError::internal)?
    {
        return Err(XrpcError::named(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitExceeded",
            "this relay has admitted its new hosts for today; ask again tomorrow (UTC)",
        ));
    }
    let started = app.crawlers.ensure(&hostname);
    tracing::info!(%hostname, started, known = known.is_some(), "requestCrawl accepted");
    Ok(StatusCode::OK.into_response())
}

/// `HostBanned` (400, the lexicon's error for refused hosts).
fn banned(message: String) -> XrpcError {
    XrpcError::named(StatusCode::BAD_REQUEST, "HostBanned", message)
}

/// `host[:port]` in its one canonical spelling ([`HostName`]), or
/// `InvalidRequest` saying what is wrong with it.
pub fn parse_hostname(raw: &str) -> Result<HostName, XrpcError> {
    HostName::parse(raw).map_err(|e| XrpcError::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_hostname;

    #[test]
    fn hostnames() {
        for ok in [
            "pds.example.com",
            "PDS.Example.com",
            "127.0.0.1:2583",
            "localhost:2583",
            "::1",
            "[::1]:2583",
        ] {
            assert!(parse_hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://pds.example.com",
            "pds.example.com/x",
            "",
            "a@b.com",
            "nodot",
            "pds.example.com:0",
            "pds.example.com:99999",
            "127.0.0.1:+42181",
            "[nope]:80",
        ] {
            assert!(parse_hostname(bad).is_err(), "{bad}");
        }
    }
}
