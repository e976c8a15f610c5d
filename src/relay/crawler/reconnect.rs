//! A host's crawler task: dial, read a connection, and between connections
//! back off (failures remembered across handshakes), wait out a spent
//! budget or the operator's pause, or stop on `FutureCursor`.
//!
//! Separate from reading a connection ([`super::connection`]): this is the
//! life of a host across connections, that is the life of one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::connection::{read, End, Ws};
use super::{CrawlerConfig, Inner};
use crate::clock::now_micros;
use crate::log::HostStatus;
use crate::net::upstream_log::{clip, LogLimit};
use crate::net::{backoff, dial_ws, DialError, HostName};
use crate::relay::hosts::HostEntry;
use crate::relay::metrics::{
    CRAWLER_CONNECTIONS, CRAWLER_FUTURE_CURSOR, CRAWLER_RECONNECTS, CRAWLER_THROTTLED,
};
use crate::wire::frame::MAX_FRAME_LEN;

/// Each upstream connection's initial read buffer. tungstenite's default is
/// 128 KiB a connection, 125 MiB of RSS across a thousand hosts; frames are
/// a few KiB, a larger one grows the buffer as it arrives, and even a busy
/// host needs only a read per 16 KiB.
const READ_BUFFER: usize = 16 * 1024;

/// Counts the upstream connection while it lives.
struct Connected;

impl Connected {
    fn new() -> Connected {
        metrics::gauge!(CRAWLER_CONNECTIONS).increment(1.0);
        Connected
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!(CRAWLER_CONNECTIONS).decrement(1.0);
    }
}

/// A connection that stayed up this long was healthy: its end starts the
/// backoff over. A shorter one counts as a failure like a refused dial, so
/// a host that completes the handshake and then breaks the stream is
/// retried ever more slowly instead of every half second.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(30);

/// Most lines per host per minute logged from what an upstream sends
/// (`#info` frames, error frames, close reasons); the rest are counted.
const UPSTREAM_LOG_LINES_PER_MINUTE: u32 = 6;

pub(super) async fn crawl(inner: Arc<Inner>, host: Arc<HostEntry>) {
    // Upstream seqs at or below this were dispatched already (or persisted as
    // finished before a restart); the upstream must send only later ones.
    let mut last_seq = host.watermark();
    // Failed dials and short-lived connections in a row.
    let mut failures: u32 = 0;
    let mut paused = inner.paused.subscribe();
    let mut upstream_log = LogLimit::per_minute(UPSTREAM_LOG_LINES_PER_MINUTE);
    loop {
        if *paused.borrow_and_update() {
            tracing::info!(host = %host.hostname, "crawling paused by the operator");
            let _ = paused.wait_for(|p| !*p).await;
        }
        wait_out_budget(&inner, &host).await;
        let url = subscribe_url(&host.name, last_seq, inner.cfg.allow_private);
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(MAX_FRAME_LEN))
            .max_frame_size(Some(MAX_FRAME_LEN));
        let connected = tokio::time::timeout(
            Duration::from_secs(30),
            dial(&inner.cfg, &host.name, &url, config),
        )
        .await;
        match connected {
            Ok(Ok(ws)) => {
                tracing::info!(host = %host.hostname, cursor = last_seq, "subscribed");
                let connected_at = Instant::now();
                host.set_status(HostStatus::Active);
                // A fresh connection counts as activity until `idle_after`.
                host.last_event_micros
                    .store(now_micros(), std::sync::atomic::Ordering::Relaxed);
                let connected = Connected::new();
                let end = read(
                    &inner,
                    &host,
                    ws,
                    &mut last_seq,
                    &mut paused,
                    &mut upstream_log,
                )
                .await;
                drop(connected);
                match end {
                    End::FutureCursor => {
                        tracing::error!(host = %host.hostname, cursor = last_seq,
                            "upstream answered FutureCursor: it has lost events we already hold; crawler stopped, operator action needed");
                        metrics::counter!(CRAWLER_FUTURE_CURSOR).increment(1);
                        host.set_status(HostStatus::Offline);
                        return;
                    }
                    End::Reconnect(why) => {
                        if connected_at.elapsed() >= HEALTHY_CONNECTION {
                            failures = 0;
                        }
                        failures += 1;
                        if let Some(suppressed) = upstream_log.allow() {
                            tracing::warn!(host = %host.hostname, reason = %why, failures, suppressed,
                                "upstream connection ended");
                        }
                    }
                    // Both wait at the top of the loop, then reconnect at once.
                    End::Throttled | End::Paused => {
                        failures = 0;
                        continue;
                    }
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                if let Some(suppressed) = upstream_log.allow() {
                    tracing::warn!(host = %host.hostname, error = %clip(&e.to_string(), 300), failures, suppressed, "connect failed");
                }
            }
            Err(_) => {
                failures += 1;
                tracing::warn!(host = %host.hostname, failures, "connect timed out");
            }
        }
        // Offline hosts are never abandoned, only retried more slowly; a
        // requestCrawl from the host wakes the crawler at once.
        let cap = if failures >= 3 {
            host.set_status(HostStatus::Offline);
            inner.cfg.offline_backoff.max(inner.cfg.max_backoff)
        } else {
            inner.cfg.max_backoff
        };
        metrics::counter!(CRAWLER_RECONNECTS).increment(1);
        tokio::select! {
            _ = tokio::time::sleep(backoff(failures, cap)) => {}
            _ = host.wake.notified() => {
                tracing::info!(host = %host.hostname, "reconnecting now: the host asked to be crawled");
            }
        }
    }
}

