//! In-process PDS hosts for the end-to-end benches: each serves a fixed,
//! pre-encoded stream over `subscribeRepos` and writes frames as fast as the
//! socket takes them, up to a release point the bench moves.
//!
//! Moved here from `benches/ingest.rs` (`ingest` and `pipeline` share it);
//! `start_stamped` is `pipeline`'s addition, for end-to-end latency.

use std::net::SocketAddr;
use std::sync::Arc;

use atrelay::wire::syntax::format_datetime_micros;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// A `time` with microseconds, for frames a host stamps as it writes them:
/// same length as every stamp, so the stamp overwrites it in place.
pub const STAMPED_TIME: &str = "2026-11-24T12:00:00.000000Z";

/// A PDS serving a fixed stream over `subscribeRepos`; frames up to
/// `released` are written as fast as the socket takes them.
pub struct Upstream {
    pub addr: SocketAddr,
    released: tokio::sync::watch::Sender<usize>,
}

impl Upstream {
    pub async fn start(frames: Arc<Vec<Bytes>>) -> Upstream {
        Upstream::start_with(frames, None).await
    }

    /// Like [`start`](Self::start), but each frame's `time` (which must be
    /// [`STAMPED_TIME`]) is overwritten with the wall-clock time, in
    /// microseconds, at the moment the host hands the frame to its socket.
    /// `time` is outside the signed commit, and the relay forwards it as is,
    /// so a subscriber can compute end-to-end latency from it. Costs the host
    /// one copy of each frame.
    pub async fn start_stamped(frames: Arc<Vec<Bytes>>) -> Upstream {
        let offsets = frames
            .iter()
            .map(|f| time_offset(f).expect("frame carries STAMPED_TIME"))
            .collect();
        Upstream::start_with(frames, Some(Arc::new(offsets))).await
    }

    async fn start_with(frames: Arc<Vec<Bytes>>, stamp: Option<Arc<Vec<usize>>>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (released, _) = tokio::sync::watch::channel(0usize);
        let gate = released.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_stream(
                    sock,
                    frames.clone(),
                    stamp.clone(),
                    gate.subscribe(),
                ));
            }
        });
        Upstream { addr, released }
    }

    /// Lets the host write its frames up to index `upto` (exclusive).
    pub fn release(&self, upto: usize) {
        self.released.send_replace(upto);
    }
}

/// Where [`STAMPED_TIME`]'s bytes start in `frame` (it sits before `blocks`,
/// in the first few hundred bytes).
fn time_offset(frame: &[u8]) -> Option<usize> {
    let needle = STAMPED_TIME.as_bytes();
    frame.windows(needle.len()).position(|w| w == needle)
}

/// The current wall-clock time as a [`STAMPED_TIME`]-shaped datetime.
pub fn now_stamp() -> String {
    let micros = atrelay::clock::now_micros();
    let millis_form = format_datetime_micros(micros); // ...SS.mmmZ
    format!("{}{:06}Z", &millis_form[..20], micros % 1_000_000)
}

async fn serve_stream(
    sock: TcpStream,
    frames: Arc<Vec<Bytes>>,
    stamp: Option<Arc<Vec<usize>>>,
    mut released: tokio::sync::watch::Receiver<usize>,
) {
    let _ = sock.set_nodelay(true);
    let mut cursor = 0usize;
    // tungstenite's callback signature returns its (large) error type.
    #[allow(clippy::result_large_err)]
    let ws = tokio_tungstenite::accept_hdr_async(sock, |req: &Request, res: Response| {
        cursor = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("cursor=")))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(res)
    })
    .await;
    let Ok(ws) = ws else { return };
    let (mut tx, mut rx) = ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    // Upstream seq = index + 1, so the cursor is the index to resume at.
    let mut next = cursor.min(frames.len());
    loop {
        let upto = (*released.borrow_and_update()).min(frames.len());
        while next < upto {
            let frame = match &stamp {
                None => frames[next].clone(),
                Some(offsets) => {
                    let at = offsets[next];
                    let mut copy = BytesMut::from(&frames[next][..]);
                    copy[at..at + STAMPED_TIME.len()].copy_from_slice(now_stamp().as_bytes());
                    copy.freeze()
                }
            };
            if tx.feed(Message::Binary(frame)).await.is_err() {
                return;
            }
            next += 1;
        }
        if tx.flush().await.is_err() || released.changed().await.is_err() {
            return;
        }
    }
}
