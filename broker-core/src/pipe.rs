//! The `Pipe` trait: one connected client after CONNECT, owning its [`ConnParam`].
//!
//! Transports supply a byte stream (TCP, TLS, WebSocket); the handshake in
//! [`crate::Broker::serve_connection`] reads CONNECT from it and builds a [`StreamPipe`],
//! the only way to obtain a pipe. The pipe owns the stream and the parameters, and both are
//! dropped together when the connection ends.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::ConnParam;

/// A connected client: a byte stream that carries MQTT packets, and the parameters the
/// client connected with.
pub trait Pipe: Send + 'static {
    /// The byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The parameters this connection was established with.
    fn conn_param(&self) -> &ConnParam;

    /// The byte stream, for the connection's driver.
    fn stream(&mut self) -> &mut Self::Stream;
}

/// A pipe over any byte stream. Its constructor is private to the crate: only a completed
/// handshake makes one.
#[derive(Debug)]
pub struct StreamPipe<S> {
    stream: S,
    conn_param: ConnParam,
}

impl<S> StreamPipe<S> {
    pub(crate) fn new(stream: S, conn_param: ConnParam) -> Self {
        Self { stream, conn_param }
    }

    /// The stream and the parameters, apart: a connection going dormant keeps the
    /// parameters and lets the stream's registration go.
    pub(crate) fn into_parts(self) -> (S, ConnParam) {
        (self.stream, self.conn_param)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Pipe for StreamPipe<S> {
    type Stream = S;

    fn conn_param(&self) -> &ConnParam {
        &self.conn_param
    }

    fn stream(&mut self) -> &mut S {
        &mut self.stream
    }
}
