//! Reading whole packets from, and writing packets to, a connection's byte stream.

use bytes::BytesMut;
use mqtt_codec::{DecodeError, Decoder, EncodeError, Packet, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::metrics::Metrics;

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
    /// Packets decoded since [`PacketReader::flush_counts`] last added them to the metrics.
    packets: u64,
    /// Bytes read since then.
    bytes: u64,
}

impl PacketReader {
    pub(crate) fn new(max_packet_size: u32) -> Self {
        Self {
            // Small to start: most connections are idle most of the time, and CONNECT's
            // strings keep this first allocation alive for the connection's lifetime.
            buf: BytesMut::with_capacity(512),
            decoder: Decoder::new().with_max_packet_size(max_packet_size),
            packets: 0,
            bytes: 0,
        }
    }

    /// A packet already buffered, if a whole one is there.
    pub(crate) fn buffered(&mut self) -> Result<Option<Packet>, ReadError> {
        let packet = self
            .decoder
            .decode(&mut self.buf)
            .map_err(ReadError::Decode)?;
        self.packets += u64::from(packet.is_some());
        Ok(packet)
    }

    /// Adds the packets and bytes read since the last call to `metrics`: once per read
    /// rather than once per packet.
    pub(crate) fn flush_counts(&mut self, metrics: &Metrics) {
        metrics.count_read(
            std::mem::take(&mut self.packets),
            std::mem::take(&mut self.bytes),
        );
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
            Ok(n) => {
                self.bytes += n as u64;
                Ok(())
            }
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

/// Writes one packet and flushes it (counted in `metrics` once written).
pub(crate) async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    packet: &Packet,
    version: ProtocolVersion,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    if encode_into(packet, version, &mut buf) {
        stream.write_all(&buf).await?;
        stream.flush().await?;
        metrics.count_written(1, buf.len() as u64);
    }
    Ok(())
}
