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
//! Layer: the bottom of the crate; imports no module of it.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read per `recv` when the caller asks for less.
pub const BUFFER: usize = 64 * 1024;
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
}

impl<S> ReadBuffer<S> {
    pub fn new(inner: S) -> ReadBuffer<S> {
        ReadBuffer {
            inner,
            buf: None,
            pos: 0,
            filled: 0,
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
            if out.remaining() >= BUFFER {
                // As large as the buffer: no point copying through it.
                return Pin::new(&mut this.inner).poll_read(cx, out);
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
}
