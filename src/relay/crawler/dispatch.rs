//! What a crawler does with one frame before dispatch: the framing and seq
//! checks (broken framing ends the connection), the host's budget, the DID
//! read without decoding the body, and the identity looked up or resolved;
//! then the event joins the pending batch.
//!
//! Separate from the socket loop ([`super::connection`]): these are the
//! per-event rules, which the loop only calls.

use bytes::Bytes;

use super::connection::{Connection, End};
use crate::clock::now_micros;
use crate::control::Admit;
use crate::net::upstream_log::clip;
use crate::relay::inbound::Inbound;
use crate::relay::metrics::{CRAWLER_MALFORMED_FRAMES, CRAWLER_NON_INCREASING_SEQ, EVENTS_DROPPED};
use crate::relay::verifier::DropReason;
use crate::wire::frame::{decode_header, peek_did, peek_seq, Body, ErrorFrame, EventKind, Info};

impl Connection<'_> {
    /// Handles one frame; `Some` ends the connection.
    pub(super) async fn on_frame(&mut self, frame: Bytes, last_seq: &mut u64) -> Option<End> {
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

fn malformed(what: &str) -> End {
    metrics::counter!(CRAWLER_MALFORMED_FRAMES).increment(1);
    End::Reconnect(format!("malformed {what}; dropping the connection"))
}
