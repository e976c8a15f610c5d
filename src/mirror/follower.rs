//! The follower: reads the upstream relay's `subscribeRepos` and hands
//! checked frames to the [writer](super::writer).
//!
//! - Resumes strictly after the log's head (`cursor=<head>`): the log is the
//!   only state, so a restart after `kill -9` neither skips nor repeats an
//!   event. A first start (empty log) begins live, or replays the upstream's
//!   whole window with `mirror.backfill` (`cursor=0`).
//! - Reconnects forever with capped exponential backoff and jitter
//!   ([`crate::net::backoff`]); a connection that ends within 30 s counts as
//!   a failure like a refused dial, so a flapping upstream is retried ever
//!   more slowly.
//! - Pings after 30 s of silence and reconnects when the ping goes
//!   unanswered for another 30 s.
//! - Drops (and counts by reason, and logs within a line budget) frames it
//!   cannot store ([`super::frame_check`]) and seqs at or below the last one
//!   taken; the stream goes on: a websocket message is its own unit, so one
//!   bad frame does not desynchronise the rest. Frames up to twice the 5 MB
//!   limit are read and dropped; a larger one breaks the connection (the
//!   websocket reader refuses it) and is retried with backoff.
//! - `#info` frames are logged (`OutdatedCursor`: the upstream no longer has
//!   what follows our head, so this mirror has a hole there) and not stored.
//!   A `FutureCursor` error frame means the upstream lost events this mirror
//!   holds: logged as an error and retried at the longest backoff with the
//!   same cursor, never reset (the spec asks consumers to wait for an
//!   operator). Other error frames end the connection; it is retried.
//! - Batches like the relay's crawler: frames the socket already holds join
//!   the pending batch, which goes to the writer when the socket has nothing
//!   more ready (or [`MAX_BATCH`] are pending).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc::Sender;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::frame_check::{check, Checked, Dropped};
use super::metrics;
use super::upstream::Upstream;
use super::writer::{Upstreamed, MAX_BATCH};
use crate::clock::now_micros;
use crate::lifecycle::StopSignal;
use crate::net::upstream_log::{clip, LogLimit};
use crate::net::{backoff, dial_ws, Dns, Keepalive, WsClient, WsEnd};
use crate::wire::frame::MAX_FRAME_LEN;

/// Largest websocket message read: frames over the 5 MB protocol limit but
/// under this are read whole and dropped as oversize, so the stream goes on
/// past them.
const READ_LIMIT: usize = 2 * MAX_FRAME_LEN;

/// A connection that stayed up this long was healthy: its end starts the
/// backoff over.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(30);

/// Log lines per minute about what the upstream sends (drops, notices,
/// connection ends); the counters count every one.
const LOG_LINES_PER_MINUTE: u32 = 6;

/// How the follower connects.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    pub upstream: Upstream,
    /// Resolves the upstream (with the SSRF rule; the node exempts the
    /// operator's upstream host from it).
    pub dns: Dns,
    /// Longest wait between reconnects.
    pub max_backoff: Duration,
    /// Ping after this long without a frame; reconnect after as long again.
    pub idle_ping: Duration,
    /// On an empty log, replay the upstream's whole window.
    pub backfill: bool,
}

/// A handle on the follower's progress (for `_health`). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Follower {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    upstream_seq: AtomicU64,
    connected: AtomicBool,
}

/// How one connection ended.
enum End {
    Reconnect(String),
    FutureCursor,
    Stopped,
}

impl Follower {
    /// A follower that has read nothing yet.
    pub fn new() -> Follower {
        Follower::default()
    }

    /// The highest seq received from the upstream this run (0: none yet).
    pub fn upstream_seq(&self) -> u64 {
        self.state.upstream_seq.load(Ordering::Relaxed)
    }

    /// Whether the upstream firehose is connected now.
    pub fn connected(&self) -> bool {
        self.state.connected.load(Ordering::Relaxed)
    }

    /// Follows the upstream until `stop` turns true, resuming after
    /// `head` (the log's last seq), handing batches to `tx`. Returns when
    /// stopped or when the writer is gone.
    pub async fn run(
        self,
        cfg: FollowerConfig,
        head: u64,
        tx: Sender<Vec<Upstreamed>>,
        mut stop: StopSignal,
    ) {
        let mut reader = Reader {
            follower: self,
            last_seq: head,
            tx,
            log_limit: LogLimit::per_minute(LOG_LINES_PER_MINUTE),
            pending: Vec::new(),
        };
        let mut failures: u32 = 0;
        loop {
            let cursor = match reader.last_seq {
                0 if !cfg.backfill => None,
                last => Some(last),
            };
            let url = cfg.upstream.subscribe_url(cursor);
            let ws_config = WebSocketConfig::default()
                .max_message_size(Some(READ_LIMIT))
                .max_frame_size(Some(READ_LIMIT));
            let dial = dial_ws(
                &cfg.dns,
                cfg.upstream.host(),
                cfg.upstream.port(),
                &url,
                ws_config,
            );
            let connected = tokio::select! {
                biased;
                _ = stop.stopping() => return,
                c = tokio::time::timeout(Duration::from_secs(30), dial) => c,
            };
            match connected {
                Ok(Ok(ws)) => {
                    tracing::info!(upstream = %cfg.upstream, ?cursor, "following the upstream");
                    let since = Instant::now();
                    reader.set_connected(true);
                    let end = reader.read(ws, cfg.idle_ping, &mut stop).await;
                    reader.set_connected(false);
                    if since.elapsed() >= HEALTHY_CONNECTION {
                        failures = 0;
                    }
                    failures += 1;
                    match end {
                        End::Stopped => return,
                        End::FutureCursor => {
                            tracing::error!(upstream = %cfg.upstream, cursor = reader.last_seq,
                                "upstream answered FutureCursor: it has lost events this mirror already holds; retrying at the longest backoff with the same cursor (operator action needed)");
                            // The longest wait: the upstream needs an operator.
                            failures = failures.max(16);
                        }
                        End::Reconnect(why) => {
                            if let Some(suppressed) = reader.log_limit.allow() {
                                tracing::warn!(upstream = %cfg.upstream, reason = %why, failures, suppressed,
                                    "upstream connection ended");
                            }
                        }
                    }
                }
                Ok(Err(e)) => {
                    failures += 1;
                    if let Some(suppressed) = reader.log_limit.allow() {
                        tracing::warn!(upstream = %cfg.upstream, error = %clip(&e.to_string(), 300), failures, suppressed,
                            "connecting to the upstream failed");
                    }
                }
                Err(_) => {
                    failures += 1;
                    tracing::warn!(upstream = %cfg.upstream, failures, "connecting to the upstream timed out");
                }
            }
            if reader.tx.is_closed() {
                return;
            }
            ::metrics::counter!(metrics::RECONNECTS).increment(1);
            tokio::select! {
                biased;
                _ = stop.stopping() => return,
                _ = tokio::time::sleep(backoff(failures, cfg.max_backoff)) => {}
            }
        }
    }
}

