//! [`TlsStream`]: a server-side TLS connection after its handshake, and the identity its
//! client proved with a certificate ([`ClientIdentity`], in `identity.rs`).
//!
//! tokio-rustls keeps encrypted bytes it could not write yet (the socket was full) until the
//! next write or flush. A reader that writes a batch and then only waits for input (as
//! broker-core's connection driver does) would leave the tail of the batch unsent, so this
//! stream flushes after every write and, while a flush is unfinished, pushes it on whenever
//! it is polled, for reading too: what was written always reaches the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::ProtocolVersion;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ClientIdentity;

/// A TLS connection, server side, after its handshake. Bytes written are pushed to the
/// socket without waiting for an explicit flush (see the module documentation).
#[derive(Debug)]
pub struct TlsStream<S> {
    /// The tokio-rustls stream.
    inner: tokio_rustls::server::TlsStream<S>,
    /// A write left encrypted bytes that the socket did not take yet.
    flush_pending: bool,
}

impl<S> TlsStream<S> {
    /// Wraps a stream whose handshake is complete.
    pub(crate) fn new(inner: tokio_rustls::server::TlsStream<S>) -> Self {
        Self {
            inner,
            flush_pending: false,
        }
    }

    /// The identity of the client's verified certificate; `None` if it sent none.
    pub fn client_identity(&self) -> Option<ClientIdentity> {
        let (_, connection) = self.inner.get_ref();
        let end_entity = connection.peer_certificates()?.first()?;
        ClientIdentity::from_der(end_entity)
    }

    /// The TLS version negotiated.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.get_ref().1.protocol_version()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref().0
    }
}

impl<S> TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Pushes on an unfinished flush; an error is the connection's end.
    fn poll_pending_flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.flush_pending {
            match Pin::new(&mut self.inner).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_pending = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }
}

impl<S> AsyncRead for TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_pending_flush(cx)?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_pending_flush(cx)?;
        let written = match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        this.flush_pending = true;
        this.poll_pending_flush(cx)?;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if flushed.is_ready() {
            this.flush_pending = false;
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
