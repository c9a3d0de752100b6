//! Reading whole packets from, and writing packets to, a connection's byte stream.

use bytes::BytesMut;
use mqtt_codec::{DecodeError, Decoder, EncodeError, Packet, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why no packet could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the stream.
    Closed,
    /// The stream failed.
    Io(std::io::Error),
    /// The peer sent an invalid packet.
    Decode(DecodeError),
}

/// The read side of a connection: buffered bytes and the decoder that frames them.
#[derive(Debug)]
pub(crate) struct PacketReader {
    pub(crate) buf: BytesMut,
    pub(crate) decoder: Decoder,
}

impl PacketReader {
    pub(crate) fn new(max_packet_size: u32) -> Self {
        Self {
            // Small to start: most connections are idle most of the time, and CONNECT's
            // strings keep this first allocation alive for the connection's lifetime.
            buf: BytesMut::with_capacity(512),
            decoder: Decoder::new().with_max_packet_size(max_packet_size),
        }
    }

    /// A packet already buffered, if a whole one is there.
    pub(crate) fn buffered(&mut self) -> Result<Option<Packet>, ReadError> {
        self.decoder
            .decode(&mut self.buf)
            .map_err(ReadError::Decode)
    }

    /// Reads until a whole packet is buffered, and returns it.
    pub(crate) async fn read<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<Packet, ReadError> {
        loop {
            if let Some(packet) = self.buffered()? {
                return Ok(packet);
            }
            self.fill(stream).await?;
        }
    }

    /// Reads whatever the stream has into the buffer. Cancel-safe.
    pub(crate) async fn fill<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(), ReadError> {
        if self.buf.capacity() - self.buf.len() < 256 {
            self.buf.reserve(4096);
        }
        match stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(ReadError::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(ReadError::Io(e)),
        }
    }
}

/// Encodes `packet` for `version` into `buf`; an encoding failure is a bug in the caller,
/// logged and skipped rather than sent half-written.
pub(crate) fn encode_into(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> bool {
    match packet.encode(version, buf) {
        Ok(_) => true,
        Err(e) => {
            log_encode_error(packet, &e);
            false
        }
    }
}

fn log_encode_error(packet: &Packet, e: &EncodeError) {
    tracing::error!(packet = %packet.packet_type(), error = %e, "cannot encode an outgoing packet");
}

/// Writes one packet and flushes it.
pub(crate) async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    packet: &Packet,
    version: ProtocolVersion,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    if encode_into(packet, version, &mut buf) {
        stream.write_all(&buf).await?;
        stream.flush().await?;
    }
    Ok(())
}
