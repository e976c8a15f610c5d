//! What a session asks of a TCP socket beyond reading and writing it: a
//! bound on the bytes the kernel holds unsent (so "the socket accepted
//! bytes" means "the client read bytes"), and the bytes hyper read past the
//! upgrade request ([`ReadAhead`]).
//!
//! Sessions run over any `AsyncRead + AsyncWrite` (tests use in-memory
//! pipes); the socket options apply when the stream is a
//! [`tokio::net::TcpStream`], bare or inside a [`ReadAhead`], found once
//! when the session starts and once when it ends — never per event.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A stream and the bytes already read from it that its reader has not
/// seen: what is left of an HTTP upgrade (a client may send its first
/// frames right behind the upgrade request, before the 101 arrives).
/// Reads return `head` first; writes go straight to the stream.
#[derive(Debug)]
pub struct ReadAhead<S> {
    head: Bytes,
    inner: S,
}

impl<S> ReadAhead<S> {
    /// `inner`, read from `head` first.
    pub fn new(head: Bytes, inner: S) -> ReadAhead<S> {
        ReadAhead { head, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.head.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.head.len().min(buf.remaining());
        buf.put_slice(&self.head[..n]);
        self.head.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How many bytes the peer's TCP has acknowledged on `tcp`
/// (`tcpi_bytes_acked`), where the kernel says. Acknowledged bytes are in
/// the client's receive buffer; the count grows only while that buffer has
/// room, i.e. while the client reads. `None` off Linux or on error.
pub(crate) fn bytes_acked(tcp: &TcpStream) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: tcp_info is plain integers, valid when zeroed.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info`.
        let r = unsafe {
            libc::getsockopt(
                tcp.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
        (r == 0 && len as usize >= needed).then_some(info.tcpi_bytes_acked)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tcp;
        None
    }
}

/// Writes to a TCP socket with plain non-blocking sends, bypassing the
/// runtime's record of whether the socket is writable. Needed once: after
/// raising the unsent limit, the socket may take bytes although the
/// runtime, which saw it full, waits for a wake-up that raising the limit
/// need not send. `WouldBlock` is `Pending` without a wake-up registered:
/// poll through the stream itself to wait.
pub(crate) struct DirectWrite<'a>(pub(crate) &'a TcpStream);

impl AsyncWrite for DirectWrite<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        would_block_pending(socket2::SockRef::from(self.0).send(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        would_block_pending(socket2::SockRef::from(self.0).send_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn would_block_pending(r: io::Result<usize>) -> Poll<io::Result<usize>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

/// The TCP socket under `stream`, if it is one (bare or in a
/// [`ReadAhead`]).
pub(crate) fn tcp_of<S: 'static>(stream: &S) -> Option<&TcpStream> {
    let any = stream as &dyn Any;
    any.downcast_ref::<TcpStream>()
        .or_else(|| any.downcast_ref::<ReadAhead<TcpStream>>().map(|r| &r.inner))
}

/// Sets a subscriber socket's options: no Nagle, and an unsent limit of
/// `unsent_limit` bytes (0: none). Returns the limit if it was set.
///
/// Why no Nagle: the session already gathers what is ready into one write
/// (and the ring coalesces wakes under load), so holding a small write
/// back until the client acknowledges the last one only adds latency — up
/// to the client's 40 ms delayed ACK, which was the firehose's p99 before
/// this was set.
pub(crate) fn configure_subscriber(tcp: &TcpStream, unsent_limit: usize) -> Option<usize> {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    if unsent_limit == 0 {
        return None;
    }
    set_unsent_limit(tcp, unsent_limit)
        .map_err(|e| tracing::debug!(error = %e, "could not set TCP_NOTSENT_LOWAT"))
        .ok()
        .map(|()| unsent_limit)
}

/// Sets `TCP_NOTSENT_LOWAT`: the kernel then accepts writes only while
/// fewer than `bytes` are queued unsent, and wakes the writer as soon as the
/// unsent queue drains below half of that (Linux; a no-op error elsewhere).
pub(crate) fn set_unsent_limit(tcp: &TcpStream, bytes: usize) -> io::Result<()> {
    let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        socket2::SockRef::from(tcp).set_tcp_notsent_lowat(bytes)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (tcp, bytes);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "TCP_NOTSENT_LOWAT is Linux-only here",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn read_ahead_comes_first_and_writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut s = ReadAhead::new(Bytes::from_static(b"early "), a);
        b.write_all(b"later").await.unwrap();
        let mut got = vec![0u8; 11];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"early later");
        s.write_all(b"out").await.unwrap();
        let mut out = [0u8; 3];
        b.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"out");
        assert!(tcp_of(&s).is_none());
    }

    #[tokio::test]
    async fn tcp_is_found_bare_or_wrapped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert!(tcp_of(&client).is_some());
        set_unsent_limit(tcp_of(&client).unwrap(), 128 * 1024).unwrap();
        let lowat = socket2::SockRef::from(&client).tcp_notsent_lowat().unwrap();
        assert_eq!(lowat, 128 * 1024);
        let wrapped = ReadAhead::new(Bytes::new(), client);
        assert!(tcp_of(&wrapped).is_some());
    }

    #[tokio::test]
    async fn bytes_acked_counts_what_the_peer_received() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let before = bytes_acked(&server).unwrap();
        server.write_all(&[7u8; 10_000]).await.unwrap();
        let mut got = vec![0u8; 10_000];
        client.read_exact(&mut got).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while bytes_acked(&server).unwrap() < before + 10_000 {
            assert!(std::time::Instant::now() < deadline, "never acknowledged");
            tokio::task::yield_now().await;
        }
    }
}
