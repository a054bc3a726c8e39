//! The read buffer in front of each SSH connection (client and target
//! side), held only while it holds data.
//!
//! russh reads a packet's length and then its body: two `recv` calls per
//! packet without a buffer. A fixed 64 KiB buffer per connection fixed that
//! but cost two of them per session for as long as it lived, idle or not
//! (most of an idle session's memory). Here a connection takes a buffer
//! from a small process-wide pool when a read finds its own empty, and
//! gives it back as soon as the buffer is drained or the socket has
//! nothing to read: an idle connection holds none, a busy one reads
//! [`BUFFER`] bytes per `recv` as before. Pooled buffers are reused as
//! they are (already initialised), so taking one costs no allocation or
//! zeroing.
//!
//! A stream that arrives in mid-sized pieces (a terminal printing fast: the
//! target's sshd sends each read of its PTY as it comes, a few KiB) costs a
//! wake-up, an `epoll_wait`, a `recv`, a pass through russh and the pump
//! and a `send` per piece, whatever its size: per byte, most of the
//! bastion's CPU on such a stream (bench/RESULTS.md, issue 22). So after a
//! read that returned a piece of such a stream (at least [`STREAMING`]
//! bytes and less than [`STREAMING_BELOW`]), the next one waits until
//! [`HOLD`] after it, and takes whatever arrived meanwhile in one `recv`
//! (interrupt moderation, as network cards do it). Small reads
//! (keystrokes, their echo, a request and its answer) never wait, and
//! neither do large ones: a fast stream, where a wait would let the
//! kernel's receive buffer fill and stall the sender (a first version
//! that held after any read short of the buffer cut a forward's download
//! through the target's sshd from 375 to 55 MB/s). A piece of a stream
//! waits at most [`HOLD`] (plus the timer's millisecond rounding),
//! invisible on a terminal.
//!
//! During a hold the kernel would still wake the runtime for each segment
//! that arrives (the socket is edge-triggered in epoll: every arrival is an
//! event), only for the reactor to find nobody waiting. So where the
//! buffer knows its TCP socket ([`ReadBuffer::with_socket`]), a hold also
//! raises the socket's receive low-water mark (`SO_RCVLOWAT`) to
//! [`LOW_WATER`], and lowers it back to one byte before its next `recv`:
//! arrivals below the mark wake nobody. A `recv` that does not block
//! returns what there is whatever the mark, so the mark changes when
//! readiness is reported, never what a read returns.
//!
//! Layer: the bottom of the crate; imports no module of it.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Bytes read per `recv` when the caller asks for less.
pub const BUFFER: usize = 64 * 1024;
/// A read of at least this many bytes, and less than [`STREAMING_BELOW`],
/// is a piece of a stream: the next read waits [`HOLD`] after it.
pub const STREAMING: usize = 4 * 1024;
/// A read this large comes from a stream fast enough that a wait could
/// fill the socket's receive buffer: the next read does not wait.
pub const STREAMING_BELOW: usize = 16 * 1024;
/// How long after a piece of a stream the next read waits at most.
pub const HOLD: Duration = Duration::from_millis(1);
/// The socket's receive low-water mark while a hold runs: as much as one
/// `recv` takes.
pub const LOW_WATER: usize = BUFFER;
/// Free buffers kept for reuse; more are freed.
const POOL_MAX: usize = 64;

static POOL: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

fn take() -> Box<[u8]> {
    let pooled = match POOL.lock() {
        Ok(mut p) => p.pop(),
        Err(poisoned) => poisoned.into_inner().pop(),
    };
    pooled.unwrap_or_else(|| vec![0u8; BUFFER].into_boxed_slice())
}

fn give(buf: Box<[u8]>) {
    let mut p = match POOL.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    };
    if p.len() < POOL_MAX {
        p.push(buf);
    }
}

/// `inner` with a read buffer taken only while it holds data. Writes pass
/// straight through.
pub struct ReadBuffer<S> {
    inner: S,
    buf: Option<Box<[u8]>>,
    pos: usize,
    filled: usize,
    /// Set after a piece of a stream: the next `recv` waits for it.
    hold: Option<Pin<Box<Sleep>>>,
    /// [`HOLD`] (tests lengthen it, to see a read held whatever the
    /// machine's speed).
    hold_for: Duration,
    /// The TCP socket of `inner`, whose low-water mark a hold raises.
    socket: Option<LowWater>,
}

/// The receive low-water mark of the TCP socket of a `ReadBuffer`'s
/// `inner` (taken from it in [`ReadBuffer::with_socket`]).
struct LowWater {
    fd: RawFd,
    /// The mark is raised (a hold runs): lower it before the next `recv`.
    raised: bool,
}

