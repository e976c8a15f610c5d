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
//!   frame is counted by type ([`EVENTS_RECEIVED`]).
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
//!   nothing more ready (or [`MAX_DISPATCH`] are pending), so a busy stream
//!   costs one hand-over per batch, an idle one adds no delay. Anything that
//!   may wait (a budget pace, an identity fetch, the end of the connection)
//!   sends what is pending first.
//!
//! Broken framing (an unreadable header or seq) drops the connection, as the
//! event-stream spec makes it fatal, and the reconnect backoff bounds what a
//! hostile host costs. A frame whose header and seq are sound but whose body
//! is invalid (bad CBOR, over a size limit) is dropped as one bad event and
//! counted; the stream goes on past its seq.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::{FutureExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::hosts::{HostEntry, Hosts};
use super::metrics::{
    CRAWLER_CONNECTIONS, CRAWLER_FRAMES, CRAWLER_FUTURE_CURSOR, CRAWLER_MALFORMED_FRAMES,
    CRAWLER_NON_INCREASING_SEQ, CRAWLER_RECONNECTS, CRAWLER_THROTTLED, EVENTS_DROPPED,
    EVENTS_RECEIVED,
};
use super::pool::{Pool, ShardMsg, MAX_DISPATCH};
use super::verifier::{DropReason, Inbound};
use crate::clock::now_micros;
use crate::control::Admit;
use crate::identity::Resolver;
use crate::log::HostStatus;
use crate::net::upstream_log::{clip, LogLimit};
use crate::net::{backoff, dial_ws, DialError, Dns, HostName, Keepalive, WsClient};
use crate::wire::frame::{
    decode_header, peek_did, peek_seq, Body, ErrorFrame, EventKind, Info, MAX_FRAME_LEN,
};

/// Each upstream connection's initial read buffer. tungstenite's default is
/// 128 KiB a connection, 125 MiB of RSS across a thousand hosts; frames are
/// a few KiB, a larger one grows the buffer as it arrives, and even a busy
/// host needs only a read per 16 KiB.
const READ_BUFFER: usize = 16 * 1024;

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

/// How a connection ended.
enum End {
    /// Reconnect after backoff.
    Reconnect(String),
    /// The upstream reported `FutureCursor`: stop.
    FutureCursor,
    /// A budget window is spent: reconnect when it resets.
    Throttled,
    /// The operator paused crawling.
    Paused,
}

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

