//! Reading one upstream connection: frames off the socket, batched while the
//! socket has more ready, sent before any wait, until the connection ends
//! ([`End`]).
//!
//! Separate from the per-host loop ([`super::reconnect`]), which decides
//! what to do once a connection has ended, and from the per-frame rules
//! ([`super::dispatch`]).

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::batch::Pending;
use super::frame_counters::FrameCounters;
use super::Inner;
use crate::net::upstream_log::{clip, LogLimit};
use crate::net::{Keepalive, WsClient};
use crate::relay::hosts::HostEntry;
use crate::relay::pool::MAX_DISPATCH;

/// How a connection ended.
pub(super) enum End {
    /// Reconnect after backoff.
    Reconnect(String),
    /// The upstream reported `FutureCursor`: stop.
    FutureCursor,
    /// A budget window is spent: reconnect when it resets.
    Throttled,
    /// The operator paused crawling.
    Paused,
}

pub(super) type Ws = WsClient;

pub(super) async fn read(
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
pub(super) struct Connection<'a> {
    pub(super) inner: &'a Inner,
    pub(super) host: &'a Arc<HostEntry>,
    pub(super) counters: FrameCounters,
    pub(super) pending: &'a mut Pending,
    /// Lines logged from upstream content, per host (kept across
    /// reconnects by the crawler).
    pub(super) upstream_log: &'a mut LogLimit,
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
    pub(super) async fn flush(&mut self) -> bool {
        self.pending.flush(&self.inner.pool, self.host).await
    }
}