/// The reading state kept across connections.
struct Reader {
    follower: Follower,
    /// The highest seq handed to the writer (or stored before the start).
    last_seq: u64,
    tx: Sender<Vec<Upstreamed>>,
    log_limit: LogLimit,
    pending: Vec<Upstreamed>,
}

impl Reader {
    fn set_connected(&self, up: bool) {
        self.follower.state.connected.store(up, Ordering::Relaxed);
        ::metrics::gauge!(metrics::CONNECTED).set(if up { 1.0 } else { 0.0 });
    }

    /// Reads one connection until it ends.
    async fn read(&mut self, ws: WsClient, idle_ping: Duration, stop: &mut StopSignal) -> End {
        let (mut tx, mut rx) = ws.split();
        let mut keepalive = Keepalive::new(idle_ping);
        loop {
            let ready = if !self.pending.is_empty() && self.pending.len() < MAX_BATCH {
                rx.next().now_or_never()
            } else {
                None
            };
            let next = match ready {
                Some(next) => Ok(next),
                None => {
                    if !self.flush().await {
                        return End::Stopped;
                    }
                    tokio::select! {
                        biased;
                        _ = stop.stopping() => return End::Stopped,
                        next = tokio::time::timeout(keepalive.idle(), rx.next()) => next,
                    }
                }
            };
            let msg = match keepalive.take(next, &mut tx).await {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(end) => {
                    if matches!(end, WsEnd::Failed(WsError::Capacity(_))) {
                        self.dropped(Dropped::Oversize, None);
                    }
                    return End::Reconnect(clip(&end.to_string(), 300));
                }
            };
            match msg {
                Message::Binary(frame) => {
                    if let Some(end) = self.on_frame(frame) {
                        // What came before the error frame is kept.
                        self.flush().await;
                        return end;
                    }
                }
                Message::Text(_) => self.dropped(Dropped::Text, None),
                Message::Close(_) => return End::Reconnect("closed by upstream".into()),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Hands the pending frames to the writer; false once it is gone.
    async fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut self.pending);
        self.tx.send(batch).await.is_ok()
    }

    /// Handles one frame; `Some` ends the connection.
    fn on_frame(&mut self, frame: Bytes) -> Option<End> {
        let (seq, time_micros) = match check(&frame) {
            Err(reason) => {
                self.dropped(reason, None);
                return None;
            }
            Ok(Checked::Info { name, message }) => {
                ::metrics::counter!(metrics::NOTICES, "name" => metrics::notice_label(name, false))
                    .increment(1);
                if let Some(suppressed) = self.log_limit.allow() {
                    let note = if name == "OutdatedCursor" {
                        "the upstream no longer holds the events after this mirror's head: they are missing here"
                    } else {
                        "upstream #info"
                    };
                    tracing::warn!(name = %clip(name, 64), message = %clip(message.unwrap_or(""), 200),
                        cursor = self.last_seq, suppressed, "{note}");
                }
                return None;
            }
            Ok(Checked::Error { error, message }) => {
                ::metrics::counter!(metrics::NOTICES, "name" => metrics::notice_label(error, true))
                    .increment(1);
                if error == "FutureCursor" {
                    return Some(End::FutureCursor);
                }
                return Some(End::Reconnect(format!(
                    "upstream error frame {} {}",
                    clip(error, 64),
                    clip(message.unwrap_or(""), 200)
                )));
            }
            Ok(Checked::Event { seq, time_micros }) => (seq, time_micros),
        };
        if seq <= self.last_seq {
            self.dropped(Dropped::NonIncreasing, Some(seq));
            return None;
        }
        self.last_seq = seq;
        self.follower
            .state
            .upstream_seq
            .store(seq, Ordering::Relaxed);
        ::metrics::gauge!(metrics::UPSTREAM_SEQ).set(seq as f64);
        self.pending.push(Upstreamed {
            seq,
            frame,
            received_micros: now_micros(),
            time_micros,
        });
        None
    }

    /// Counts a dropped frame and logs it within the line budget.
    fn dropped(&mut self, reason: Dropped, seq: Option<u64>) {
        ::metrics::counter!(metrics::DROPPED, "reason" => reason.label()).increment(1);
        if let Some(suppressed) = self.log_limit.allow() {
            tracing::warn!(
                reason = reason.label(),
                ?seq,
                last_seq = self.last_seq,
                suppressed,
                "dropped a frame from the upstream"
            );
        }
    }
}
