//! The fan-out benches' ceiling and phase bookkeeping: the same frames
//! written with the same batched vectored writes a session uses, straight
//! from a `Vec` (no ring, no session), and a countdown of readers.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atrelay::fanout::FrameQueue;
use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Writes every frame with batched vectored writes, `batch` frames per
/// flush, as a session would but from a plain `Vec`: the ceiling.
pub async fn raw_writer(mut sock: TcpStream, frames: Arc<Vec<Bytes>>, batch: usize) -> TcpStream {
    let mut queue = FrameQueue::new();
    for chunk in frames.chunks(batch) {
        for f in chunk {
            queue.push_binary(f.clone());
        }
        poll_fn(|cx| queue.poll_flush(cx, &mut sock))
            .await
            .expect("raw write");
    }
    sock
}

/// Completion tracking for one phase: readers count down, main waits.
pub struct Phase {
    left: AtomicUsize,
    done: Notify,
}

impl Phase {
    pub fn new(n: usize) -> Arc<Phase> {
        Arc::new(Phase {
            left: AtomicUsize::new(n),
            done: Notify::new(),
        })
    }

    pub fn finish_one(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Waits until every reader finished; false if `limit` passed first.
    pub async fn wait(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.done.notified();
            if self.left.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}
