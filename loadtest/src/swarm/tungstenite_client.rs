//! A subscriber on tokio-tungstenite: the swarm's first read path, one
//! general-purpose websocket client per subscriber (a message allocated per
//! frame). Kept for `wss://` relays and as the baseline the raw client's
//! CPU is compared with (`client = "tungstenite"`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::subscriber::{handle, pace, Checker, SubscriberStats};

/// Reads until `stop`, reconnecting with the last seq as cursor.
pub async fn run(
    url: Arc<str>,
    cursor: Option<u64>,
    max_rate: Option<f64>,
    stats: Arc<SubscriberStats>,
    stop: Arc<AtomicBool>,
) {
    let mut checker = Checker::new();
    let started = Instant::now();
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let target = match stats.resume_cursor(cursor) {
            Some(c) => format!("{url}?cursor={c}"),
            None => url.to_string(),
        };
        let Ok((ws, _)) = tokio_tungstenite::connect_async(&target).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        stats.mark_connected(&mut first);
        let (_tx, mut rx) = ws.split();
        while let Some(Ok(msg)) = rx.next().await {
            let Message::Binary(frame) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            handle(&frame, &stats, &mut checker);
            if let Some(rate) = max_rate {
                pace(&stats, rate, started).await;
            }
        }
        stats.connected.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