/// Dials the host's firehose with the crawler's DNS (and so its SSRF rule).
async fn dial(
    cfg: &CrawlerConfig,
    hostname: &HostName,
    url: &str,
    ws: WebSocketConfig,
) -> Result<Ws, DialError> {
    dial_ws(&cfg.dns, &hostname.host_str(), hostname.port(), url, ws).await
}

/// Waits while the host's hourly or daily budget is spent, as `throttled`.
/// Re-checks at least every second, so an operator raising the budget
/// resumes the host without waiting for the window.
async fn wait_out_budget(inner: &Inner, host: &Arc<HostEntry>) {
    let Some(until) = host.budget.throttled_until() else {
        return;
    };
    let clock = inner.hosts.clock();
    host.set_status(HostStatus::Throttled);
    let _ = inner.hosts.persist(host);
    let _ = inner.hosts.persist_budget(host);
    metrics::counter!(CRAWLER_THROTTLED).increment(1);
    tracing::warn!(host = %host.hostname, until_micros = until, usage = ?host.budget.usage(),
        "host over its event budget: paused until the window resets");
    while let Some(until) = host.budget.throttled_until() {
        let step = clock.now_micros().saturating_add(1_000_000).min(until);
        clock.sleep_until(step).await;
    }
    tracing::info!(host = %host.hostname, "budget window reset; resuming from the cursor");
    host.set_status(HostStatus::Active);
}

/// `ws(s)://host/xrpc/com.atproto.sync.subscribeRepos?cursor=N`: plain ws
/// only for loopback/private hosts when they are allowed.
pub fn subscribe_url(host: &HostName, cursor: u64, allow_private: bool) -> String {
    let secure = !(allow_private && host.is_local());
    // Always sent, 0 included: a host seen for the first time is read from
    // the oldest event it retains, so the events that made it ask for a
    // crawl (a new PDS's first accounts) are not lost to a live start.
    format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos?cursor={cursor}",
        host.origin(secure, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_schemes() {
        let h = |s: &str| HostName::parse(s).unwrap();
        assert_eq!(
            subscribe_url(&h("127.0.0.1:2583"), 0, true),
            "ws://127.0.0.1:2583/xrpc/com.atproto.sync.subscribeRepos?cursor=0"
        );
        assert_eq!(
            subscribe_url(&h("127.0.0.1:2583"), 42, false),
            "wss://127.0.0.1:2583/xrpc/com.atproto.sync.subscribeRepos?cursor=42"
        );
        assert_eq!(
            subscribe_url(&h("pds.example.com"), 7, true),
            "wss://pds.example.com/xrpc/com.atproto.sync.subscribeRepos?cursor=7"
        );
        assert_eq!(
            subscribe_url(&h("[::1]:2583"), 7, true),
            "ws://[::1]:2583/xrpc/com.atproto.sync.subscribeRepos?cursor=7"
        );
    }
}
