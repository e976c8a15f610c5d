//! A subscriber on a plain TCP socket: our own upgrade (`handshake`) and
//! frame reader (`ws_reader`), reading into one 64 KiB buffer shared by
//! every socket of the thread.
//!
//! Why: the swarm must cost the machine less than the relay it measures
//! (they share the cores). Per wake-up this does one `read` of up to 64 KiB
//! and hands each frame's bytes, in place, to `subscriber::handle`, which
//! for most subscribers peeks only the header and `seq`. No allocation per
//! frame; a connection holds only the cut-off start of a frame between
//! reads, not a buffer of its own.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::handshake::{upgrade, Target};
use super::subscriber::{handle, pace, Checker, SubscriberStats};
use super::ws_frame::{encode_client_frame, FrameError, OP_CLOSE, OP_PONG};
use super::ws_reader::{Fed, FrameReader, Received};

/// Bytes read per `read` call. Big enough to take a burst of firehose
/// frames in one syscall; one buffer per thread, so its size does not
/// multiply by the subscribers.
pub const READ_CHUNK: usize = 64 << 10;

/// Bytes read per call by a rate-limited (slow) subscriber, which sleeps
/// after each read: small, so it reads at its pace rather than in 64 KiB
/// gulps, and the relay's send queue to it fills as a slow consumer's would.
const SLOW_READ_CHUNK: usize = 4 << 10;

thread_local! {
    /// The read buffer of every socket this thread's runtime polls. Only
    /// borrowed inside one poll (never across an `.await`), so sockets
    /// cannot see each other's bytes.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// How a connection ended.
enum Ended {
    /// The relay closed the socket, sent a close frame, or it failed.
    Closed,
    /// The relay broke the framing: counted as a decode error.
    Protocol(FrameError),
}

/// How one subscriber reads.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub cursor: Option<u64>,
    /// Frames per second at most (a slow consumer).
    pub max_rate: Option<f64>,
    /// Least time between two reads of the socket (see
    /// `SwarmConfig::read_interval_ms`); zero reads on every wake-up.
    pub interval: Duration,
}

/// Reads until `stop`, reconnecting with the last seq as cursor. At most
/// `connecting.available_permits()` subscribers of a thread connect at
/// once, so ten thousand starting together do not overflow the relay's
/// accept backlog.
pub async fn run(
    target: Arc<Target>,
    reading: Reading,
    stats: Arc<SubscriberStats>,
    stop: Arc<AtomicBool>,
    connecting: Arc<Semaphore>,
) {
    let mut checker = Checker::new();
    let mut reader = FrameReader::new();
    let started = Instant::now();
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let from = stats.resume_cursor(reading.cursor);
        let connected = {
            let _permit = connecting.acquire().await;
            connect(&target, from).await
        };
        let Some((mut stream, early)) = connected else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        stats.mark_connected(&mut first);
        reader.reset();
        let ended = read(
            &mut stream,
            &early,
            &mut reader,
            &stats,
            &mut checker,
            reading.max_rate.map(|r| (r, started)),
            reading.interval,
        )
        .await;
        if let Ended::Protocol(e) = ended {
            eprintln!("swarm: websocket protocol error from the relay: {e}");
            stats.decode_errors.fetch_add(1, Ordering::Relaxed);
        }
        stats.connected.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(target: &Target, cursor: Option<u64>) -> Option<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(target.addr).await.ok()?;
    let early = upgrade(&mut stream, target, cursor).await.ok()?;
    Some((stream, early))
}

