//! [`WsStream`]: a WebSocket connection seen as a byte stream (`AsyncRead + AsyncWrite`), which
//! is what broker-core serves.
//!
//! Reading: MQTT bytes arrive in binary messages, and message boundaries mean nothing (a packet
//! may span messages, a message may hold several packets), so the payload of each message is
//! kept as it came (`Bytes`, no copy) and handed out as the reader asks, copied once into the
//! reader's buffer. A text message is a protocol error (MQTT 5.0 §6.0, [MQTT-6.0.0-1]): the
//! connection is closed with status 1003 (unsupported data). Pings are answered and pongs
//! ignored by tungstenite; a close from the client is answered, then reads see the end of the
//! stream.
//!
//! Writing: each write becomes one binary message (broker-core writes a batch of packets at a
//! time, so one message often carries several), copied once from the writer's buffer. Writes
//! are pushed to the socket at once; a flush the socket could not finish is pushed on whenever
//! the stream is polled, for reading too, so a writer that never calls `flush` still has its
//! bytes sent. Shutting down runs the close handshake: a close frame (1000, or 1003 after a
//! text message), the client's answer awaited, then the underlying stream shut down.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The largest message one write becomes; larger writes take several.
const MAX_OUTGOING_MESSAGE: usize = 64 * 1024;

/// Where the close handshake is, from this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Open.
    No,
    /// Our close frame (or our answer to the client's) is queued.
    Sent,
    /// The WebSocket is closed; the underlying stream is shut down next.
    Done,
}

/// A WebSocket connection as a byte stream carrying MQTT in binary messages.
#[derive(Debug)]
pub struct WsStream<S> {
    /// The WebSocket.
    ws: WebSocketStream<S>,
    /// What is left of the last binary message read.
    unread: Bytes,
    /// A write is queued that the socket has not taken completely.
    flush_pending: bool,
    /// The end of the stream has been seen (the client closed, or the connection ended).
    read_closed: bool,
    /// The close handshake.
    closing: Closing,
    /// A text message came: the connection is closed with 1003 and reads fail.
    rejected: bool,
    /// The subprotocol agreed in the upgrade.
    subprotocol: Option<&'static str>,
}

impl<S> WsStream<S> {
    /// Wraps an upgraded WebSocket.
    pub(crate) fn new(ws: WebSocketStream<S>, subprotocol: Option<&'static str>) -> Self {
        Self {
            ws,
            unread: Bytes::new(),
            flush_pending: false,
            read_closed: false,
            closing: Closing::No,
            rejected: false,
            subprotocol,
        }
    }

    /// The subprotocol agreed in the upgrade (`mqtt`, `mqttv3.1` or `mqttv3.1.1`); `None` if
    /// the client offered none.
    pub fn subprotocol(&self) -> Option<&'static str> {
        self.subprotocol
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.ws.get_ref()
    }
}

/// A WebSocket error as an I/O error.
fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S> WsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Pushes on an unfinished flush; an error is the connection's end.
    fn poll_pending_flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.flush_pending {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_pending = false,
                Poll::Ready(Err(e)) => return Err(io_error(e)),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Queues our close frame with `code` (once) and flushes it.
    fn poll_send_close(&mut self, cx: &mut Context<'_>, code: CloseCode) -> Poll<io::Result<()>> {
        if self.closing == Closing::No {
            match ready!(Pin::new(&mut self.ws).poll_ready(cx)) {
                Ok(()) => {
                    let frame = CloseFrame {
                        code,
                        reason: "".into(),
                    };
                    // An error means the connection is already closing or gone.
                    let _ = Pin::new(&mut self.ws).start_send(Message::Close(Some(frame)));
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {}
                Err(e) => return Poll::Ready(Err(io_error(e))),
            }
            self.closing = Closing::Sent;
        }
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

impl<S> AsyncRead for WsStream<S>
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
        loop {
            if this.rejected {
                ready!(this.poll_send_close(cx, CloseCode::Unsupported))?;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a text WebSocket message: MQTT travels in binary messages",
                )));
            }
            if !this.unread.is_empty() {
                let n = this.unread.len().min(buf.remaining());
                buf.put_slice(this.unread.split_to(n).as_ref());
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(payload))) => this.unread = payload,
                Some(Ok(Message::Text(_))) => this.rejected = true,
                // tungstenite has queued the answer (a pong, or the closing handshake's close
                // frame); the next read sends it.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    if this.closing == Closing::No {
                        this.closing = Closing::Sent;
                    }
                }
                None => {
                    this.read_closed = true;
                    if this.closing != Closing::No {
                        this.closing = Closing::Done;
                    }
                }
                Some(Err(e)) => {
                    this.read_closed = true;
                    return Poll::Ready(Err(io_error(e)));
                }
            }
        }
    }
}

impl<S> AsyncWrite for WsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.closing != Closing::No {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(io_error)?;
        let n = buf.len().min(MAX_OUTGOING_MESSAGE);
        let payload = Bytes::copy_from_slice(buf.get(..n).unwrap_or(buf));
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(payload))
            .map_err(io_error)?;
        this.flush_pending = true;
        this.poll_pending_flush(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing == Closing::Done {
            return Poll::Ready(Ok(()));
        }
        match ready!(Pin::new(&mut this.ws).poll_flush(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                this.flush_pending = false;
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing != Closing::Done {
            let code = if this.rejected {
                CloseCode::Unsupported
            } else {
                CloseCode::Normal
            };
            ready!(this.poll_send_close(cx, code))?;
            // Wait for the client's close frame (or the end of the connection), discarding
            // whatever it still sends; the caller bounds how long.
            while !this.read_closed {
                match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => this.read_closed = true,
                }
            }
            this.unread = Bytes::new();
            this.closing = Closing::Done;
        }
        Pin::new(this.ws.get_mut()).poll_shutdown(cx)
    }
}