impl LowWater {
    /// Sets `SO_RCVLOWAT`; false when the kernel refused it.
    fn set(&self, bytes: usize) -> bool {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fd` is the socket of the `inner` stream the `ReadBuffer`
        // owns (`with_socket` takes it from `inner`), so it is open while
        // `self` lives; the option's value is a c_int on the stack, passed
        // with its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&value).cast::<libc::c_void>(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    /// Only after [`Self::lower`] (every read lowers the mark first).
    fn raise(&mut self) {
        self.raised = self.set(LOW_WATER);
    }

    fn lower(&mut self) {
        if self.raised {
            // Lowering it also makes the kernel report data already there.
            self.set(1);
            self.raised = false;
        }
    }
}

impl<S> ReadBuffer<S> {
    pub fn new(inner: S) -> ReadBuffer<S> {
        ReadBuffer {
            inner,
            buf: None,
            pos: 0,
            filled: 0,
            hold: None,
            hold_for: HOLD,
            socket: None,
        }
    }

    /// As [`Self::new`], over a TCP socket: holds also raise its
    /// low-water mark.
    pub fn with_socket(inner: S) -> ReadBuffer<S>
    where
        S: AsRawFd,
    {
        let fd = inner.as_raw_fd();
        let mut r = ReadBuffer::new(inner);
        r.socket = Some(LowWater { fd, raised: false });
        r
    }

    /// Pending while the hold after a piece of a stream runs.
    fn poll_hold(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(h) = self.hold.as_mut() {
            if h.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.hold = None;
        }
        if let Some(s) = self.socket.as_mut() {
            s.lower();
        }
        Poll::Ready(())
    }

    /// After a `recv` of `n` bytes.
    /// Every read first passes [`Self::poll_hold`], which clears the hold,
    /// so none is set here yet.
    fn after_read(&mut self, n: usize) {
        if (STREAMING..STREAMING_BELOW).contains(&n) {
            self.hold = Some(Box::pin(tokio::time::sleep(self.hold_for)));
            if let Some(s) = self.socket.as_mut() {
                s.raise();
            }
        }
    }

    fn release(&mut self) {
        self.pos = 0;
        self.filled = 0;
        if let Some(b) = self.buf.take() {
            give(b);
        }
    }
}

impl<S> Drop for ReadBuffer<S> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadBuffer<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pos >= this.filled {
            this.release();
            if this.poll_hold(cx).is_pending() {
                return Poll::Pending;
            }
            if out.remaining() >= BUFFER {
                // As large as the buffer: no point copying through it.
                let before = out.filled().len();
                let read = Pin::new(&mut this.inner).poll_read(cx, out);
                if let Poll::Ready(Ok(())) = read {
                    this.after_read(out.filled().len().saturating_sub(before));
                }
                return read;
            }
            let mut buf = take();
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        give(buf);
                        return Poll::Ready(Ok(()));
                    }
                    this.after_read(n);
                    this.buf = Some(buf);
                    this.filled = n;
                }
                other => {
                    // Nothing to read (or an error): hold no buffer.
                    give(buf);
                    return other;
                }
            }
        }
        let Some(buf) = this.buf.as_deref() else {
            return Poll::Ready(Ok(()));
        };
        let avail = buf.get(this.pos..this.filled).unwrap_or_default();
        let n = avail.len().min(out.remaining());
        out.put_slice(avail.get(..n).unwrap_or_default());
        this.pos += n;
        if this.pos >= this.filled {
            this.release();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadBuffer<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_arrive_in_order_and_an_idle_reader_holds_no_buffer() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let mut r = ReadBuffer::new(b);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(7000) {
                a.write_all(chunk).await.unwrap_or_default();
            }
            a
        });
        let mut got = Vec::new();
        let mut small = [0u8; 5];
        while got.len() < data.len() {
            // Alternate tiny reads (through the buffer) and large ones.
            let n = if got.len() % 2 == 0 {
                r.read(&mut small).await.unwrap_or(0)
            } else {
                let mut big = vec![0u8; 2 * BUFFER];
                let n = r.read(&mut big).await.unwrap_or(0);
                got.extend_from_slice(big.get(..n).unwrap_or_default());
                continue;
            };
            got.extend_from_slice(small.get(..n).unwrap_or_default());
        }
        assert_eq!(got, data);
        let _a = writer.await;
        // Everything read: the buffer went back to the pool.
        assert!(r.buf.is_none());
        // A read with nothing to read holds none either.
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut small)).await;
        assert!(pending.is_err());
        assert!(r.buf.is_none());
    }

    /// `r` with its holds lengthened to an hour, so that a read is held
    /// however slow the machine; tests end a hold by hand ([`end_hold`]).
    fn held_long<S>(mut r: ReadBuffer<S>) -> ReadBuffer<S> {
        r.hold_for = std::time::Duration::from_secs(3600);
        r
    }

    /// Ends the running hold now.
    fn end_hold<S>(r: &mut ReadBuffer<S>) {
        if let Some(h) = r.hold.as_mut() {
            h.as_mut().reset(tokio::time::Instant::now());
        }
    }

    /// Polls `r.read` once (tokio's `timeout` polls the future before it
    /// looks at the clock): `Some(n)` when it was ready.
    async fn read_now<S: AsyncRead + Unpin>(
        r: &mut ReadBuffer<S>,
        out: &mut [u8],
    ) -> Option<usize> {
        tokio::time::timeout(std::time::Duration::ZERO, r.read(out))
            .await
            .ok()
            .and_then(Result::ok)
    }

    #[tokio::test]
    async fn after_a_piece_of_a_stream_the_next_read_waits_and_takes_what_came_meanwhile() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let mut r = held_long(ReadBuffer::new(b));
        let mut out = vec![0u8; 16 * 1024];
        a.write_all(&[1u8; 8 * 1024]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut out).await, Some(8 * 1024));
        // More is there at once, but the read holds off...
        a.write_all(&[2u8; 300]).await.unwrap_or_default();
        a.write_all(&[3u8; 300]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut out).await, None, "held");
        // ...and when the hold ends, takes both writes in one read.
        end_hold(&mut r);
        assert_eq!(r.read(&mut out).await.unwrap_or(0), 600);
        assert_eq!(out.get(299..301), Some(&[2u8, 3u8][..]));
    }

    #[tokio::test]
    async fn a_large_read_short_of_the_buffer_never_waits() {
        // A fast stream: holding here could fill the kernel's buffer.
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let mut r = held_long(ReadBuffer::new(b));
        let mut out = vec![0u8; 48 * 1024];
        a.write_all(&vec![9u8; STREAMING_BELOW])
            .await
            .unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut out).await, Some(STREAMING_BELOW));
        a.write_all(&[9u8; 10]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut out).await, Some(10));
    }

    #[tokio::test]
    async fn small_reads_and_full_ones_never_wait() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let mut r = held_long(ReadBuffer::new(b));
        let mut out = vec![0u8; 16 * 1024];
        // A keystroke and its echo: no hold.
        a.write_all(b"ls\r").await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut out).await, Some(3));
        a.write_all(&[4u8; 100]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut out).await, Some(100));
        // A read that fills the buffer: more is waiting, no hold.
        a.write_all(&vec![5u8; BUFFER + 10])
            .await
            .unwrap_or_default();
        let mut got = 0;
        while got < BUFFER {
            got += read_now(&mut r, &mut out).await.unwrap_or(0);
        }
        assert_eq!(got, BUFFER);
        assert_eq!(read_now(&mut r, &mut out).await, Some(10));
        // Reads straight into a caller's large buffer follow the same rule.
        let mut big = vec![0u8; BUFFER];
        a.write_all(&[6u8; 100]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut big).await, Some(100));
        a.write_all(&[7u8; 5000]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut big).await, Some(5000));
        a.write_all(&[8u8; 10]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut big).await, None, "held after 5000");
        end_hold(&mut r);
        assert_eq!(r.read(&mut big).await.unwrap_or(0), 10);
    }

    fn rcvlowat(fd: RawFd) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a live socket, an int and its length.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_mut(&mut value).cast::<libc::c_void>(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    #[tokio::test]
    async fn a_hold_raises_the_sockets_low_water_mark_and_the_next_read_lowers_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let mut a = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (b, _) = listener.accept().await.expect("accept");
        let fd = b.as_raw_fd();
        let mut r = held_long(ReadBuffer::with_socket(b));
        assert_eq!(rcvlowat(fd), 1);
        let mut out = vec![0u8; 16 * 1024];
        // A small read: no hold, the mark stays.
        a.write_all(b"ls\r").await.unwrap_or_default();
        assert_eq!(r.read(&mut out).await.unwrap_or(0), 3);
        assert_eq!(rcvlowat(fd), 1);
        // A piece of a stream: held, and arrivals below the mark wake
        // nobody.
        a.write_all(&[1u8; 8 * 1024]).await.unwrap_or_default();
        let mut got = 0;
        while got < 8 * 1024 {
            got += r.read(&mut out).await.unwrap_or(0);
        }
        assert!(r.hold.is_some());
        assert_eq!(usize::try_from(rcvlowat(fd)).ok(), Some(LOW_WATER));
        a.write_all(&[2u8; 100]).await.unwrap_or_default();
        assert_eq!(read_now(&mut r, &mut out).await, None, "held");
        // The hold ends: the mark is back to one byte before the read,
        // which takes what came (below the mark) at once.
        end_hold(&mut r);
        assert_eq!(r.read(&mut out).await.unwrap_or(0), 100);
        assert_eq!(rcvlowat(fd), 1);
    }
}