/// Reads frames until the connection ends. `slow` is a slow subscriber's
/// frames-per-second limit and its start; `interval` the least time
/// between reads.
async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    early: &[u8],
    reader: &mut FrameReader,
    stats: &SubscriberStats,
    checker: &mut Checker,
    slow: Option<(f64, Instant)>,
    interval: Duration,
) -> Ended {
    // Pongs and the close reply, written after the read that asked for them.
    let mut replies = Vec::new();
    let mut fed = reader.feed(early, |r| received(r, stats, checker, &mut replies));
    let limit = if slow.is_some() {
        SLOW_READ_CHUNK
    } else {
        READ_CHUNK
    };
    // Whether the last read filled the buffer: more is likely waiting, so
    // the next read comes at once rather than after `interval`, and a long
    // interval cannot leave the reader behind the relay.
    let mut filled = false;
    loop {
        match fed {
            Ok(Fed::More) => {}
            Ok(Fed::Closed) => {
                let _ = stream.write_all(&replies).await;
                return Ended::Closed;
            }
            Err(e) => return Ended::Protocol(e),
        }
        if !replies.is_empty() {
            if stream.write_all(&replies).await.is_err() {
                return Ended::Closed;
            }
            replies.clear();
        }
        if let Some((rate, started)) = slow {
            pace(stats, rate, started).await;
        }
        if !interval.is_zero() && !filled {
            // Let frames gather in the socket: the next read takes them all.
            tokio::time::sleep(interval).await;
        }
        let chunk = poll_fn(|cx| {
            READ_BUF.with_borrow_mut(|buf| {
                let mut into = ReadBuf::new(&mut buf[..limit]);
                match Pin::new(&mut *stream).poll_read(cx, &mut into) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(_)) => Poll::Ready(None),
                    Poll::Ready(Ok(())) if into.filled().is_empty() => Poll::Ready(None),
                    Poll::Ready(Ok(())) => {
                        filled = into.remaining() == 0;
                        Poll::Ready(Some(
                            reader
                                .feed(into.filled(), |r| received(r, stats, checker, &mut replies)),
                        ))
                    }
                }
            })
        })
        .await;
        match chunk {
            Some(result) => fed = result,
            None => return Ended::Closed,
        }
    }
}

/// One message or control frame from the relay.
fn received(
    r: Received<'_>,
    stats: &SubscriberStats,
    checker: &mut Checker,
    replies: &mut Vec<u8>,
) {
    match r {
        Received::Binary(frame) => handle(frame, stats, checker),
        // The firehose sends no text; nothing to count.
        Received::Text(_) => {}
        Received::Ping(payload) => encode_client_frame(replies, OP_PONG, payload, rand::random()),
        // Echo the status code (RFC 6455 §5.5.1), not the reason.
        Received::Close(payload) => {
            let code = payload.get(..2).unwrap_or(&[]);
            encode_client_frame(replies, OP_CLOSE, code, rand::random())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::subscriber::identity_frame;
    use super::super::ws_frame::{encode_server_frame, OP_BINARY};
    use super::*;

    /// A non-checker that reads at most once a second takes a burst of
    /// over 20 full 64 KiB reads at once: a read that fills the buffer is
    /// followed by the next without waiting out the interval, so a long
    /// interval never leaves a reader behind. On a pipe already holding
    /// the burst, so the test does not depend on when a sender is
    /// scheduled.
    #[tokio::test]
    async fn a_long_read_interval_still_drains_a_burst_at_once() {
        const FRAMES: i64 = 20_000;
        let mut bytes = Vec::new();
        for seq in 1..=FRAMES {
            encode_server_frame(&mut bytes, true, OP_BINARY, &identity_frame(seq));
        }
        assert!(bytes.len() > 20 * READ_CHUNK, "{}", bytes.len());
        let (mut client, mut server) = tokio::io::duplex(bytes.len() + 1);
        server.write_all(&bytes).await.unwrap();
        drop(server);
        let stats = SubscriberStats::new(false);
        let started = Instant::now();
        let ended = tokio::time::timeout(
            Duration::from_secs(30),
            read(
                &mut client,
                &[],
                &mut FrameReader::new(),
                &stats,
                &mut Checker::new(),
                None,
                Duration::from_secs(1),
            ),
        )
        .await
        .expect("the burst is read within 30 s");
        assert!(matches!(ended, Ended::Closed));
        assert_eq!(stats.frames.load(Ordering::Relaxed), FRAMES as u64);
        // One interval before the first read, one after the last full one
        // (the rest came back to back); one interval per read would be 20 s.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(6), "{took:?}");
    }
}
