//! Crawlers: one task per upstream host, reading its `subscribeRepos`.
//!
//! - Resumes after the host's finished watermark; a new host is read from
//!   the oldest event it retains (`cursor=0`), as the reference relay does.
//! - Reads frames of up to 5 MB; pings when idle and reconnects when a ping
//!   goes unanswered.
//! - Drops frames whose seq does not increase.
//! - Resolves the DID's identity before dispatching, holding the stream while
//!   a resolver failure is transient (the host's later events wait behind it,
//!   and TCP backpressure reaches the upstream); a definitive failure lets the
//!   event through without identity, for the verifier to drop and count.
//! - Reconnects forever with capped exponential backoff and jitter. The
//!   failures are remembered across handshakes: a connection that ends
//!   within 30 s counts as a failure like a refused dial,
//!   so a host that completes the handshake and then breaks the stream is
//!   retried ever more slowly, not every half second.
//! - What the upstream sends is logged within a line budget per host
//!   (`#info`, error frames, close reasons; each line cut short); every
//!   frame is counted by type
//!   ([`EVENTS_RECEIVED`](super::metrics::EVENTS_RECEIVED)).
//! - Stops reading a host while [`super::hosts::MAX_HELD_EVENTS`] of its
//!   events wait for an identity re-resolution, so a host forging events
//!   for accounts it does not hold slows itself, not the relay.
//! - A `FutureCursor` from upstream means the upstream lost data: the crawler
//!   stops, marks the host `offline` and says so, instead of looping.
//! - Each event is admitted by the host's budget first: the per-second pace
//!   delays it; a spent hourly or daily budget ends the connection before the
//!   event (it stays upstream, behind our cursor), marks the host
//!   `throttled`, and reconnects from the cursor when the window resets.
//! - The operator's global pause ends every connection the same way until
//!   crawling resumes; a blocked (banned) host's crawler is stopped.
//!
//! - Reads the DID (to route and resolve) without decoding the body: the
//!   verifier decodes each frame once, fully.
//! - Dispatches in batches: frames already read from the socket are
//!   collected per verifier thread and sent together when the socket has
//!   nothing more ready (or [`MAX_DISPATCH`](super::pool::MAX_DISPATCH)
//!   are pending), so a busy stream costs one hand-over per batch, an idle
//!   one adds no delay. Anything that may wait (a budget pace, an identity
//!   fetch, the end of the connection) sends what is pending first.
//!
//! Broken framing (an unreadable header or seq) drops the connection, as the
//! event-stream spec makes it fatal, and the reconnect backoff bounds what a
//! hostile host costs. A frame whose header and seq are sound but whose body
//! is invalid (bad CBOR, over a size limit) is dropped as one bad event and
//! counted; the stream goes on past its seq.
//!
//! Laid out as a folder, one concept a file, because the crawler is several
//! steps of one pipeline that change for different reasons:
//! - this file: [`Crawlers`], which starts, stops and pauses one task per
//!   host, and its [`CrawlerConfig`];
//! - `reconnect`: a host's task, dialing, backing off and waiting out
//!   budgets between connections;
//! - `connection`: reading one connection's frames and how it ends;
//! - `dispatch`: what is done with one frame (framing, seq, budget, DID,
//!   identity) before it joins a batch;
//! - `batch`: the events read and not yet handed to the verifier threads;
//! - `frame_counters`: the per-connection metric handles.

mod batch;
mod connection;
mod dispatch;
mod frame_counters;
mod reconnect;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use super::hosts::Hosts;
use super::pool::Pool;
use crate::identity::Resolver;
use crate::log::HostStatus;
use crate::net::{Dns, HostName};

use reconnect::crawl;
pub use reconnect::subscribe_url;

/// Crawler settings.
#[derive(Clone, Debug)]
pub struct CrawlerConfig {
    /// Dial loopback/private hosts (over ws://) — development and tests.
    pub allow_private: bool,
    /// Longest wait between reconnects.
    pub max_backoff: Duration,
    /// Longest wait between reconnects once a host is `offline`.
    pub offline_backoff: Duration,
    /// Ping after this long without traffic; give up after the same again.
    pub idle_ping: Duration,
    /// Resolves hosts for dialing (with the SSRF rule).
    pub dns: Dns,
}

/// Starts and tracks the crawler tasks.
#[derive(Clone)]
pub struct Crawlers {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: CrawlerConfig,
    hosts: Hosts,
    pool: Pool,
    resolver: Resolver,
    running: DashMap<String, tokio::task::JoinHandle<()>>,
    /// The operator's global pause (initially the stored setting).
    paused: tokio::sync::watch::Sender<bool>,
}

impl Crawlers {
    /// A crawler manager feeding `pool`.
    pub fn new(cfg: CrawlerConfig, hosts: Hosts, pool: Pool, resolver: Resolver) -> Crawlers {
        let paused = tokio::sync::watch::Sender::new(hosts.policy().paused());
        Crawlers {
            inner: Arc::new(Inner {
                cfg,
                hosts,
                pool,
                resolver,
                running: DashMap::new(),
                paused,
            }),
        }
    }

    /// Starts crawling `hostname` unless a crawler for it is already running
    /// or the host is blocked or under a domain ban. Returns whether one was
    /// started.
    pub fn ensure(&self, hostname: &HostName) -> bool {
        let key = hostname.as_str();
        if let Some(task) = self.inner.running.get(key) {
            if !task.is_finished() {
                // Already crawled: cut a reconnect backoff short instead.
                if let Some(host) = self.inner.hosts.get(key) {
                    host.wake.notify_one();
                }
                return false;
            }
        }
        if let Some(ban) = self.inner.hosts.policy().ban_of(key) {
            tracing::info!(%hostname, %ban, "not crawling a host under a domain ban");
            return false;
        }
        let (host, _) = self
            .inner
            .hosts
            .get_or_create(hostname, self.inner.hosts.clock().now_micros());
        if host.status() == HostStatus::Banned {
            return false;
        }
        host.set_status(HostStatus::Active);
        let inner = self.inner.clone();
        let task = tokio::spawn(async move { crawl(inner, host).await });
        self.inner.running.insert(key.to_owned(), task);
        true
    }

    /// Stops `hostname`'s crawler, if one runs, and waits for it to end.
    /// Events it already dispatched still finish.
    pub async fn stop(&self, hostname: &str) -> bool {
        match self.inner.running.remove(hostname) {
            Some((_, task)) => {
                task.abort();
                let _ = task.await;
                true
            }
            None => false,
        }
    }

    /// Pauses (`true`) or resumes all crawling. Connections end at once and
    /// resume from their cursors.
    pub fn set_paused(&self, paused: bool) {
        self.inner.paused.send_replace(paused);
    }

    /// Whether crawling is paused.
    pub fn paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    /// Hosts with a running crawler.
    pub fn running(&self) -> Vec<String> {
        self.inner
            .running
            .iter()
            .filter(|e| !e.value().is_finished())
            .map(|e| e.key().clone())
            .collect()
    }

    /// Stops every crawler and waits until their tasks are gone (so nothing
    /// they hold, such as the verifier pool, outlives the relay).
    pub async fn shutdown(&self) {
        let keys: Vec<String> = self.inner.running.iter().map(|e| e.key().clone()).collect();
        for key in keys {
            if let Some((_, task)) = self.inner.running.remove(&key) {
                task.abort();
                let _ = task.await;
            }
        }
    }
}