async fn crawl(inner: Arc<Inner>, host: Arc<HostEntry>) {
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

type Ws = WsClient;

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

/// Events read and not yet dispatched, per verifier thread.
///
/// They are registered with the host ([`HostEntry::begin`], which holds the
/// persisted cursor back until they finish) only when they are handed to
/// the verifiers, with no wait in between: a crawler stopped while events
/// are pending (an aborted task) has registered none of them, so the host's
/// cursor stays below them and they are read again.
struct Pending {
    by_shard: Vec<Vec<Inbound>>,
    /// The pending events' upstream seqs, in arrival (= upstream) order.
    seqs: Vec<u64>,
}

impl Pending {
    fn new(shards: usize) -> Pending {
        Pending {
            by_shard: (0..shards).map(|_| Vec::new()).collect(),
            seqs: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.seqs.len()
    }

    fn push(&mut self, shard: usize, ev: Inbound) {
        self.seqs.push(ev.upstream_seq);
        self.by_shard[shard].push(ev);
    }

    /// Sends everything pending, each thread's share in one message. False
    /// once the verifier pool has stopped.
    async fn flush(&mut self, pool: &Pool, host: &HostEntry) -> bool {
        if self.seqs.is_empty() {
            return true;
        }
        // Room in every channel that gets events first: these are the only
        // waits, and nothing is registered or sent before they are over.
        let mut permits = Vec::with_capacity(self.by_shard.len());
        for shard in 0..self.by_shard.len() {
            if self.by_shard[shard].is_empty() {
                continue;
            }
            match pool.reserve(shard).await {
                Some(permit) => permits.push((shard, permit)),
                None => return false,
            }
        }
        for seq in self.seqs.drain(..) {
            host.begin(seq);
        }
        for (shard, permit) in permits {
            let events = &mut self.by_shard[shard];
            let batch = std::mem::replace(events, Vec::with_capacity(events.len()));
            permit.send(ShardMsg::Events(batch));
        }
        true
    }
}

async fn read(
    inner: &Inner,
    host: &Arc<HostEntry>,
    ws: Ws,
    last_seq: &mut u64,
    paused: &mut tokio::sync::watch::Receiver<bool>,
    upstream_log: &mut LogLimit,
) -> End {
    let mut pending = Pending::new(inner.pool.shards());
    let mut conn = Connection {
        inner,
        host,
        counters: FrameCounters::new(),
        pending: &mut pending,
        upstream_log,
    };
    let end = conn.read_frames(ws, last_seq, paused).await;
    // Events already registered with the host must reach a verifier, or its
    // cursor would stop at them.
    if !pending.flush(&inner.pool, host).await {
        return End::Reconnect("verifier pool stopped".into());
    }
    end
}

/// One upstream connection's reading state.
struct Connection<'a> {
    inner: &'a Inner,
    host: &'a Arc<HostEntry>,
    counters: FrameCounters,
    pending: &'a mut Pending,
    /// Lines logged from upstream content, per host (kept across
    /// reconnects by the crawler).
    upstream_log: &'a mut LogLimit,
}

impl Connection<'_> {
    async fn read_frames(
        &mut self,
        ws: Ws,
        last_seq: &mut u64,
        paused: &mut tokio::sync::watch::Receiver<bool>,
    ) -> End {
        let (mut tx, mut rx) = ws.split();
        let mut keepalive = Keepalive::new(self.inner.cfg.idle_ping);
        loop {
            // A frame the socket already holds joins the pending batch;
            // otherwise the batch goes out before waiting.
            let ready = if self.pending.len() > 0 && self.pending.len() < MAX_DISPATCH {
                rx.next().now_or_never()
            } else {
                None
            };
            let next = match ready {
                Some(next) => Ok(next),
                None => {
                    if !self.flush().await {
                        return End::Reconnect("verifier pool stopped".into());
                    }
                    // Events of this host waiting for an identity refresh
                    // are capped: past the cap the host is read no further
                    // until they are decided (a forging host slows itself).
                    self.host.wait_for_held_room().await;
                    tokio::select! {
                        biased;
                        _ = paused.wait_for(|p| *p) => return End::Paused,
                        next = tokio::time::timeout(keepalive.idle(), rx.next()) => next,
                    }
                }
            };
            let msg = match keepalive.take(next, &mut tx).await {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(end) => return End::Reconnect(clip(&end.to_string(), 300)),
            };
            match msg {
                Message::Binary(frame) => {
                    if let Some(end) = self.on_frame(frame, last_seq).await {
                        return end;
                    }
                }
                Message::Text(_) => {
                    return End::Reconnect("text message on a binary stream".into())
                }
                Message::Close(_) => return End::Reconnect("closed by upstream".into()),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Sends the pending events; false once the verifier pool has stopped.
    async fn flush(&mut self) -> bool {
        self.pending.flush(&self.inner.pool, self.host).await
    }

    /// Handles one frame; `Some` ends the connection.
    async fn on_frame(&mut self, frame: Bytes, last_seq: &mut u64) -> Option<End> {
        let (inner, host) = (self.inner, self.host);
        let received_micros = now_micros();
        self.counters.frames.increment(1);
        host.last_event_micros
            .store(received_micros, std::sync::atomic::Ordering::Relaxed);
        let Ok((header, body)) = decode_header(&frame) else {
            return Some(malformed("frame header"));
        };
        let kind = header.kind();
        // Every frame with a readable header is counted by type, including
        // the ones never forwarded (`#info`, errors, unknown types).
        self.counters.received(kind).increment(1);
        match kind {
            EventKind::Error => {
                let (error, message) = match ErrorFrame::decode(body) {
                    Ok(e) => (e.error.to_owned(), e.message.map(|m| clip(m, 200))),
                    Err(_) => (String::new(), None),
                };
                if error == ErrorFrame::FUTURE_CURSOR {
                    return Some(End::FutureCursor);
                }
                return Some(End::Reconnect(format!(
                    "upstream error frame {} {}",
                    clip(&error, 64),
                    message.unwrap_or_default()
                )));
            }
            EventKind::Info => {
                // Upstream content: logged within a per-host line budget,
                // each line cut short.
                if let Some(suppressed) = self.upstream_log.allow() {
                    let (name, message) = match Info::decode(body) {
                        Ok(i) => (clip(i.name, 64), i.message.map(|m| clip(m, 200))),
                        Err(_) => ("(unreadable)".to_owned(), None),
                    };
                    tracing::info!(host = %host.hostname, %name, message = message.as_deref().unwrap_or(""),
                        suppressed, "upstream #info");
                }
                return None;
            }
            EventKind::Unknown => return None,
            _ => {}
        }
        let seq = match peek_seq(body) {
            Ok(Some(s)) if s > 0 => s as u64,
            _ => return Some(malformed("seq")),
        };
        if seq <= *last_seq {
            metrics::counter!(CRAWLER_NON_INCREASING_SEQ).increment(1);
            return None;
        }
        // The budget comes before anything is dispatched: a refused event
        // stays behind the cursor and comes again after the window resets.
        loop {
            match host.budget.admit() {
                Admit::Go => break,
                Admit::Pace(wait) => {
                    if !self.flush().await {
                        return Some(End::Reconnect("verifier pool stopped".into()));
                    }
                    tokio::time::sleep(wait).await
                }
                Admit::Throttled { .. } => return Some(End::Throttled),
            }
        }
        // The framing is sound and the seq readable: a body without a
        // readable DID is one bad event, not a broken stream. Drop it and
        // move past its seq; dropping the connection instead would only have
        // the upstream resend the same frame forever. The rest of the body
        // is decoded (once) by the verifier, which drops the event as
        // malformed if it is not valid.
        let Some(did) = peek_did(kind, body).ok().flatten() else {
            metrics::counter!(EVENTS_DROPPED, "reason" => DropReason::Malformed.as_str())
                .increment(1);
            host.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Registered in upstream order: the pending events go first.
            if !self.flush().await {
                return Some(End::Reconnect("verifier pool stopped".into()));
            }
            host.begin(seq);
            host.finish(seq);
            *last_seq = seq;
            return None;
        };
        // Every event type, `#identity` included, is decided against the
        // DID's current document; the verifier asks for a (rate-limited)
        // re-resolution when the event suggests the document changed.
        let identity = match inner.resolver.cached(did) {
            Some(identity) => Some(identity),
            None => {
                // A fetch may take a while (or hold the stream): what is
                // pending goes first.
                if !self.flush().await {
                    return Some(End::Reconnect("verifier pool stopped".into()));
                }
                inner.resolver.resolve_patiently(did, false).await
            }
        };
        let shard = inner.pool.shard_of(did);
        // Registered with the host when dispatched (see `Pending`).
        *last_seq = seq;
        let inbound = Inbound {
            host: host.hostname.clone(),
            upstream_seq: seq,
            frame,
            received_micros,
            identity,
            refreshed: false,
        };
        self.pending.push(shard, inbound);
        None
    }
}

/// Per-frame counters, resolved once per connection: a registry lookup per
/// frame costs more than the increment.
struct FrameCounters {
    frames: metrics::Counter,
    /// [`EVENTS_RECEIVED`] by [`EventKind::label`], indexed as
    /// in [`FrameCounters::received`].
    received: [metrics::Counter; 7],
}

impl FrameCounters {
    fn new() -> FrameCounters {
        let received = [
            EventKind::Commit,
            EventKind::Sync,
            EventKind::Identity,
            EventKind::Account,
            EventKind::Info,
            EventKind::Error,
            EventKind::Unknown,
        ]
        .map(|k| metrics::counter!(EVENTS_RECEIVED, "type" => k.label()));
        FrameCounters {
            frames: metrics::counter!(CRAWLER_FRAMES),
            received,
        }
    }

    fn received(&self, kind: EventKind) -> &metrics::Counter {
        let i = match kind {
            EventKind::Commit => 0,
            EventKind::Sync => 1,
            EventKind::Identity => 2,
            EventKind::Account => 3,
            EventKind::Info => 4,
            EventKind::Error => 5,
            EventKind::Unknown => 6,
        };
        &self.received[i]
    }
}

fn malformed(what: &str) -> End {
    metrics::counter!(CRAWLER_MALFORMED_FRAMES).increment(1);
    End::Reconnect(format!("malformed {what}; dropping the connection"))
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
